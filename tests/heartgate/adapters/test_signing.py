"""The release key: from the environment, or made on first use (0600) in the state dir; a bad or
missing one is one line."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from heartgate.adapters.signing import public_key, public_key_text, release_key
from heartgate.core.errors import ConfigError


def test_the_embedded_key_is_made_once_private_and_reused(tmp_path):
    key_file = tmp_path / "keys" / "release.pem"
    first = release_key({}, key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert public_key_text(release_key({}, key_file)) == public_key_text(first)  # the same key, read back
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["release.pem"]  # no partial file left


def test_a_key_others_can_read_is_refused(tmp_path):
    key_file = tmp_path / "release.pem"
    release_key({}, key_file)
    os.chmod(key_file, 0o644)
    with pytest.raises(ConfigError, match=rf"^the release key {key_file} is readable by others \(mode 644\); chmod 600 it$"):
        release_key({}, key_file)


def test_the_environment_wins_in_either_form(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    raw = base64.b64encode(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())).decode()
    for text in (pem, raw):
        assert public_key_text(release_key({"HEARTGATE_RELEASE_KEY": text}, tmp_path / "unused.pem")) == public_key_text(key)
    assert not (tmp_path / "unused.pem").exists()


def test_a_missing_or_wrong_key_is_one_line(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    with pytest.raises(ConfigError, match=r"^releases are signed, but HEARTGATE_RELEASE_KEY is not set in the environment of the promoting process$"):
        release_key({}, None)
    with pytest.raises(ConfigError, match=r"^HEARTGATE_RELEASE_KEY is not an Ed25519 private key \(PEM, or its 32 bytes in base64\)$"):
        release_key({"HEARTGATE_RELEASE_KEY": "not a key"}, None)
    p256 = ec.generate_private_key(ec.SECP256R1())
    pem = p256.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with pytest.raises(ConfigError, match=r"^HEARTGATE_RELEASE_KEY holds another kind of private key; release records are signed with Ed25519$"):
        release_key({"HEARTGATE_RELEASE_KEY": pem}, None)
    with pytest.raises(ConfigError, match=r"^the release public key is not an Ed25519 public key"):
        public_key("AAAA")


def test_a_public_key_round_trips_as_its_text(tmp_path):
    text = public_key_text(release_key({}, tmp_path / "release.pem"))
    assert public_key_text(public_key(text)) == text

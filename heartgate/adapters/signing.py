"""The release signing key: Ed25519 (the `cryptography` library), read where a release is signed
and never written anywhere else.

- HEARTGATE_RELEASE_KEY: the private key, PEM (PKCS#8) or its 32 raw bytes in base64, from the
  environment or a secret store that sets it; only the promoting process needs it.
- The embedded default needs no set-up: without the variable, a key is created on first use in
  the state dir (mode 0600) and reused after.
- Verifying needs only the public key (base64 of its 32 raw bytes), which may sit in a config
  file: it proves who signed, and signs nothing.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from heartgate.adapters.secrets import RELEASE_KEY
from heartgate.adapters.state import StatePaths
from heartgate.core.config import HeartgateConfig
from heartgate.core.errors import ConfigError

if TYPE_CHECKING:  # for the annotations only: cryptography is imported where a key is used
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def _private_from_text(text: str, where: str) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        if text.lstrip().startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text.strip(), validate=True))
    except (ValueError, TypeError, binascii.Error):
        raise ConfigError(f"{where} is not an Ed25519 private key (PEM, or its 32 bytes in base64)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{where} holds another kind of private key; release records are signed with Ed25519")
    return key


def _create_key_file(path: Path) -> None:
    """A new key, written 0600 from the start (never readable by others, not even for a moment)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    try:
        os.link(partial, path)  # two processes creating it at once: the first one wins, both use it
    except FileExistsError:
        pass
    finally:
        partial.unlink()


def release_key(environ: Mapping[str, str], key_file: Path | None) -> Ed25519PrivateKey:
    """The signing key: HEARTGATE_RELEASE_KEY, else `key_file` (created on first use), else one
    line saying what is missing (`key_file` None: a team set-up, whose key must come from outside)."""
    if environ.get(RELEASE_KEY):
        return _private_from_text(environ[RELEASE_KEY], RELEASE_KEY)
    if key_file is None:
        raise ConfigError(f"releases are signed, but {RELEASE_KEY} is not set in the environment of the promoting process")
    if not key_file.exists():
        _create_key_file(key_file)
    if key_file.stat().st_mode & 0o077:
        raise ConfigError(f"the release key {key_file} is readable by others (mode {key_file.stat().st_mode & 0o777:o}); chmod 600 it")
    return _private_from_text(key_file.read_text(), str(key_file))


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public half as base64 of its 32 raw bytes: what a config names to verify with."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def public_key(text: str, where: str = "the release public key") -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except (ValueError, binascii.Error):
        raise ConfigError(f"{where} is not an Ed25519 public key (its 32 bytes in base64)") from None


def trusted_public_key(config: HeartgateConfig, environ: Mapping[str, str]) -> str | None:
    """The public key release records are verified with: release.public_key, else (embedded
    default) the public half of the key this machine signs with, once there is one; else None."""
    if config.release.public_key:
        return config.release.public_key
    key_file = StatePaths(config.state_root).release_key
    if config.stack.profile == "embedded" and (environ.get(RELEASE_KEY) or key_file.exists()):
        return public_key_text(release_key(environ, key_file))
    return None

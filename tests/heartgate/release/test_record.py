"""A release record verifies only with the trusted key, unchanged, for its own version, and
vouches for exact bytes."""

from __future__ import annotations

import json

import pytest

from heartgate.adapters.signing import public_key_text, release_key
from heartgate.release.record import ReleaseNotVerified, ReleaseRecord, sign, verify
from heartgate.serving.proof import require_vouched

RECORD = ReleaseRecord(
    model_name="heartgate-ecg-autoencoder",
    version="3",
    onnx_sha256="a" * 64,
    threshold=0.0123,
    serving_code_sha256="c" * 64,
    serving_files=("service/service.py",),
    data_md5="d" * 32,
    split_md5="e" * 32,
    gate={"gate_promotable": "true", "gate_reasons": "first model"},
    approver="dr-bo",
    approved_at="2026-12-04T20:00:00+00:00",
    flow_run_id="f1",
    git_commit="abc123",
)


@pytest.fixture
def keys(tmp_path):
    return release_key({}, tmp_path / "a.pem"), release_key({}, tmp_path / "b.pem")


def test_a_signed_record_verifies_with_its_public_key(keys):
    signing, _ = keys
    stored = sign(RECORD, signing).to_json()
    assert verify(stored, public_key_text(signing), "3") == RECORD


def test_every_way_a_record_can_be_wrong_is_named(keys):
    signing, other = keys
    trusted = public_key_text(signing)
    stored = json.loads(sign(RECORD, signing).to_json())
    changed = stored | {"record": stored["record"] | {"approver": "mallory"}}
    cases = {
        None: "version 3 has no release record: it was not promoted through heartgate",
        "{}": "version 3's release record is malformed (KeyError: 'record')",
        "not json": "version 3's release record is malformed (JSONDecodeError: Expecting value: line 1 column 1 (char 0))",
        json.dumps(changed): "version 3's release record does not match its signature (it was changed after signing)",
        sign(
            RECORD, other
        ).to_json(): f"version 3's release record is signed by key {sign(RECORD, other).key_id}, not the trusted {sign(RECORD, signing).key_id}",
    }
    for stored_text, message in cases.items():
        with pytest.raises(ReleaseNotVerified) as refused:
            verify(stored_text, trusted, "3")
        assert str(refused.value) == message
    with pytest.raises(ReleaseNotVerified, match=r"^the release record stored with version 4 vouches for version 3$"):
        verify(sign(RECORD, signing).to_json(), trusted, "4")  # a record copied onto another version


def test_the_record_vouches_for_exact_bytes():
    vouched = RECORD.model_dump(mode="json")
    require_vouched(vouched, {"onnx_sha256": "a" * 64, "serving_code_sha256": "c" * 64, "threshold": "0.0123"})
    with pytest.raises(
        ReleaseNotVerified, match=r"^version 3's ONNX model is not the one that was gated and approved \(bbbbbbbbbbbb, the record says aaaaaaaaaaaa\)$"
    ):
        require_vouched(vouched, {"onnx_sha256": "b" * 64})
    with pytest.raises(ReleaseNotVerified, match=r"^version 3's serving code is not the one"):
        require_vouched(vouched, {"serving_code_sha256": "0" * 64})
    with pytest.raises(ReleaseNotVerified, match=r"^version 3's threshold is not the one"):
        require_vouched(vouched, {"threshold": "0.5"})


def test_the_embedded_default_signs_with_its_own_key_and_the_server_profile_with_the_teams(tmp_path):
    from heartgate.core.config import load_config
    from heartgate.core.errors import ConfigError
    from heartgate.release.record import signing_key, trusted_key

    embedded = load_config(overrides={"state_dir": str(tmp_path / "one")})
    signed_with = public_key_text(signing_key(embedded, {}))  # made on first use ...
    assert trusted_key(embedded, {}) == signed_with  # ... then trusted here
    team_key = release_key({}, tmp_path / "team.pem")
    team_env = {"HEARTGATE_RELEASE_KEY": (tmp_path / "team.pem").read_text()}
    server = load_config(profile="server", overrides={"state_dir": str(tmp_path / "worker"), "release": {"public_key": public_key_text(team_key)}})
    assert public_key_text(signing_key(server, team_env)) == public_key_text(team_key) == trusted_key(server, {})
    assert not (tmp_path / "worker" / "keys").exists()  # a worker never makes a key of its own
    with pytest.raises(ConfigError, match=r"^releases are signed, but HEARTGATE_RELEASE_KEY is not set in the environment of the promoting process$"):
        signing_key(server, {})
    other = {"HEARTGATE_RELEASE_KEY": (tmp_path / "one" / "keys" / "release.pem").read_text()}
    with pytest.raises(ConfigError, match=r"^HEARTGATE_RELEASE_KEY is not the key release.public_key names \(key [0-9a-f]{16}, not [0-9a-f]{16}\)$"):
        signing_key(server, other)
    unnamed = load_config(profile="server", overrides={"state_dir": str(tmp_path / "cli")})
    with pytest.raises(ReleaseNotVerified, match=r"^no release key to verify with: set release.public_key"):
        trusted_key(unnamed, team_env)

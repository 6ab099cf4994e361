"""The one release checker: ecdsa's Ed25519 agrees with `cryptography`'s (which signs), and the
served process's start check refuses every way its model, code or key can be wrong."""

from __future__ import annotations

import base64
import json

import pytest

from heartgate.adapters.signing import public_key_text, release_key
from heartgate.release.record import ReleaseRecord, sign
from heartgate.serving.proof import (
    PUBLIC_KEY_VARIABLE,
    RELEASE_FILE,
    ReleaseNotVerified,
    check_served_model,
    files_sha256,
    key_id,
    sha256_file,
    signature_valid,
)
from heartgate.serving.served_model import METADATA_FILE, ONNX_FILE


@pytest.fixture
def key(tmp_path):
    return release_key({}, tmp_path / "keys" / "release.pem")


def test_the_pure_python_verifier_agrees_with_the_signer(key, tmp_path):
    other = release_key({}, tmp_path / "keys" / "other.pem")
    trusted = public_key_text(key)
    for message in (b"", b"a record", bytes(range(256)) * 4):
        signature = base64.b64encode(key.sign(message)).decode()
        assert signature_valid(trusted, signature, message)
        assert not signature_valid(trusted, signature, message + b"!")
        assert not signature_valid(public_key_text(other), signature, message)
        flipped = bytearray(base64.b64decode(signature))
        flipped[5] ^= 1
        assert not signature_valid(trusted, base64.b64encode(bytes(flipped)).decode(), message)
    for junk_key, junk_signature in (("AAAA", "AAAA"), ("not base64!", "x"), (trusted, "AAAA")):
        assert not signature_valid(junk_key, junk_signature, b"m")


def test_a_public_key_has_a_short_stable_name(key):
    text = public_key_text(key)
    assert key_id(text) == key_id(text) and len(key_id(text)) == 16


@pytest.fixture
def served(tmp_path, key):
    """A model directory and serving code as a bento carries them, with a valid signed record."""
    code = tmp_path / "src"
    (code / "service").mkdir(parents=True)
    (code / "service" / "service.py").write_text("served = True\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / ONNX_FILE).write_bytes(b"onnx bytes")
    (model / METADATA_FILE).write_text(json.dumps({"model_version": "3", "threshold": 0.25}))
    record = ReleaseRecord(
        model_name="m",
        version="3",
        onnx_sha256=sha256_file(model / ONNX_FILE),
        threshold=0.25,
        serving_code_sha256=files_sha256(["service/service.py"], code),
        serving_files=("service/service.py",),
        data_md5="d",
        split_md5="s",
        gate={},
        approver="dr-bo",
        approved_at="now",
        git_commit="abc",
    )
    (model / RELEASE_FILE).write_text(sign(record, key).to_json())
    return {"model": model, "code": code, "environ": {PUBLIC_KEY_VARIABLE: public_key_text(key)}}


def test_a_served_process_starts_on_a_valid_release(served):
    assert check_served_model(served["model"], served["code"], served["environ"])["approver"] == "dr-bo"


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda s: (s["model"] / ONNX_FILE).write_bytes(b"another model"), r"^version 3's ONNX model is not the one that was gated and approved"),
        (lambda s: (s["code"] / "service" / "service.py").write_text("served = 'anything'\n"), r"^version 3's serving code is not the one"),
        (lambda s: (s["code"] / "service" / "service.py").unlink(), r"^the serving code service/service.py that the release record vouches for is not in "),
        (
            lambda s: (s["model"] / METADATA_FILE).write_text(json.dumps({"model_version": "3", "threshold": 9.0})),
            r"^version 3's threshold is not the one that was gated",
        ),
        (lambda s: (s["model"] / RELEASE_FILE).unlink(), r"^version 3 has no release record: it was not promoted through heartgate$"),
        (lambda s: s["environ"].clear(), rf"^{PUBLIC_KEY_VARIABLE} is not set: this process cannot check the release it was given"),
    ],
)
def test_a_served_process_refuses_every_way_its_release_can_be_wrong(served, tamper, message):
    tamper(served)
    with pytest.raises(ReleaseNotVerified, match=message):
        check_served_model(served["model"], served["code"], served["environ"])

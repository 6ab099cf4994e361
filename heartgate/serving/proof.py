"""The proof a release carries wherever it is served: its signed record, checked.

A promotion signs a release record (heartgate.release.record) with the release key. This module
is the one place that record is checked, by heartgate before anything is deployed and by the served
process itself at start (the bento server and the Lambda cold start): the signature against the
trusted public key, that it vouches for this version, and that the bytes about to serve (the ONNX
file, its threshold, the serving code) are the ones it names.

It imports only the standard library and `ecdsa` (pure Python, so the Lambda package carries it
beside numpy and onnxruntime): the served process has neither pydantic nor `cryptography`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from heartgate.core.errors import HeartgateError
from heartgate.serving.served_model import METADATA_FILE, ONNX_FILE

RELEASE_FILE = "release.json"  # beside the ONNX file in the bento model and the Lambda package: the signed record
PUBLIC_KEY_VARIABLE = "HEARTGATE_RELEASE_PUBLIC_KEY"  # the served process's trusted key, set by the deploy


class ReleaseNotVerified(HeartgateError):
    """A release record is missing, malformed, forged, or vouches for something else."""


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's signature covers: sorted-key, compact JSON."""
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def key_id(public_key: str) -> str:
    """A short name for a public key (its sha256, 16 hex digits), as records and messages show it."""
    return hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:16]


def signature_valid(public_key: str, signature: str, message: bytes) -> bool:
    """Ed25519: does `signature` (base64) over `message` verify with `public_key` (base64 of 32 bytes)?"""
    import ecdsa

    try:
        verifying = ecdsa.VerifyingKey.from_string(base64.b64decode(public_key, validate=True), curve=ecdsa.Ed25519)
        return bool(verifying.verify(base64.b64decode(signature, validate=True), message))
    except (ecdsa.BadSignatureError, ecdsa.MalformedPointError, binascii.Error, ValueError, AssertionError):
        return False


def checked_record(stored: str | None, trusted_key: str, version: str) -> dict[str, Any]:
    """The record inside `stored` (a signed record's JSON), if the trusted key signed it for
    exactly registry version `version`; else ReleaseNotVerified naming why in one line."""
    if not stored:
        raise ReleaseNotVerified(f"version {version} has no release record: it was not promoted through heartgate")
    try:
        signed = json.loads(stored)
        record, signer, signature = signed["record"], signed["key_id"], signed["signature"]
        if not (isinstance(record, dict) and isinstance(signer, str) and isinstance(signature, str)):
            raise TypeError("record, key_id or signature has the wrong type")
    except (ValueError, KeyError, TypeError) as exc:
        raise ReleaseNotVerified(f"version {version}'s release record is malformed ({exc.__class__.__name__}: {exc})") from None
    if signer != key_id(trusted_key):
        raise ReleaseNotVerified(f"version {version}'s release record is signed by key {signer}, not the trusted {key_id(trusted_key)}")
    if not signature_valid(trusted_key, signature, canonical(record)):
        raise ReleaseNotVerified(f"version {version}'s release record does not match its signature (it was changed after signing)")
    if str(record.get("version")) != version:
        raise ReleaseNotVerified(f"the release record stored with version {version} vouches for version {record.get('version')}")
    return record


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_sha256(files: list[str], root: Path) -> str:
    """One sha256 over project files (their paths and their bytes): the record's serving code."""
    digest = hashlib.sha256()
    for name in sorted(files):
        if not (root / name).is_file():
            raise ReleaseNotVerified(f"the serving code {name} that the release record vouches for is not in {root}")
        digest.update(name.encode() + b"\0" + hashlib.sha256((root / name).read_bytes()).digest())
    return digest.hexdigest()


def require_vouched(record: Mapping[str, Any], found: Mapping[str, str]) -> None:
    """What is about to serve (`found`: onnx_sha256, serving_code_sha256, maybe threshold) is what
    the record vouches for, byte for byte."""
    names = {"onnx_sha256": "ONNX model", "serving_code_sha256": "serving code", "threshold": "threshold"}
    for field, value in found.items():
        vouched = str(record.get(field))
        if value != vouched:
            raise ReleaseNotVerified(
                f"version {record.get('version')}'s {names[field]} is not the one that was gated and approved ({value[:12]}, the record says {vouched[:12]})"
            )


def check_served_model(model_dir: Path, code_root: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """The served process's check at start: the model directory's signed record, verified with
    the key the deploy set (HEARTGATE_RELEASE_PUBLIC_KEY), vouches for this version, this ONNX
    file, this threshold and the code under `code_root`. Returns the record; a process that gets
    ReleaseNotVerified must not serve."""
    trusted = environ.get(PUBLIC_KEY_VARIABLE)
    if not trusted:
        raise ReleaseNotVerified(f"{PUBLIC_KEY_VARIABLE} is not set: this process cannot check the release it was given, so it does not serve")
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    version = str(metadata["model_version"])
    release = model_dir / RELEASE_FILE
    record = checked_record(release.read_text() if release.exists() else None, trusted, version)
    files = record.get("serving_files") or []
    require_vouched(
        record,
        {
            "onnx_sha256": sha256_file(model_dir / ONNX_FILE),
            "threshold": str(float(metadata["threshold"])),
            "serving_code_sha256": files_sha256(files, code_root),
        },
    )
    return record

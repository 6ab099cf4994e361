"""The release record: what a promotion vouches for, signed.

When heartgate moves `@production`, it writes for that version the sha256 of exactly what will
serve (the ONNX model and its threshold, and the serving code), the data and split it was scored
on, the gate's decision, who approved it, when, from which flow run and commit; then signs the
record's canonical bytes (sorted-key JSON) with the release key (heartgate.adapters.signing).
Anyone with the public key can check it; only the promoting process could have written it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heartgate.adapters.registry import Registry
from heartgate.adapters.secrets import RELEASE_KEY
from heartgate.adapters.signing import key_id, public_key, public_key_text, release_key
from heartgate.adapters.state import StatePaths
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import ApprovalOutcome, GateDecision, RegisteredVersion
from heartgate.core.errors import ConfigError, HeartgateError
from heartgate.ml.data import sha256_of
from heartgate.serving.packaging import files_sha256, module_files

if TYPE_CHECKING:  # for the annotations only: cryptography is imported where a key is used
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

RECORD_SCHEMA = 1
RECORD_TAG = "release.record"  # on the registered version: the signed record, as JSON
SERVED_ENTRY_MODULES = ("service.service", "service.lambda_handler")  # the bento's and the Lambda zip's code


class ReleaseNotVerified(HeartgateError):
    """A release record is missing, malformed, forged, or vouches for something else."""


class ReleaseRecord(BaseModel):
    """One promotion, as signed. Every field is part of what the signature covers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = RECORD_SCHEMA
    model_name: str
    version: str
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    threshold: float
    serving_code_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    data_md5: str
    split_md5: str
    gate: dict[str, str]  # the gate's decision and figures, as the version's tags hold them
    approver: str  # an identity, or "auto" (the CLI's demo mode)
    approved_at: str
    flow_run_id: str | None = None
    git_commit: str

    def canonical(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()


class SignedRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    record: ReleaseRecord
    key_id: str  # which public key verifies it
    signature: str  # Ed25519 over record.canonical(), base64

    def to_json(self) -> str:
        return self.model_dump_json()


def sign(record: ReleaseRecord, key: Ed25519PrivateKey) -> SignedRecord:
    signature = base64.b64encode(key.sign(record.canonical())).decode()
    return SignedRecord(record=record, key_id=key_id(public_key_text(key)), signature=signature)


def verify(stored: str | None, trusted_key: str, version: str) -> ReleaseRecord:
    """The record of registry version `version`, if `stored` is one the trusted public key signed
    for exactly that version; else ReleaseNotVerified, naming why in one line."""
    from cryptography.exceptions import InvalidSignature

    if not stored:
        raise ReleaseNotVerified(f"version {version} has no release record: it was not promoted through heartgate")
    try:
        signed = SignedRecord.model_validate_json(stored)
    except ValidationError as exc:
        raise ReleaseNotVerified(f"version {version}'s release record is malformed ({exc.errors()[0]['msg']})") from None
    if signed.key_id != key_id(trusted_key):
        raise ReleaseNotVerified(f"version {version}'s release record is signed by key {signed.key_id}, not the trusted {key_id(trusted_key)}")
    try:
        public_key(trusted_key).verify(base64.b64decode(signed.signature), signed.record.canonical())
    except (InvalidSignature, ValueError):
        raise ReleaseNotVerified(f"version {version}'s release record does not match its signature (it was changed after signing)") from None
    if signed.record.version != version:
        raise ReleaseNotVerified(f"the release record stored with version {version} vouches for version {signed.record.version}")
    return signed.record


def require_same_artifact(record: ReleaseRecord, onnx_sha256: str, serving_code_sha256: str) -> None:
    """What is about to serve is what was gated and approved, byte for byte."""
    for what, found, vouched in (("ONNX model", onnx_sha256, record.onnx_sha256), ("serving code", serving_code_sha256, record.serving_code_sha256)):
        if found != vouched:
            raise ReleaseNotVerified(
                f"version {record.version}'s {what} is not the one that was gated and approved (sha256 {found[:12]}, the record says {vouched[:12]})"
            )


def serving_code_sha256() -> str:
    """The code that serves a model on either target: every project file their entry modules import."""
    return files_sha256(sorted({name for entry in SERVED_ENTRY_MODULES for name in module_files(entry)}))


def registered_onnx_sha256(registry: Registry, run_id: str, tags: Mapping[str, str]) -> str:
    """The sha256 of the ONNX file the registry holds for a version (its run's artifact)."""
    return sha256_of(registry.artifact(run_id, tags["onnx_artifact"]))


def release_record(registry: Registry, candidate: RegisteredVersion, decision: GateDecision, approval: ApprovalOutcome) -> ReleaseRecord:
    """What promoting `candidate` vouches for, read from the registry and this checkout now."""
    from prefect.runtime import flow_run

    tags = candidate.tags
    return ReleaseRecord(
        model_name=registry.model_name,
        version=candidate.version,
        onnx_sha256=registered_onnx_sha256(registry, candidate.run_id, tags),
        threshold=float(tags["threshold"]),
        serving_code_sha256=serving_code_sha256(),
        data_md5=tags["data_md5"],
        split_md5=tags["split_md5"],
        gate=decision.as_tags(),
        approver=approval.reviewer,
        approved_at=approval.answered_at,
        flow_run_id=flow_run.id,
        git_commit=tags.get("git_commit", "unknown"),
    )


def signing_key(config: HeartgateConfig, environ: Mapping[str, str]) -> Ed25519PrivateKey:
    """The key this process signs releases with. The embedded default makes one in its state dir;
    on the server profile every worker signs with the team's HEARTGATE_RELEASE_KEY (a key of its
    own would be one no other machine trusts), which must be the one release.public_key names."""
    key_file = StatePaths(config.state_root).release_key if config.stack.profile == "embedded" else None
    key = release_key(environ, key_file)
    trusted = config.release.public_key
    if trusted and public_key_text(key) != trusted:
        raise ConfigError(f"{RELEASE_KEY} is not the key release.public_key names (key {key_id(public_key_text(key))}, not {key_id(trusted)})")
    return key


def trusted_key(config: HeartgateConfig, environ: Mapping[str, str]) -> str:
    """The public key records are verified with: release.public_key, else (embedded default) the
    public half of the key this machine signs with."""
    if config.release.public_key:
        return config.release.public_key
    key_file = StatePaths(config.state_root).release_key
    if config.stack.profile == "embedded" and (environ.get(RELEASE_KEY) or key_file.exists()):
        return public_key_text(release_key(environ, key_file))
    raise ReleaseNotVerified("no release key to verify with: set release.public_key to the public half of the key that signs releases")


def verified_release(registry: Registry, version: str, trusted: str) -> ReleaseRecord:
    """Version `version`'s record, checked: signed by the trusted key, for this version, and what
    the registry holds for it now is what the record vouches for."""
    tags = registry.tags(version)
    record = verify(tags.get(RECORD_TAG), trusted, version)
    require_same_artifact(record, registered_onnx_sha256(registry, tags["run_id"], tags), serving_code_sha256())
    return record

"""The release record: what a promotion vouches for, signed.

When heartgate moves `@production`, it writes for that version the sha256 of exactly what will
serve (the ONNX model and its threshold, and the serving code), the data and split it was scored
on, the gate's decision, who approved it, when, from which flow run and commit; then signs the
record's canonical bytes (sorted-key JSON) with the release key (heartgate.adapters.signing).
Anyone with the public key can check it (heartgate.serving.proof, the one checker, which the
served process runs too); only the promoting process could have written it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heartgate.adapters.registry import Registry
from heartgate.adapters.secrets import RELEASE_KEY
from heartgate.adapters.signing import public_key_text, release_key, trusted_public_key
from heartgate.adapters.state import StatePaths
from heartgate.core.config import PROJECT_ROOT, HeartgateConfig
from heartgate.core.contracts import ApprovalOutcome, BentoBuild, GateDecision, RegisteredVersion
from heartgate.core.errors import ConfigError
from heartgate.serving.bento import bento_src, build_bento
from heartgate.serving.packaging import served_files
from heartgate.serving.proof import ReleaseNotVerified, canonical, checked_record, files_sha256, key_id, require_vouched

if TYPE_CHECKING:  # for the annotations only: cryptography is imported where a key is used
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

RECORD_SCHEMA = 1
RECORD_TAG = "release.record"  # on the registered version: the signed record, as JSON
__all__ = ["RECORD_TAG", "ReleaseNotVerified", "ReleaseRecord", "SignedRecord", "sign", "verified_build", "verified_release", "verify"]


class ReleaseRecord(BaseModel):
    """One promotion, as signed. Every field is part of what the signature covers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = RECORD_SCHEMA
    model_name: str
    version: str
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    threshold: float
    serving_code_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    serving_files: tuple[str, ...]  # the files serving_code_sha256 covers, so a served process can hash them
    data_md5: str
    split_md5: str
    gate: dict[str, str]  # the gate's decision and figures, as the version's tags hold them
    approver: str  # an identity, or "auto" (the CLI's demo mode)
    approved_at: str
    flow_run_id: str | None = None
    git_commit: str

    def canonical(self) -> bytes:
        return canonical(self.model_dump(mode="json"))


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
    checked = checked_record(stored, trusted_key, version)
    try:
        return ReleaseRecord.model_validate(checked)
    except ValidationError as exc:
        raise ReleaseNotVerified(f"version {version}'s release record is malformed ({exc.errors()[0]['msg']})") from None


def registered_onnx_sha256(registry: Registry, run_id: str, tags: Mapping[str, str]) -> str:
    """The sha256 of the ONNX file the registry holds for a version (its run's artifact), read
    from the store now: a file replaced there is seen by the next check on every machine."""
    return registry.artifact_sha256(run_id, tags["onnx_artifact"])


def release_record(registry: Registry, candidate: RegisteredVersion, decision: GateDecision, approval: ApprovalOutcome) -> ReleaseRecord:
    """What promoting `candidate` vouches for, read from the registry and this checkout now."""
    from prefect.runtime import flow_run

    tags = candidate.tags
    files = served_files()
    return ReleaseRecord(
        model_name=registry.model_name,
        version=candidate.version,
        onnx_sha256=registered_onnx_sha256(registry, candidate.run_id, tags),
        threshold=float(tags["threshold"]),
        serving_code_sha256=files_sha256(files, PROJECT_ROOT),
        serving_files=tuple(files),
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
    """The public key records are verified with (heartgate.adapters.signing.trusted_public_key)."""
    trusted = trusted_public_key(config, environ)
    if trusted is None:
        raise ReleaseNotVerified("no release key to verify with: set release.public_key to the public half of the key that signs releases")
    return trusted


def verified_release(registry: Registry, version: str, trusted: str) -> ReleaseRecord:
    """Version `version`'s record, checked: signed by the trusted key, for this version, and the
    ONNX file the registry holds for it now is the one the record vouches for."""
    tags = registry.tags(version)
    record = verify(tags.get(RECORD_TAG), trusted, version)
    require_vouched(record.model_dump(mode="json"), {"onnx_sha256": registered_onnx_sha256(registry, tags["run_id"], tags)})
    return record


def verified_build(config: HeartgateConfig, registry: Registry, version: str, environ: Mapping[str, str]) -> BentoBuild:
    """The bento of release `version`, proven: its record verifies, the registry's ONNX file is
    the vouched one, and so are the bento's model and code (what both targets serve). Every path
    to serving (deploy, rollback, reconcile) builds through here; the served process checks the
    same record again at start (heartgate.serving.proof.check_served_model)."""
    record = verified_release(registry, version, trusted_key(config, environ))
    built = build_bento(registry, version, release=registry.tags(version)[RECORD_TAG])
    found = {"onnx_sha256": built.onnx_sha256, "serving_code_sha256": files_sha256(list(record.serving_files), bento_src(built.bento_tag))}
    require_vouched(record.model_dump(mode="json"), found)
    return built

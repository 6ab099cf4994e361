"""`heartgate history`: the promotion ledger, read from the registry alone (shared state is the
truth): per version, newest first, what was decided, when, by whom and why, the gate's figures,
where it was deployed and when it was rolled back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from heartgate.adapters.registry import Registry
from heartgate.release.record import RECORD_TAG, SignedRecord

if TYPE_CHECKING:  # for the annotations only: the library is imported where it is used
    from mlflow.entities.model_registry import ModelVersion


class LedgerEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    registered_at: str
    aliases: tuple[str, ...]
    decision: str  # promoted | rejected | not promoted (gate) | timed out | deploy failed | waiting
    decided_at: str | None
    reviewer: str | None
    why: str
    gate: str
    deployed: tuple[str, ...]  # "local at T (URL)"
    rolled_back: str | None
    flow_run: str | None
    mlflow_run: str
    release: str | None = None  # the signed release record, as stored (`heartgate verify` checks it)

    def lines(self) -> list[str]:
        aliases = " ".join(f"@{alias}" for alias in self.aliases)
        by = f" by {self.reviewer}" if self.reviewer else ""
        at = f" at {self.decided_at}" if self.decided_at else ""
        lines = [f"v{self.version}  {self.decision}{by}{at}" + (f"  [{aliases}]" if aliases else "")]
        if self.why:
            lines.append(f"    why: {self.why}")
        lines.append(f"    gate: {self.gate}")
        lines += [f"    deployed: {where}" for where in self.deployed]
        if self.rolled_back:
            lines.append(f"    rolled back: {self.rolled_back}")
        if self.release:
            lines.append(f"    release record: {self.release}")
        origin = f"Prefect flow run {self.flow_run}, " if self.flow_run else ""
        lines.append(f"    registered {self.registered_at} from {origin}MLflow run {self.mlflow_run}")
        return lines


def _decision(tags: dict[str, str]) -> str:
    if "promoted_at" in tags:
        return "promoted"
    answer = tags.get("approval.decision")
    if answer == "rejected":
        return "rejected"
    if answer == "timed_out":
        return "not promoted: approval timed out"
    if tags.get("gate.promotable") == "false":
        return "not promoted: did not pass the gate"
    if "rejected" in tags:
        return "not promoted"
    return "no decision recorded (waiting, or its wait expired on the Prefect server)" if answer is None else f"approved ({answer})"


def _gate(tags: dict[str, str]) -> str:
    if "gate.candidate_precision" not in tags:
        return "not scored"
    ours = f"precision {float(tags['gate.candidate_precision']):.4f}, recall {float(tags['gate.candidate_recall']):.4f}"
    production = tags.get("gate.production_version", "none")
    if production == "none":
        theirs = "nothing in production"
    else:
        theirs = f"v{production}: {float(tags['gate.production_precision']):.4f}, {float(tags['gate.production_recall']):.4f}"
    verdict = "passed" if tags.get("gate.promotable") == "true" else "not passed"
    return f"{ours} vs {theirs}: {verdict}"


def _why(tags: dict[str, str]) -> str:
    if tags.get("approval.comment"):
        return tags["approval.comment"]
    if "rejected" in tags and "promoted_at" not in tags:
        return tags["rejected"]
    return ""


def _deployed(tags: dict[str, str]) -> tuple[str, ...]:
    places = []
    for key, value in sorted(tags.items()):
        if key.startswith("deployed."):
            when, _, url = value.partition(": ")
            places.append(f"{key.removeprefix('deployed.')} at {when} ({url})")
        elif key.startswith("reconciled."):
            places.append(f"{key.removeprefix('reconciled.')}: {value}")
    return tuple(places)


def entry(version: ModelVersion, aliases: tuple[str, ...] = ()) -> LedgerEntry:
    tags = dict(version.tags)
    registered = datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC).isoformat(timespec="seconds")
    flow_run = tags.get("prefect.flow_run_name")
    if flow_run and tags.get("prefect.flow_run_url"):
        flow_run += f" ({tags['prefect.flow_run_url']})"
    return LedgerEntry(
        version=str(version.version),
        registered_at=registered,
        aliases=aliases,
        decision=_decision(tags),
        decided_at=tags.get("promoted_at") or tags.get("approval.answered_at"),
        reviewer=tags.get("approval.reviewer"),
        why=_why(tags),
        gate=_gate(tags),
        deployed=_deployed(tags),
        rolled_back=tags.get("rolled_back"),
        flow_run=flow_run,
        mlflow_run=str(version.run_id),
        release=_release(tags.get(RECORD_TAG)),
    )


def _release(stored: str | None) -> str | None:
    if not stored:
        return None
    try:
        signed = SignedRecord.model_validate_json(stored)
    except ValueError:
        return "malformed (`heartgate verify` says why)"
    record = signed.record
    return f"signed by key {signed.key_id}, approver {record.approver}, onnx sha256 {record.onnx_sha256[:12]} (`heartgate verify {record.version}` checks it)"


def ledger(registry: Registry, limit: int | None = None) -> list[LedgerEntry]:
    """Newest first."""
    versions = registry.client.search_model_versions(f"name = '{registry.model_name}'")
    versions.sort(key=lambda v: int(v.version), reverse=True)
    pointing = registry.client.get_registered_model(registry.model_name).aliases if versions else {}
    aliases = {str(v.version): tuple(sorted(a for a, target in pointing.items() if str(target) == str(v.version))) for v in versions}
    return [entry(version, aliases[str(version.version)]) for version in versions[:limit]]

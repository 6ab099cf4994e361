"""The typed results each step hands to the next. Small, frozen, serializable (Prefect persists
them as task results): a step's output is one of these, never a tuple or a dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from heartgate.core.lineage import Lineage

GATED_METRICS = ("precision", "recall")


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


class DataVersion(_Contract):
    """One version of the data. `path` is the content-addressed copy (the DVC cache object named
    by `md5`), never a file another run may rewrite."""

    path: Path
    md5: str
    rows: int
    abnormal_rows: int
    source: str
    source_sha256: str
    previous_md5: str | None = None  # the data version before this pull (None: the first)

    @property
    def new(self) -> bool:
        return self.md5 != self.previous_md5

    def describe(self) -> str:
        """What pull-data fetched and versioned, in one line."""
        versioned = "the same version as before" if not self.new else f"a new version (was {self.previous_md5})" if self.previous_md5 else "the first version"
        return (
            f"fetched {self.source} (sha256 {self.source_sha256[:12]}…): {self.rows} beats, {self.abnormal_rows} abnormal; "
            f"data md5 {self.md5}, {versioned}, pushed to the DVC remote"
        )


class SplitVersion(_Contract):
    """The split file of one data version, content-addressed like the data."""

    path: Path
    md5: str
    counts: dict[str, int]


class RunOrigin(_Contract):
    """The Prefect flow run a model comes from: tags on its MLflow run and registry version."""

    flow_run_id: str
    flow_run_name: str
    flow_run_url: str | None  # None: Prefect's temporary server, gone after the run
    source: str  # the flow's entrypoint, what MLflow shows as the run's Source

    def as_tags(self) -> dict[str, str]:
        tags = {"prefect.flow_run_id": self.flow_run_id, "prefect.flow_run_name": self.flow_run_name}
        return tags | ({"prefect.flow_run_url": self.flow_run_url} if self.flow_run_url else {})


class TrainResult(_Contract):
    run_id: str
    model_uri: str  # the MLflow (keras flavor) model
    onnx_artifact: str  # path of the ONNX export inside the run's artifacts
    epochs: int
    final_loss: float
    final_val_loss: float
    train_seconds: float
    experiment_id: str = ""
    reused_from: str | None = None  # the training-cache entry whose model this run reused (heartgate.ml.training_cache)

    def describe(self) -> str:
        trained = f"{self.epochs} epochs in {self.train_seconds:.1f}s"
        return f"{trained}, reused from the training cache (entry {self.reused_from[:12]})" if self.reused_from else trained


class Metrics(_Contract):
    precision: float
    recall: float
    f1: float
    accuracy: float
    roc_auc: float
    pr_auc: float
    tp: int
    fp: int
    tn: int
    fn: int

    def as_mlflow(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_{key}": float(value) for key, value in self.model_dump().items()}


class EvaluationResult(_Contract):
    threshold: float
    threshold_rule: str
    validation: Metrics
    test: Metrics
    smoke_artifact: str = ""  # the run artifact holding this model's smoke-test beats

    def markdown(self) -> str:
        rows = [
            f"### Candidate metrics (threshold {self.threshold:.5g}, rule `{self.threshold_rule}`; abnormal = positive)",
            "",
            "| split | precision | recall | F1 | accuracy | ROC AUC | PR AUC | TP | FP | TN | FN |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, m in (("validation", self.validation), ("test", self.test)):
            rows.append(
                f"| {name} | {m.precision:.4f} | {m.recall:.4f} | {m.f1:.4f} | {m.accuracy:.4f} | {m.roc_auc:.4f} "
                f"| {m.pr_auc:.4f} | {m.tp} | {m.fp} | {m.tn} | {m.fn} |"
            )
        return "\n".join(rows)


class RegisteredVersion(_Contract):
    name: str
    version: str
    run_id: str
    tags: dict[str, str]


class ClassRecall(_Contract):
    """How many test beats of one class a model flags as abnormal (recall for classes 2..5, the
    false-alarm count for class 1)."""

    label: int
    beats: int
    flagged: int

    @property
    def share(self) -> float:
        return self.flagged / self.beats if self.beats else 0.0


class ModelScore(_Contract):
    """One registered version scored on the current test split with its own threshold."""

    version: str
    threshold: float
    metrics: Metrics
    per_class: tuple[ClassRecall, ...] = ()


class BootstrapBounds(_Contract):
    """One-sided lower confidence bounds of candidate minus production, per gated metric."""

    precision_lower: float
    recall_lower: float
    samples: int
    confidence: float


class GateDecision(_Contract):
    promotable: bool
    reasons: tuple[str, ...]
    candidate: ModelScore
    production: ModelScore | None  # None: nothing in production when the gate scored
    margin: float
    bootstrap: BootstrapBounds | None = None

    @property
    def production_version(self) -> str | None:
        return self.production.version if self.production else None

    def as_tags(self) -> dict[str, str]:
        tags = {
            "gate.promotable": str(self.promotable).lower(),
            "gate.reasons": "; ".join(self.reasons),
            "gate.production_version": self.production_version or "none",
            "gate.margin": repr(self.margin),
        }
        for name in GATED_METRICS:
            tags[f"gate.candidate_{name}"] = f"{getattr(self.candidate.metrics, name):.6f}"
            if self.production:
                tags[f"gate.production_{name}"] = f"{getattr(self.production.metrics, name):.6f}"
        return tags

    def markdown(self) -> str:
        """A side-by-side table an approver can decide from."""
        production = self.production
        header = f"production v{production.version}" if production else "production (none yet)"
        lines = [
            f"### Promotion gate: {'PASSED' if self.promotable else 'NOT PASSED'}",
            "",
            "Both models scored now, on the same current test split (abnormal = positive class).",
            "",
            f"| metric | candidate v{self.candidate.version} | {header} | change |",
            "|---|---|---|---|",
        ]
        for name in ("precision", "recall", "f1", "accuracy", "roc_auc", "pr_auc"):
            ours = getattr(self.candidate.metrics, name)
            if production:
                theirs = getattr(production.metrics, name)
                lines.append(f"| {name} | {ours:.4f} | {theirs:.4f} | {ours - theirs:+.4f} |")
            else:
                lines.append(f"| {name} | {ours:.4f} | – | – |")
        theirs_threshold = f"{production.threshold:.5g}" if production else "–"
        lines.append(f"| threshold | {self.candidate.threshold:.5g} | {theirs_threshold} | |")
        lines += ["", "**Why:**", *(f"- {reason}" for reason in self.reasons)]
        return "\n".join(lines)


class ApprovalOutcome(_Contract):
    decision: Literal["approved", "rejected", "timed_out"]
    reviewer: str
    comment: str
    answered_at: str

    @property
    def approved(self) -> bool:
        return self.decision == "approved"

    def as_tags(self) -> dict[str, str]:
        return {
            "approval.decision": self.decision,
            "approval.reviewer": self.reviewer,
            "approval.comment": self.comment,
            "approval.answered_at": self.answered_at,
        }


class Promotion(_Contract):
    version: str
    previous: str | None  # @production before, now @previous
    previous_alias_before: str | None  # what @previous pointed at before, restored by a revert
    reviewer: str


class BentoBuild(_Contract):
    bento_tag: str
    model_tag: str
    registry_version: str
    onnx_sha256: str


class Deployment(_Contract):
    """What is deployed on a target: enough to put it back exactly. Targets that need more
    (the Lambda alias, say) extend it."""

    target: str
    url: str
    bento_tag: str
    registry_version: str
    variables: dict[str, Any]
    state_serial: int | None = None


class ServingState(_Contract):
    """What a target serves, checked now (never trusted from a record): the actual state that
    reconcile compares with the desired one (`@production`)."""

    target: str
    deployed: str | None = None  # the registry version the target's Terraform state deployed
    answering: str | None = None  # the registry version that answers now (None: nothing answers)
    url: str | None = None
    problems: tuple[str, ...] = ()  # what is wrong beyond the version: a dead server, a stray, a stale lock
    notes: tuple[str, ...] = ()  # worth knowing, not a fault: settings the next deploy will apply

    def serves(self, version: str | None) -> bool:
        return not self.problems and self.deployed == self.answering == version

    def describe(self) -> str:
        if self.deployed is None and self.answering is None and not self.problems:
            return "nothing deployed"
        served = f"version {self.deployed} deployed" if self.deployed else "nothing deployed"
        answers = f"answering as version {self.answering}" if self.answering else "NOT ANSWERING"
        return "; ".join([f"{served} at {self.url}, {answers}", *self.problems, *self.notes])


class Reconciled(_Contract):
    """What one reconcile found and did on a target."""

    target: str
    desired: str | None  # the registry version that should serve (None: nothing should)
    action: Literal["in_sync", "redeployed", "fell_back", "nothing_desired"]
    message: str  # one line: what serves now and, after a repair, what was wrong

    @property
    def outcome(self) -> str:
        """The watchdog run's final message."""
        return self.message


class RunSummary(_Contract):
    """What one train-and-deploy run did, step by step; `lines()` is what the CLI prints."""

    reconciled: Reconciled | None  # what the reconcile before the run found and did
    data: DataVersion
    split: SplitVersion
    lineage: Lineage
    trained: TrainResult
    evaluation: EvaluationResult
    candidate: RegisteredVersion
    gate: GateDecision
    approval: ApprovalOutcome | None = None
    promotion: Promotion | None = None
    deployment: Deployment | None = None

    @property
    def outcome(self) -> str:
        version = self.candidate.version
        if self.promotion and self.deployment:
            return (
                f"promoted version {version} to @production (approved by {self.promotion.reviewer}) "
                f"and deployed {self.deployment.bento_tag} to {self.deployment.target} at {self.deployment.url}"
            )
        if not self.gate.promotable:
            return f"not promoted: version {version} did not pass the gate; production unchanged"
        assert self.approval is not None
        return f"not promoted: version {version} rejected by {self.approval.reviewer}; production unchanged"

    @property
    def outcome_tag(self) -> str:
        """The flow run's tag: the outcome at a glance in the runs list."""
        if self.promotion and self.deployment:
            return "outcome:deployed"
        return "outcome:not-promoted" if not self.gate.promotable else "outcome:rejected"

    def lines(self) -> list[str]:
        test = self.evaluation.test
        return [
            *([f"reconcile: {self.reconciled.message}"] if self.reconciled else []),
            f"data {self.data.md5} ({self.data.rows} beats), split {self.split.md5} {self.split.counts}",
            f"MLflow run {self.trained.run_id}: {self.trained.describe()}",
            f"threshold {self.evaluation.threshold:.5g} ({self.evaluation.threshold_rule}); test precision "
            f"{test.precision:.4f} recall {test.recall:.4f} F1 {test.f1:.4f} ROC AUC {test.roc_auc:.4f} PR AUC {test.pr_auc:.4f}",
            f"registered {self.candidate.name} version {self.candidate.version} as @candidate",
            *(f"gate: {reason}" for reason in self.gate.reasons),
            self.outcome,
        ]

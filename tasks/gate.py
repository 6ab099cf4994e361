"""promotion-gate: is the candidate proven better than the model in production?

The user's rule: the candidate's test precision AND recall (abnormal = positive) must both be
strictly greater than production's, both scored now, on the same current test split. Production
is re-scored from its registered ONNX export with its own threshold; numbers stored from an older
split are never compared. Optional: a margin, and a paired bootstrap over the test rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, ConfigDict

from heartgate.config import GateConfig, HeartgateConfig
from heartgate.registry import PRODUCTION_ALIAS, tag_version, version_by_alias
from heartgate.scorer import OnnxScorer
from heartgate.tracking import connect, download_onnx
from tasks.evaluate import Metrics, classification_metrics
from tasks.pull_data import DataVersion
from tasks.register import RegisteredVersion
from tasks.split_data import SplitArrays, SplitVersion, load_split_arrays

GATED_METRICS = ("precision", "recall")


class ModelScore(BaseModel):
    """One registered version scored on the current test split with its own threshold."""

    model_config = ConfigDict(frozen=True)

    version: str
    threshold: float
    metrics: Metrics


class BootstrapBounds(BaseModel):
    """One-sided lower confidence bounds of candidate minus production, per gated metric."""

    model_config = ConfigDict(frozen=True)

    precision_lower: float
    recall_lower: float
    samples: int
    confidence: float


class GateDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

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


# --- pure decision logic -------------------------------------------------------------------------


def paired_bootstrap(
    candidate_flags: np.ndarray, production_flags: np.ndarray, abnormal: np.ndarray, config: GateConfig
) -> BootstrapBounds:
    """Resample test rows (the same rows for both models) and bound each metric's improvement."""
    rng = np.random.default_rng(config.seed)
    rows = rng.integers(0, len(abnormal), size=(config.bootstrap_samples, len(abnormal)))
    truth = abnormal[rows]

    def precision_recall(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flagged = flags[rows]
        tp = (flagged & truth).sum(axis=1)
        precision = np.divide(tp, flagged.sum(axis=1), out=np.zeros(len(rows)), where=flagged.sum(axis=1) > 0)
        recall = np.divide(tp, truth.sum(axis=1), out=np.zeros(len(rows)), where=truth.sum(axis=1) > 0)
        return precision, recall

    candidate_precision, candidate_recall = precision_recall(candidate_flags)
    production_precision, production_recall = precision_recall(production_flags)
    tail = 1.0 - config.confidence
    return BootstrapBounds(
        precision_lower=float(np.quantile(candidate_precision - production_precision, tail)),
        recall_lower=float(np.quantile(candidate_recall - production_recall, tail)),
        samples=config.bootstrap_samples,
        confidence=config.confidence,
    )


def decide(
    candidate: ModelScore,
    production: ModelScore | None,
    config: GateConfig,
    bounds: BootstrapBounds | None = None,
) -> GateDecision:
    if production is None:
        return GateDecision(
            promotable=True,
            reasons=("no model in production yet: the first candidate is promotable (approval still required)",),
            candidate=candidate, production=None, margin=config.margin,
        )  # fmt: skip
    if config.bootstrap and bounds is None:
        raise ValueError("bootstrap mode needs the bootstrap bounds")

    reasons: list[str] = []
    promotable = True
    for name in GATED_METRICS:
        ours, theirs = getattr(candidate.metrics, name), getattr(production.metrics, name)
        better = ours > theirs + config.margin
        promotable &= better
        verdict = "better" if better else "not better"
        margin_note = f" by more than the margin {config.margin:g}" if config.margin else ""
        reasons.append(f"{name} {ours:.4f} vs {theirs:.4f} ({ours - theirs:+.4f}): {verdict}{margin_note}")
    if config.bootstrap and bounds is not None:
        for name, lower in (("precision", bounds.precision_lower), ("recall", bounds.recall_lower)):
            sure = lower > config.margin
            promotable &= sure
            reasons.append(
                f"{name} improvement lower bound ({bounds.confidence:.0%}, {bounds.samples} paired resamples) "
                f"{lower:+.4f}: {'above' if sure else 'not above'} {config.margin:g}"
            )
    return GateDecision(
        promotable=promotable, reasons=tuple(reasons), candidate=candidate, production=production,
        margin=config.margin, bootstrap=bounds,
    )  # fmt: skip


# --- the task ------------------------------------------------------------------------------------


def score_registered(version: str, tags: dict[str, str], arrays: SplitArrays, into: Path) -> tuple[ModelScore, np.ndarray]:
    """Score a registered version on the test split: its ONNX export, its own threshold."""
    threshold = float(tags["threshold"])
    errors = OnnxScorer(download_onnx(tags["run_id"], tags["onnx_artifact"], into / version)).errors(arrays.test)
    score = ModelScore(version=version, threshold=threshold, metrics=classification_metrics(errors, arrays.test_abnormal, threshold))
    return score, errors > threshold


def run_gate(config: HeartgateConfig, data: DataVersion, split: SplitVersion, candidate: RegisteredVersion) -> GateDecision:
    import mlflow

    arrays = load_split_arrays(data, split, config.split.seed)
    connect(config)
    client = mlflow.MlflowClient()
    production = version_by_alias(client, config.registry.model_name, PRODUCTION_ALIAS)
    with tempfile.TemporaryDirectory() as scratch:
        candidate_score, candidate_flags = score_registered(candidate.version, candidate.tags, arrays, Path(scratch))
        production_score, bounds = None, None
        if production is not None:
            production_score, production_flags = score_registered(
                str(production.version), dict(production.tags), arrays, Path(scratch)
            )
            if config.gate.bootstrap:
                bounds = paired_bootstrap(candidate_flags, production_flags, arrays.test_abnormal, config.gate)
    decision = decide(candidate_score, production_score, config.gate, bounds)

    rejection = {} if decision.promotable else {"rejected": "gate: " + "; ".join(decision.reasons)}
    tag_version(client, candidate.name, candidate.version, decision.as_tags() | rejection)
    return decision


@task(name="promotion-gate")
def promotion_gate(
    config: HeartgateConfig, data: DataVersion, split: SplitVersion, candidate: RegisteredVersion
) -> GateDecision:
    decision = run_gate(config, data, split, candidate)
    create_markdown_artifact(decision.markdown(), key="promotion-gate", description="candidate vs production")
    logger = get_run_logger()
    logger.info("gate %s for version %s", "passed" if decision.promotable else "NOT passed", candidate.version)
    for reason in decision.reasons:
        logger.info("  %s", reason)
    return decision

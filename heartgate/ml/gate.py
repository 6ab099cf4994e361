"""promotion-gate: is the candidate proven better than the model in production?

The user's rule: the candidate's test precision AND recall (abnormal = positive) must both be
strictly greater than production's, both scored now, on the same current test split. Production
is re-scored from its registered ONNX export with its own threshold; numbers stored from an older
split are never compared. Optional: a margin, and a paired bootstrap over the test rows.
"""

from __future__ import annotations

import numpy as np

from heartgate.adapters.registry import PRODUCTION_ALIAS, Registry
from heartgate.core.config import GateConfig
from heartgate.core.contracts import (
    GATED_METRICS,
    BootstrapBounds,
    GateDecision,
    ModelScore,
    RegisteredVersion,
)
from heartgate.ml.metrics import class_recalls, classification_metrics
from heartgate.ml.plots import gate_histograms, png_bytes
from heartgate.ml.splits import SplitArrays
from heartgate.serving.scorer import OnnxScorer

# --- pure decision logic -------------------------------------------------------------------------


def paired_bootstrap(candidate_flags: np.ndarray, production_flags: np.ndarray, abnormal: np.ndarray, config: GateConfig) -> BootstrapBounds:
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
            candidate=candidate,
            production=None,
            margin=config.margin,
        )
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
        promotable=promotable,
        reasons=tuple(reasons),
        candidate=candidate,
        production=production,
        margin=config.margin,
        bootstrap=bounds,
    )


# --- the step ------------------------------------------------------------------------------------


GATE_PLOT = "plots/gate_error_histogram.png"  # logged to the candidate's run; the approval page shows it


def score_registered(registry: Registry, version: str, tags: dict[str, str], arrays: SplitArrays) -> tuple[ModelScore, np.ndarray]:
    """Score a registered version on the test split: its ONNX export, its own threshold. Returns
    the score and each test beat's error."""
    threshold = float(tags["threshold"])
    errors = OnnxScorer(registry.artifact(tags["run_id"], tags["onnx_artifact"])).errors(arrays.test)
    score = ModelScore(
        version=version,
        threshold=threshold,
        metrics=classification_metrics(errors, arrays.test_abnormal, threshold),
        per_class=class_recalls(errors, arrays.test_labels, threshold),
    )
    return score, errors


def promotion_gate(gate: GateConfig, registry: Registry, arrays: SplitArrays, candidate: RegisteredVersion) -> GateDecision:
    """Score both models now, decide, record the decision in the candidate's version tags, and log
    both models' error histograms to the candidate's run."""
    production = registry.by_alias(PRODUCTION_ALIAS)
    candidate_score, candidate_errors = score_registered(registry, candidate.version, candidate.tags, arrays)
    scores, errors = {f"candidate v{candidate.version}": candidate_score}, {f"candidate v{candidate.version}": candidate_errors}
    production_score, bounds = None, None
    if production is not None:
        production_score, production_errors = score_registered(registry, str(production.version), dict(production.tags), arrays)
        scores[f"production v{production.version}"], errors[f"production v{production.version}"] = production_score, production_errors
        if gate.bootstrap:
            flags = (candidate_errors > candidate_score.threshold, production_errors > production_score.threshold)
            bounds = paired_bootstrap(*flags, arrays.test_abnormal, gate)
    decision = decide(candidate_score, production_score, gate, bounds)

    rejection = {} if decision.promotable else {"rejected": "gate: " + "; ".join(decision.reasons)}
    registry.tag(candidate.version, decision.as_tags() | rejection)
    figure = gate_histograms(errors, {name: score.threshold for name, score in scores.items()}, arrays.test_abnormal)
    registry.log_bytes(candidate.run_id, GATE_PLOT, png_bytes(figure))
    return decision

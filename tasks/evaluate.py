"""evaluate-and-pick-threshold: a threshold from the validation split, metrics on the test split.

Abnormal beats (UCR labels 2..5) are the positive class everywhere: a beat is flagged abnormal
when its reconstruction error is strictly greater than the threshold.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, ConfigDict

from heartgate.config import HeartgateConfig, ThresholdConfig
from heartgate.scorer import OnnxScorer
from heartgate.tracking import connect, download_onnx
from tasks.pull_data import DataVersion
from tasks.split_data import SplitVersion, load_split_arrays
from tasks.train import TrainResult


class Metrics(BaseModel):
    model_config = ConfigDict(frozen=True)

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


class EvaluationResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    threshold: float
    threshold_rule: str
    validation: Metrics
    test: Metrics

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


# --- pure metric helpers -------------------------------------------------------------------------


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both classes")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties (Mann-Whitney U).
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _descending_counts(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each distinct score, high to low: the score, and TP/FP counts when flagging >= it."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_positive = scores[order], positive[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    true_positives = np.cumsum(sorted_positive)[last_of_group]
    false_positives = (last_of_group + 1) - true_positives
    return sorted_scores[last_of_group], true_positives, false_positives


def pr_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision: sum over thresholds of precision times the recall gained there."""
    _, tp, fp = _descending_counts(scores, positive)
    recall = tp / max(int(positive.sum()), 1)
    precision = tp / (tp + fp)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_points(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, tp, fp = _descending_counts(scores, positive)
    return np.r_[0.0, fp / max(int((~positive).sum()), 1)], np.r_[0.0, tp / max(int(positive.sum()), 1)]


def pr_points(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, tp, fp = _descending_counts(scores, positive)
    return tp / max(int(positive.sum()), 1), tp / (tp + fp)


def classification_metrics(errors: np.ndarray, abnormal: np.ndarray, threshold: float) -> Metrics:
    predicted = errors > threshold
    tp = int(np.sum(predicted & abnormal))
    fp = int(np.sum(predicted & ~abnormal))
    fn = int(np.sum(~predicted & abnormal))
    tn = int(np.sum(~predicted & ~abnormal))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return Metrics(
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        accuracy=_ratio(tp + tn, len(errors)),
        roc_auc=roc_auc(errors, abnormal),
        pr_auc=pr_auc(errors, abnormal),
        tp=tp, fp=fp, tn=tn, fn=fn,
    )  # fmt: skip


def pick_threshold(errors: np.ndarray, abnormal: np.ndarray, config: ThresholdConfig) -> float:
    """The threshold, from validation errors only.

    max_f1: among cuts between consecutive distinct errors, the one with the best F1 (ties: the
    lowest cut); the threshold sits halfway between the two errors around the cut, so it does not
    sit on a training example. normal_quantile: that quantile of the normal beats' errors.
    """
    if config.rule == "normal_quantile":
        return float(np.quantile(errors[~abnormal], config.normal_quantile))
    if not abnormal.any() or abnormal.all():
        raise ValueError("max_f1 needs normal and abnormal validation beats")
    distinct, tp, fp = _descending_counts(errors, abnormal)
    precision = tp / (tp + fp)
    recall = tp / int(abnormal.sum())
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0)
    best = int(np.argmax(f1))  # flag every beat with error >= distinct[best]
    below = distinct[best + 1] if best + 1 < len(distinct) else distinct[best] - 1.0
    return float((distinct[best] + below) / 2.0)


# --- plots (figures in memory; the task logs them) -----------------------------------------------


def error_histogram(errors: np.ndarray, abnormal: np.ndarray, threshold: float):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    bins = np.linspace(errors.min(), np.quantile(errors, 0.995), 60)
    axes.hist(errors[~abnormal], bins=bins, alpha=0.6, label="normal (label 1)")
    axes.hist(errors[abnormal], bins=bins, alpha=0.6, label="abnormal (labels 2..5)")
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    axes.set_xlabel("reconstruction error (MSE, scaled)")
    axes.set_ylabel("beats")
    axes.set_title("Test split: reconstruction error by class")
    axes.legend()
    figure.tight_layout()
    return figure


def roc_pr_curves(errors: np.ndarray, abnormal: np.ndarray, metrics: Metrics):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4))
    roc_axes, pr_axes = figure.subplots(1, 2)
    fpr, tpr = roc_points(errors, abnormal)
    roc_axes.plot(fpr, tpr)
    roc_axes.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_axes.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC (AUC {metrics.roc_auc:.4f})")
    recall, precision = pr_points(errors, abnormal)
    pr_axes.plot(recall, precision)
    pr_axes.set(xlabel="recall", ylabel="precision", title=f"Precision-recall (AP {metrics.pr_auc:.4f})")
    figure.tight_layout()
    return figure


# --- the task ------------------------------------------------------------------------------------


def evaluate_and_log(
    config: HeartgateConfig, data: DataVersion, split: SplitVersion, trained: TrainResult
) -> EvaluationResult:
    import mlflow
    from mlflow.entities import Metric

    arrays = load_split_arrays(data, split, config.split.seed)
    connect(config)
    with tempfile.TemporaryDirectory() as scratch:
        scorer = OnnxScorer(download_onnx(trained.run_id, trained.onnx_artifact, Path(scratch)))
        validation_errors = scorer.errors(arrays.validation)
        test_errors = scorer.errors(arrays.test)
    threshold = pick_threshold(validation_errors, arrays.validation_abnormal, config.threshold)
    result = EvaluationResult(
        threshold=threshold,
        threshold_rule=config.threshold.rule,
        validation=classification_metrics(validation_errors, arrays.validation_abnormal, threshold),
        test=classification_metrics(test_errors, arrays.test_abnormal, threshold),
    )
    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    values = {"threshold": threshold, **result.validation.as_mlflow("val"), **result.test.as_mlflow("test")}
    client.log_batch(trained.run_id, metrics=[Metric(key, value, now, 0) for key, value in values.items()])
    client.log_figure(trained.run_id, error_histogram(test_errors, arrays.test_abnormal, threshold), "plots/error_histogram.png")
    client.log_figure(trained.run_id, roc_pr_curves(test_errors, arrays.test_abnormal, result.test), "plots/roc_pr_curves.png")
    return result


@task(name="evaluate-and-pick-threshold")
def evaluate_and_pick_threshold(
    config: HeartgateConfig, data: DataVersion, split: SplitVersion, trained: TrainResult
) -> EvaluationResult:
    result = evaluate_and_log(config, data, split, trained)
    create_markdown_artifact(result.markdown(), key="candidate-metrics", description="validation and test metrics")
    get_run_logger().info(
        "threshold %.5g (%s); test precision %.4f recall %.4f F1 %.4f ROC AUC %.4f",
        result.threshold, result.threshold_rule, result.test.precision, result.test.recall,
        result.test.f1, result.test.roc_auc,
    )  # fmt: skip
    return result

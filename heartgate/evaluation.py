"""evaluate-and-pick-threshold: a threshold from the validation split, metrics on the test split,
plots of both, and the smoke-test beats every deploy of this model will be checked with.

Abnormal beats (UCR labels 2..5) are the positive class everywhere: a beat is flagged abnormal
when its reconstruction error is strictly greater than the threshold.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from heartgate.config import HeartgateConfig
from heartgate.contracts import EvaluationResult, Metrics, TrainResult
from heartgate.metrics import (
    classification_metrics,
    pick_threshold,
    pr_points,
    roc_points,
)
from heartgate.registry import Registry
from heartgate.scorer import OnnxScorer
from heartgate.smoke import smoke_beats
from heartgate.splits import SplitArrays

SMOKE_ARTIFACT = "smoke/beats.json"


# --- plots (figures in memory; they are logged to the run) ---------------------------------------


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


# --- the step ------------------------------------------------------------------------------------


def _log_evaluation(registry: Registry, run_id: str, result: EvaluationResult, test_errors: np.ndarray, test_abnormal: np.ndarray) -> None:
    from mlflow.entities import Metric

    client = registry.client
    now = int(time.time() * 1000)
    values = {"threshold": result.threshold, **result.validation.as_mlflow("val"), **result.test.as_mlflow("test")}
    client.log_batch(run_id, metrics=[Metric(key, value, now, 0) for key, value in values.items()])
    client.log_figure(run_id, error_histogram(test_errors, test_abnormal, result.threshold), "plots/error_histogram.png")
    client.log_figure(run_id, roc_pr_curves(test_errors, test_abnormal, result.test), "plots/roc_pr_curves.png")


def _log_smoke_beats(registry: Registry, run_id: str, record: dict) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / Path(SMOKE_ARTIFACT).name
        path.write_text(json.dumps(record))
        registry.client.log_artifact(run_id, str(path), artifact_path=str(Path(SMOKE_ARTIFACT).parent))
        registry.keep_artifact(run_id, SMOKE_ARTIFACT, path)


def evaluate_and_pick_threshold(
    config: HeartgateConfig, registry: Registry, arrays: SplitArrays, trained: TrainResult
) -> EvaluationResult:
    scorer = OnnxScorer(registry.artifact(trained.run_id, trained.onnx_artifact))
    validation_errors = scorer.errors(arrays.validation)
    test_errors = scorer.errors(arrays.test)
    threshold = pick_threshold(validation_errors, arrays.validation_abnormal, config.threshold)
    result = EvaluationResult(
        threshold=threshold,
        threshold_rule=config.threshold.rule,
        validation=classification_metrics(validation_errors, arrays.validation_abnormal, threshold),
        test=classification_metrics(test_errors, arrays.test_abnormal, threshold),
        smoke_artifact=SMOKE_ARTIFACT,
    )
    _log_evaluation(registry, trained.run_id, result, test_errors, arrays.test_abnormal)
    _log_smoke_beats(registry, trained.run_id, smoke_beats(arrays.test, test_errors, arrays.test_abnormal))
    return result

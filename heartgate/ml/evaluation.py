"""evaluate-and-pick-threshold: a threshold from the validation split, metrics on the test split,
plots of both, and the smoke-test beats every deploy of this model will be checked with.

Abnormal beats (UCR labels 2..5) are the positive class everywhere: a beat is flagged abnormal
when its reconstruction error is strictly greater than the threshold.
"""

from __future__ import annotations

import json
import time

import numpy as np

from heartgate.adapters.registry import Registry
from heartgate.core.config import ThresholdConfig
from heartgate.core.contracts import EvaluationResult, TrainResult
from heartgate.ml.metrics import classification_metrics, pick_threshold
from heartgate.ml.plots import error_histogram, roc_pr_curves
from heartgate.ml.splits import SplitArrays
from heartgate.serving.scorer import OnnxScorer
from heartgate.serving.smoke import smoke_beats

SMOKE_ARTIFACT = "smoke/beats.json"


def _log_evaluation(registry: Registry, run_id: str, result: EvaluationResult, test_errors: np.ndarray, test_abnormal: np.ndarray) -> None:
    from mlflow.entities import Metric

    client = registry.client
    now = int(time.time() * 1000)
    values = {"threshold": result.threshold, **result.validation.as_mlflow("val"), **result.test.as_mlflow("test")}
    client.log_batch(run_id, metrics=[Metric(key, value, now, 0) for key, value in values.items()])
    client.log_figure(run_id, error_histogram(test_errors, test_abnormal, result.threshold), "plots/error_histogram.png")
    client.log_figure(run_id, roc_pr_curves(test_errors, test_abnormal, result.test), "plots/roc_pr_curves.png")


def _log_smoke_beats(registry: Registry, run_id: str, record: dict) -> None:
    registry.log_bytes(run_id, SMOKE_ARTIFACT, json.dumps(record).encode())


def evaluate_and_pick_threshold(rule: ThresholdConfig, registry: Registry, arrays: SplitArrays, trained: TrainResult) -> EvaluationResult:
    scorer = OnnxScorer(registry.artifact(trained.run_id, trained.onnx_artifact))
    validation_errors = scorer.errors(arrays.validation)
    test_errors = scorer.errors(arrays.test)
    threshold = pick_threshold(validation_errors, arrays.validation_abnormal, rule)
    result = EvaluationResult(
        threshold=threshold,
        threshold_rule=rule.rule,
        validation=classification_metrics(validation_errors, arrays.validation_abnormal, threshold),
        test=classification_metrics(test_errors, arrays.test_abnormal, threshold),
        smoke_artifact=SMOKE_ARTIFACT,
    )
    _log_evaluation(registry, trained.run_id, result, test_errors, arrays.test_abnormal)
    _log_smoke_beats(registry, trained.run_id, smoke_beats(arrays.test, test_errors, arrays.test_abnormal))
    return result

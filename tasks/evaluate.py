"""evaluate-and-pick-threshold: threshold on validation, metrics on test (heartgate.ml.evaluation)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

import heartgate.ml.evaluation
from heartgate.adapters.registry import Registry
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import DataVersion, EvaluationResult, SplitVersion, TrainResult
from heartgate.ml.splits import load_split_arrays
from heartgate.release.resume import once_per_flow_run


@task(name="evaluate-and-pick-threshold", cache_key_fn=once_per_flow_run)
def evaluate_and_pick_threshold(config: HeartgateConfig, data: DataVersion, split: SplitVersion, trained: TrainResult) -> EvaluationResult:
    arrays = load_split_arrays(data, split, config.split.seed)
    result = heartgate.ml.evaluation.evaluate_and_pick_threshold(config.threshold, Registry.for_config(config), arrays, trained)
    create_markdown_artifact(result.markdown(), key="candidate-metrics", description="validation and test metrics")
    test = result.test
    get_run_logger().info(
        f"threshold {result.threshold:.5g} ({result.threshold_rule}); test precision {test.precision:.4f} "
        f"recall {test.recall:.4f} F1 {test.f1:.4f} ROC AUC {test.roc_auc:.4f}"
    )
    return result

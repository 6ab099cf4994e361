from pathlib import Path

import pytest

from heartgate.adapters.registry import ALIAS_ATTEMPTS, Registry, version_tags
from heartgate.core.contracts import EvaluationResult, Metrics, TrainResult
from heartgate.core.lineage import Lineage

METRICS = Metrics(precision=0.98, recall=0.97, f1=0.975, accuracy=0.98, roc_auc=0.995, pr_auc=0.99, tp=400, fp=8, tn=580, fn=13)


def test_version_tags_carry_the_lineage_threshold_and_test_metrics():
    lineage = Lineage(data_md5="d" * 32, split_md5="s" * 32, data_source="pypi:x==1", git_commit="abc", config_hash="c" * 16)
    trained = TrainResult(
        run_id="r1", model_uri="models:/m-1", onnx_artifact="onnx/scorer.onnx", epochs=3, final_loss=0.1, final_val_loss=0.1, train_seconds=1.0
    )
    evaluation = EvaluationResult(threshold=0.0012345678901, threshold_rule="max_f1", validation=METRICS, test=METRICS)
    tags = version_tags(lineage, trained, evaluation)
    assert tags["data_md5"] == "d" * 32 and tags["split_md5"] == "s" * 32
    assert tags["git_commit"] == "abc" and tags["config_hash"] == "c" * 16
    assert tags["run_id"] == "r1"
    assert float(tags["threshold"]) == 0.0012345678901  # exact: serving must use the same number
    assert tags["test_precision"] == "0.980000" and tags["test_tp"] == "400"
    assert all(isinstance(value, str) for value in tags.values())


class RacingClient:
    """Fails the first `races` alias writes as MLflow does when another run inserted the row first."""

    def __init__(self, races: int, error: str = 'duplicate key value violates unique constraint "registered_model_alias_pk"') -> None:
        self.races, self.error, self.aliases = races, error, {}

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        from mlflow.exceptions import MlflowException

        if self.races:
            self.races -= 1
            raise MlflowException(f"BAD_REQUEST: (psycopg.errors.UniqueViolation) {self.error}")
        self.aliases[alias] = version


def _registry(client) -> Registry:
    return Registry(client=client, model_name="m", experiment="e", artifact_location=None, cache=Path("/nonexistent"))


def test_an_alias_set_by_two_runs_at_once_is_set_again():
    client = RacingClient(races=1)
    _registry(client).point("candidate", "2")
    assert client.aliases == {"candidate": "2"}


def test_an_alias_that_keeps_failing_or_fails_otherwise_raises():
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="duplicate key"):
        _registry(RacingClient(races=ALIAS_ATTEMPTS)).point("candidate", "2")
    other = RacingClient(races=1, error="RESOURCE_DOES_NOT_EXIST: version 9")
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        _registry(other).point("candidate", "9")
    assert other.races == 0  # tried once: not a race

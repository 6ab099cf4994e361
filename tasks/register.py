"""register: the candidate becomes a new version of the registered model, with its lineage as
version tags, and takes the `@candidate` alias. `@production` is moved only by the gate."""

from __future__ import annotations

from prefect import get_run_logger, task
from pydantic import BaseModel, ConfigDict

from heartgate.config import HeartgateConfig
from heartgate.lineage import Lineage
from heartgate.registry import CANDIDATE_ALIAS
from heartgate.tracking import connect
from tasks.evaluate import EvaluationResult
from tasks.train import TrainResult


class RegisteredVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str
    tags: dict[str, str]


def version_tags(lineage: Lineage, trained: TrainResult, evaluation: EvaluationResult) -> dict[str, str]:
    tags = {
        **lineage.as_tags(),
        "run_id": trained.run_id,
        "onnx_artifact": trained.onnx_artifact,
        "threshold": repr(evaluation.threshold),
        "threshold_rule": evaluation.threshold_rule,
    }
    tags |= {
        f"test_{key}": f"{value:.6f}" if isinstance(value, float) else str(value)
        for key, value in evaluation.test.model_dump().items()
    }
    return tags


def register_version(
    config: HeartgateConfig, lineage: Lineage, trained: TrainResult, evaluation: EvaluationResult
) -> RegisteredVersion:
    import mlflow

    connect(config)
    name = config.registry.model_name
    client = mlflow.MlflowClient()
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(
            name, description="ECG5000 beat anomaly detector (autoencoder; abnormal = positive class)."
        )
    tags = version_tags(lineage, trained, evaluation)
    version = mlflow.register_model(trained.model_uri, name, tags=tags)
    client.set_registered_model_alias(name, CANDIDATE_ALIAS, version.version)
    return RegisteredVersion(name=name, version=str(version.version), run_id=trained.run_id, tags=tags)


@task(name="register")
def register(
    config: HeartgateConfig, lineage: Lineage, trained: TrainResult, evaluation: EvaluationResult
) -> RegisteredVersion:
    registered = register_version(config, lineage, trained, evaluation)
    get_run_logger().info("registered %s version %s as @%s", registered.name, registered.version, CANDIDATE_ALIAS)
    return registered

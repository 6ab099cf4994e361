"""register: the candidate becomes a registry version with its lineage, as `@candidate`; the
Prefect run links to its MLflow run and version, which link back (heartgate.release.links)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact

import heartgate.adapters.registry
from heartgate.adapters.registry import CANDIDATE_ALIAS, Registry
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import EvaluationResult, RegisteredVersion, TrainResult
from heartgate.core.lineage import Lineage
from heartgate.release.links import mlflow_run_url, mlflow_version_url, run_origin
from heartgate.release.resume import once_per_flow_run


@task(name="register", cache_key_fn=once_per_flow_run)
def register(config: HeartgateConfig, lineage: Lineage, trained: TrainResult, evaluation: EvaluationResult) -> RegisteredVersion:
    registered = heartgate.adapters.registry.register(Registry.for_config(config), lineage, trained, evaluation, origin=run_origin())
    run_url = mlflow_run_url(config, trained.experiment_id, trained.run_id)
    version_url = mlflow_version_url(config, registered.name, registered.version)
    create_link_artifact(run_url, link_text=f"MLflow run {trained.run_id}", key="mlflow-run", description="the training run: loss curve, metrics, plots")
    create_link_artifact(
        version_url, link_text=f"{registered.name} version {registered.version}", key="mlflow-version", description="the registered version and its lineage"
    )
    get_run_logger().info(f"registered {registered.name} version {registered.version} as @{CANDIDATE_ALIAS}: {version_url}")
    return registered

"""MLflow wiring: the embedded default is a SQLite store with artifacts under the state dir; a
configured tracking URI (an MLflow server on PostgreSQL + S3) replaces both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from heartgate.config import HeartgateConfig
from heartgate.errors import TrackingError
from heartgate.state import StatePaths


@dataclass(frozen=True)
class Tracking:
    tracking_uri: str
    experiment_id: str


def tracking_uri(config: HeartgateConfig) -> str:
    return config.mlflow.tracking_uri or StatePaths(config.state_root).mlflow_tracking_uri


def connect(config: HeartgateConfig) -> Tracking:
    """Point this process's MLflow at the configured store and make sure the experiment exists."""
    import mlflow

    uri = tracking_uri(config)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(config.mlflow.experiment)
    if experiment is not None:
        return Tracking(uri, experiment.experiment_id)
    artifact_location = None
    if config.mlflow.tracking_uri is None:
        # With a SQLite store MLflow would otherwise put artifacts in ./mlruns of the caller's cwd.
        artifact_location = StatePaths(config.state_root).mlflow_artifacts.as_uri()
    try:
        experiment_id = client.create_experiment(config.mlflow.experiment, artifact_location=artifact_location)
    except mlflow.exceptions.MlflowException:
        # Another run created it between our read and our create.
        experiment_id = client.get_experiment_by_name(config.mlflow.experiment).experiment_id
    return Tracking(uri, experiment_id)


def require_existing_store(config: HeartgateConfig) -> None:
    """For read-only commands: refuse to create an empty embedded store as a side effect."""
    if config.mlflow.tracking_uri is None:
        database = StatePaths(config.state_root).mlflow_dir / "mlflow.db"
        if not database.exists():
            raise TrackingError(f"no MLflow store at {database} yet: run `heartgate run` first")


def download_onnx(run_id: str, artifact: str, into: Path) -> Path:
    """A local copy of a run's ONNX export (a no-op copy for the embedded file store)."""
    import mlflow

    into.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=str(into)))

"""The MLflow adapter: tracking, the Model Registry and run artifacts, through one explicit
`MlflowClient(tracking_uri=...)`. Nothing here touches MLflow's process-global tracking URI.

The embedded default is a SQLite store with artifacts under the state dir; `mlflow.tracking_uri`
(an MLflow server on PostgreSQL + S3) replaces both.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from heartgate.adapters.state import StatePaths
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import EvaluationResult, RegisteredVersion, RunOrigin, TrainResult
from heartgate.core.errors import TrackingError
from heartgate.core.lineage import Lineage

if TYPE_CHECKING:  # for the annotations only: the library is imported where it is used
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CANDIDATE_ALIAS = "candidate"  # the newest registered candidate
PRODUCTION_ALIAS = "production"  # moved only by an approved promotion
PREVIOUS_ALIAS = "previous"  # the production version before the last promotion, for rollback
_CREATED_STORES: set[str] = set()  # embedded stores this process has already seen created
# The MLflow UI opens a model-training experiment on its runs (not the GenAI "Overview" of traces).
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
MODEL_DESCRIPTION = "ECG5000 beat anomaly detector (autoencoder; abnormal = positive class)."
# MLflow sets an alias by reading its row and inserting one when there is none: two runs that
# register at the same moment both insert, and the second fails on the primary key (measured on
# the team stack's PostgreSQL). The row exists then, so setting it again updates it.
ALIAS_RACE = ("duplicate key value violates unique constraint", "UNIQUE constraint failed")
ALIAS_ATTEMPTS = 3


@dataclass(frozen=True)
class Registry:
    client: Any  # mlflow.MlflowClient, bound to one tracking and registry URI
    model_name: str
    experiment: str
    artifact_location: str | None  # where a new experiment keeps artifacts (embedded store only)
    cache: Path  # run artifacts fetched once per machine (they never change once logged)

    @classmethod
    def for_config(cls, config: HeartgateConfig, existing_only: bool = False) -> Registry:
        """existing_only: for read-only commands, refuse to create an empty embedded store."""
        from mlflow import MlflowClient

        paths = StatePaths(config.state_root)
        uri, artifact_location = config.mlflow.tracking_uri, None
        if uri is None:
            if existing_only and not paths.mlflow_database.exists():
                raise TrackingError(f"no MLflow store at {paths.mlflow_database} yet: run `heartgate run` first")
            # With a SQLite store MLflow would otherwise put artifacts in ./mlruns of the caller's cwd.
            uri, artifact_location = paths.mlflow_tracking_uri, paths.mlflow_artifacts.as_uri()
            _create_embedded_store(paths, uri)
        return cls(
            client=MlflowClient(tracking_uri=uri, registry_uri=uri),
            model_name=config.registry.model_name,
            experiment=config.mlflow.experiment,
            artifact_location=artifact_location,
            cache=paths.cache / "run-artifacts",
        )

    def experiment_id(self) -> str:
        """The experiment's id, created on first use, with `EXPERIMENT_TAGS`."""
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is None:
            try:
                return self.client.create_experiment(self.experiment, artifact_location=self.artifact_location, tags=EXPERIMENT_TAGS)
            except MlflowException:  # another run created it between our read and our create
                experiment = self.client.get_experiment_by_name(self.experiment)
        for key, value in EXPERIMENT_TAGS.items():  # an experiment made before heartgate set them
            if experiment.tags.get(key) != value:
                self.client.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id

    # --- versions and aliases ---------------------------------------------------------------------

    def version(self, version: str) -> ModelVersion:
        return self.client.get_model_version(self.model_name, version)

    def by_alias(self, alias: str) -> ModelVersion | None:
        """The version an alias points at, or None when the alias (or the model) does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def alias_version(self, alias: str) -> str | None:
        found = self.by_alias(alias)
        return str(found.version) if found else None

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.version(version).tags)

    def tag(self, version: str, tags: Mapping[str, str]) -> None:
        """Write lineage tags onto a registered version."""
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, version, key, value)

    def point(self, alias: str, version: str | None) -> None:
        """Move `alias` to `version`, or remove it (None)."""
        from mlflow.exceptions import MlflowException

        if version is None:
            self.client.delete_registered_model_alias(self.model_name, alias)
            return
        for attempt in range(1, ALIAS_ATTEMPTS + 1):
            try:
                self.client.set_registered_model_alias(self.model_name, alias, version)
                return
            except MlflowException as exc:
                if attempt == ALIAS_ATTEMPTS or not any(text in str(exc) for text in ALIAS_RACE):
                    raise
                time.sleep(0.2 * attempt)

    def model_tags(self) -> dict[str, str]:
        """The registered model's own tags ({} before the first registration)."""
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.client.get_registered_model(self.model_name).tags)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise

    def tag_model(self, key: str, value: str | None) -> None:
        """Set a tag on the registered model, or remove it (None)."""
        if value is not None:
            self.client.set_registered_model_tag(self.model_name, key, value)
        elif key in self.model_tags():
            self.client.delete_registered_model_tag(self.model_name, key)

    def describe(self, version_or_alias: str) -> dict[str, Any]:
        from mlflow.exceptions import MlflowException

        try:
            if version_or_alias.isdigit():
                version = self.version(version_or_alias)
            else:
                version = self.client.get_model_version_by_alias(self.model_name, version_or_alias)
        except MlflowException as exc:
            first_line = exc.message.splitlines()[0]
            raise TrackingError(f"no version {version_or_alias!r} of model {self.model_name!r}: {first_line}") from None
        return {
            "name": self.model_name,
            "version": version.version,
            "aliases": sorted(version.aliases),
            "run_id": version.run_id,
            "source": version.source,
            "created": version.creation_timestamp,
            "tags": dict(version.tags),
        }

    # --- run artifacts, fetched once ----------------------------------------------------------------

    def artifact(self, run_id: str, path: str) -> Path:
        """A local copy of a run artifact, downloaded at most once per machine."""
        kept = self.cache / run_id / path
        if not kept.exists():
            kept.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=kept.parent) as scratch:
                fetched = Path(self.client.download_artifacts(run_id, path, scratch))
                fetched.replace(kept)
        return kept

    def artifact_sha256(self, run_id: str, path: str) -> str:
        """The sha256 of a run artifact as the store holds it now (downloaded again, not the cache:
        what a release check compares with its record)."""
        import hashlib

        with tempfile.TemporaryDirectory() as scratch:
            return hashlib.sha256(Path(self.client.download_artifacts(run_id, path, scratch)).read_bytes()).hexdigest()

    def log_bytes(self, run_id: str, path: str, content: bytes) -> Path:
        """Log `content` as the run artifact `path` and keep it in the cache."""
        with tempfile.TemporaryDirectory() as scratch:
            local = Path(scratch) / Path(path).name
            local.write_bytes(content)
            return self.log_file(run_id, path, local)

    def log_file(self, run_id: str, path: str, local: Path) -> Path:
        """Log the file `local` as the run artifact `path` (same file name) and keep it in the cache."""
        self.client.log_artifact(run_id, str(local), artifact_path=str(Path(path).parent))
        return self.keep_artifact(run_id, path, local)

    def keep_artifact(self, run_id: str, path: str, local: Path) -> Path:
        """Seed the cache with a file this process just logged, so nobody downloads it again."""
        kept = self.cache / run_id / path
        kept.parent.mkdir(parents=True, exist_ok=True)
        partial = kept.with_name(f".{kept.name}.partial")
        shutil.copyfile(local, partial)
        partial.replace(kept)
        return kept


def _create_embedded_store(paths: StatePaths, uri: str) -> None:
    """Create the SQLite store's tables once, under a file lock: two runs starting on a new state
    dir would otherwise both run MLflow's schema migrations on the same database."""
    from mlflow import MlflowClient

    if uri in _CREATED_STORES:
        return
    paths.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    with (paths.mlflow_dir / ".heartgate-init.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments(max_results=1)
    _CREATED_STORES.add(uri)


def version_tags(lineage: Lineage, trained: TrainResult, evaluation: EvaluationResult) -> dict[str, str]:
    tags = {
        **lineage.as_tags(),
        "run_id": trained.run_id,
        "onnx_artifact": trained.onnx_artifact,
        "smoke_artifact": evaluation.smoke_artifact,
        "threshold": repr(evaluation.threshold),
        "threshold_rule": evaluation.threshold_rule,
    }
    tags |= {f"test_{key}": f"{value:.6f}" if isinstance(value, float) else str(value) for key, value in evaluation.test.model_dump().items()}
    return tags


def _create_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description=MODEL_DESCRIPTION)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # a concurrent run created it first
            raise


def register(registry: Registry, lineage: Lineage, trained: TrainResult, evaluation: EvaluationResult, origin: RunOrigin | None = None) -> RegisteredVersion:
    """The candidate becomes a new version with its lineage (and the Prefect flow run it comes
    from) as tags, and takes `@candidate`. `@production` is moved only by an approved promotion."""
    client, name = registry.client, registry.model_name
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        _create_registered_model(client, name)
    tags = version_tags(lineage, trained, evaluation) | (origin.as_tags() if origin else {})
    model_id = trained.model_uri.removeprefix("models:/")
    # The logged model's storage location, not its models:/ URI: MLflow's SQL registry store resolves
    # a models:/ source through the process-global tracking URI, which heartgate never sets.
    source = client.get_logged_model(model_id).artifact_location
    description = f"Made by Prefect flow run [{origin.flow_run_name}]({origin.flow_run_url})." if origin and origin.flow_run_url else None
    version = client.create_model_version(name, source=source, run_id=trained.run_id, tags=tags, model_id=model_id, description=description)
    registry.point(CANDIDATE_ALIAS, str(version.version))
    return RegisteredVersion(name=name, version=str(version.version), run_id=trained.run_id, tags=tags)

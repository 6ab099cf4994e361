"""Reading the MLflow Model Registry: versions by number or alias, with their lineage."""

from __future__ import annotations

from typing import Any

from heartgate.config import HeartgateConfig
from heartgate.errors import TrackingError
from heartgate.tracking import connect, require_existing_store


def describe_version(config: HeartgateConfig, version_or_alias: str) -> dict[str, Any]:
    import mlflow
    from mlflow.exceptions import MlflowException

    require_existing_store(config)
    connect(config)
    client = mlflow.MlflowClient()
    name = config.registry.model_name
    try:
        if version_or_alias.isdigit():
            version = client.get_model_version(name, version_or_alias)
        else:
            version = client.get_model_version_by_alias(name, version_or_alias)
    except MlflowException as exc:
        raise TrackingError(f"no version {version_or_alias!r} of model {name!r}: {exc.message.splitlines()[0]}") from None
    return {
        "name": name,
        "version": version.version,
        "aliases": sorted(version.aliases),
        "run_id": version.run_id,
        "source": version.source,
        "created": version.creation_timestamp,
        "tags": dict(version.tags),
    }

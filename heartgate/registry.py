"""Reading the MLflow Model Registry: versions by number or alias, with their lineage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from heartgate.config import HeartgateConfig
from heartgate.errors import TrackingError
from heartgate.tracking import connect, require_existing_store

CANDIDATE_ALIAS = "candidate"  # the newest registered candidate
PRODUCTION_ALIAS = "production"  # moved only by an approved promotion
PREVIOUS_ALIAS = "previous"  # the production version before the last promotion, for rollback


def version_by_alias(client, name: str, alias: str):  # noqa: ANN001, ANN201 - mlflow types
    """The ModelVersion an alias points at, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def tag_version(client, name: str, version: str, tags: Mapping[str, str]) -> None:  # noqa: ANN001 - mlflow client
    """Write lineage tags onto a registered version."""
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


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

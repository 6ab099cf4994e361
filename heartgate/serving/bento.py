"""build-bento: a BentoML bento around the promoted registry version.

The bento model holds the version's ONNX export, a metadata.json with its threshold and lineage,
and its signed release record (release.json, which the served process checks at start); all come
from the registry alone, so building twice from one version gives the same model files. The bento
carries the serving code (`served_files`), which the Lambda package takes from it too. Tags are
derived from the registry version (`heartgate-ecg:v3`, `heartgate:v3`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from heartgate.adapters.registry import Registry
from heartgate.core.config import PROJECT_ROOT
from heartgate.core.contracts import BentoBuild
from heartgate.serving.packaging import served_files
from heartgate.serving.proof import RELEASE_FILE
from heartgate.serving.served_model import (
    BENTO_MODEL_NAME,
    BENTO_NAME,
    METADATA_FILE,
    ONNX_FILE,
    SMOKE_KEY,
)

SERVICE_MODULE = "service.service"
API_DESCRIPTION = PROJECT_ROOT / "service" / "API.md"
SERVICE = f"{SERVICE_MODULE}:Heartgate"
Found = TypeVar("Found")
LINEAGE_KEYS = ("data_md5", "split_md5", "data_source", "git_commit", "config_hash", "run_id", "threshold_rule")


def served_metadata(model_name: str, version: str, tags: dict[str, str]) -> dict[str, Any]:
    """What /metadata returns and the bento model records: from registry tags only."""
    return {
        "model_name": model_name,
        "model_version": version,
        "threshold": float(tags["threshold"]),
        "lineage": {key: tags[key] for key in LINEAGE_KEYS if key in tags},
        "test_metrics": {key.removeprefix("test_"): float(value) for key, value in sorted(tags.items()) if key.startswith("test_")},
    }


def tags_for(version: str) -> tuple[str, str]:
    return f"{BENTO_MODEL_NAME}:v{version}", f"{BENTO_NAME}:v{version}"


def registry_version_of(bento_tag: str) -> str:
    """heartgate:v3 -> "3" (the inverse of `tags_for`)."""
    return bento_tag.rpartition(":v")[2]


def _existing(getter: Callable[[str], Found], tag: str) -> Found | None:
    """What `getter` finds in the bento store under `tag`, or None."""
    import bentoml

    try:
        return getter(tag)
    except bentoml.exceptions.NotFound:
        return None


def package_model(model_tag: str, onnx: Path, metadata: dict[str, Any], release: str) -> str:
    """The bento model: the ONNX file, metadata.json and the signed release record. Kept if the
    store already holds the same ONNX and record under this tag, so a rebuild from one registry
    version gives the same model files."""
    import bentoml

    labels = {
        "registry_version": str(metadata["model_version"]),
        "onnx_sha256": hashlib.sha256(onnx.read_bytes()).hexdigest(),
        "release_sha256": hashlib.sha256(release.encode()).hexdigest(),
    }
    model = _existing(bentoml.models.get, model_tag)
    if model is not None and model.info.labels != labels:
        bentoml.models.delete(model_tag)  # a stale entry (a re-created registry, say): replace it
        model = None
    if model is None:
        with bentoml.models.create(model_tag, labels=labels, metadata=metadata) as created:
            shutil.copyfile(onnx, Path(created.path) / ONNX_FILE)
            (Path(created.path) / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
            (Path(created.path) / RELEASE_FILE).write_text(release)
    return labels["onnx_sha256"]


def build_service_bento(bento_tag: str, model_tag: str, labels: dict[str, str]) -> None:
    """The bento: the service code plus the model it serves (pinned through the build args)."""
    import bentoml

    if _existing(bentoml.bentos.get, bento_tag) is None:
        name, version = bento_tag.split(":")
        # What the bento carries: the serving code of both targets (no TensorFlow).
        include = served_files()
        bentoml.bentos.build(
            SERVICE,
            name=name,
            version=version,
            include=include,
            models=[model_tag],
            args={"model_tag": model_tag},
            labels=labels,
            build_ctx=str(PROJECT_ROOT),
            description=API_DESCRIPTION.read_text(),  # the Swagger page's text, not the project README
        )


def bento_src(bento_tag: str) -> Path:
    """Where a bento in the store keeps the code it serves."""
    import bentoml

    return Path(bentoml.bentos.get(bento_tag).path) / "src"


def build_bento(registry: Registry, version: str, release: str) -> BentoBuild:
    """The bento of a registry version and its signed release record (`release`, checked by the
    caller: heartgate.release.record.verified_build), from the registry alone; its tag goes into
    the version's tags."""
    tags = registry.tags(version)
    model_tag, bento_tag = tags_for(version)
    smoke = json.loads(registry.artifact(tags["run_id"], tags["smoke_artifact"]).read_text())
    metadata = served_metadata(registry.model_name, version, tags) | {SMOKE_KEY: smoke}
    onnx_sha256 = package_model(model_tag, registry.artifact(tags["run_id"], tags["onnx_artifact"]), metadata, release)
    build_service_bento(bento_tag, model_tag, {"registry_version": version, "data_md5": tags["data_md5"]})
    registry.tag(version, {"bento_tag": bento_tag})
    return BentoBuild(bento_tag=bento_tag, model_tag=model_tag, registry_version=version, onnx_sha256=onnx_sha256)

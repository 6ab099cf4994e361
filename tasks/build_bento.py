"""build-bento: a BentoML bento around the promoted registry version (heartgate.serving.bento)."""

from __future__ import annotations

from prefect import get_run_logger, task

import heartgate.serving.bento
from heartgate.adapters.registry import Registry
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import BentoBuild


@task(name="build-bento")
def build_bento(config: HeartgateConfig, version: str) -> BentoBuild:
    built = heartgate.serving.bento.build_bento(Registry.for_config(config), version)
    get_run_logger().info(f"bento {built.bento_tag} (model {built.model_tag}, onnx sha256 {built.onnx_sha256[:12]}…)")
    return built

"""build-bento: a BentoML bento around the promoted registry version (heartgate.bento)."""

from __future__ import annotations

from prefect import get_run_logger, task

import heartgate.bento
from heartgate.config import HeartgateConfig
from heartgate.contracts import BentoBuild


@task(name="build-bento")
def build_bento(config: HeartgateConfig, version: str) -> BentoBuild:
    built = heartgate.bento.build_bento(config, version)
    get_run_logger().info(f"bento {built.bento_tag} (model {built.model_tag}, onnx sha256 {built.onnx_sha256[:12]}…)")
    return built

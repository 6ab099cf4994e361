"""build-bento: a BentoML bento around the promoted registry version, its release record verified
first (heartgate.release.record.verified_build, heartgate.serving.bento)."""

from __future__ import annotations

import os

from prefect import get_run_logger, task

from heartgate.adapters.registry import Registry
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import BentoBuild
from heartgate.release.record import verified_build


@task(name="build-bento")
def build_bento(config: HeartgateConfig, version: str) -> BentoBuild:
    built = verified_build(config, Registry.for_config(config), version, os.environ)
    get_run_logger().info(f"bento {built.bento_tag} (model {built.model_tag}, onnx sha256 {built.onnx_sha256[:12]}…)")
    return built

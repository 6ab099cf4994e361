"""register: the candidate becomes a registry version with its lineage, as `@candidate`."""

from __future__ import annotations

from prefect import get_run_logger, task

import heartgate.registry
from heartgate.config import HeartgateConfig
from heartgate.contracts import EvaluationResult, RegisteredVersion, TrainResult
from heartgate.lineage import Lineage
from heartgate.registry import CANDIDATE_ALIAS, Registry
from heartgate.resume import once_per_flow_run


@task(name="register", cache_key_fn=once_per_flow_run)
def register(config: HeartgateConfig, lineage: Lineage, trained: TrainResult, evaluation: EvaluationResult) -> RegisteredVersion:
    registered = heartgate.registry.register(Registry.for_config(config), lineage, trained, evaluation)
    get_run_logger().info(f"registered {registered.name} version {registered.version} as @{CANDIDATE_ALIAS}")
    return registered

"""promotion-gate: candidate vs production, both scored now on the same test split (heartgate.ml.gate)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

import heartgate.ml.gate
from heartgate.adapters.registry import Registry
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import (
    DataVersion,
    GateDecision,
    RegisteredVersion,
    SplitVersion,
)
from heartgate.ml.splits import load_split_arrays
from heartgate.release.evidence import evidence_markdown
from heartgate.release.resume import once_per_flow_run


@task(name="promotion-gate", cache_key_fn=once_per_flow_run)
def promotion_gate(config: HeartgateConfig, data: DataVersion, split: SplitVersion, candidate: RegisteredVersion) -> GateDecision:
    arrays = load_split_arrays(data, split, config.split.seed)
    registry = Registry.for_config(config)
    decision = heartgate.ml.gate.promotion_gate(config.gate, registry, arrays, candidate)
    evidence = evidence_markdown(config, registry, decision, candidate)
    create_markdown_artifact(evidence, key="promotion-gate", description="candidate vs production: the gate's evidence")
    logger = get_run_logger()
    logger.info(f"gate {'passed' if decision.promotable else 'NOT passed'} for version {candidate.version}")
    for reason in decision.reasons:
        logger.info(f"  {reason}")
    return decision

"""promote: move `@production` to the approved candidate; revert-promotion undoes it when the
deploy fails (heartgate.release.promotion)."""

from __future__ import annotations

from prefect import get_run_logger, task

import heartgate.release.promotion
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import (
    ApprovalOutcome,
    GateDecision,
    Promotion,
    RegisteredVersion,
)
from heartgate.release.promotion import label


@task(name="promote")
def promote(config: HeartgateConfig, candidate: RegisteredVersion, decision: GateDecision, approval: ApprovalOutcome) -> Promotion:
    logger = get_run_logger()
    promotion = heartgate.release.promotion.promote(config, candidate, decision, approval, logger.info)
    logger.info(f"@production -> version {promotion.version} (was {label(promotion.previous)}), approved by {promotion.reviewer}")
    return promotion


@task(name="revert-promotion")
def revert_promotion(config: HeartgateConfig, promotion: Promotion, reason: str) -> None:
    heartgate.release.promotion.revert_promotion(config, promotion, reason)
    get_run_logger().info(f"@production is back on {label(promotion.previous)}")

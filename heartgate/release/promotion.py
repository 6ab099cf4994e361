"""Every move of `@production`: promote (after the gate and a person's approval), revert (its
deploy failed) and roll back (by hand, `heartgate rollback`).

Two runs must never both promote. The move happens only if `@production` still points where it
pointed when the gate scored the candidate; the check and the move run under the promotion lock
(heartgate.adapters.locks), so they are atomic across processes and machines that share the Prefect
server (MLflow aliases have no compare-and-set of their own).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from heartgate.adapters.locks import deploy_lock, promotion_lock
from heartgate.adapters.registry import PREVIOUS_ALIAS, PRODUCTION_ALIAS, Registry
from heartgate.adapters.transaction import Transaction
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import (
    ApprovalOutcome,
    Deployment,
    GateDecision,
    Promotion,
    RegisteredVersion,
)
from heartgate.core.errors import HeartgateError
from heartgate.core.lineage import timestamp
from heartgate.release.reconcile import clear_undeployed
from heartgate.release.record import RECORD_TAG, release_record, sign, signing_key, verified_build
from heartgate.serving.targets import target_for
from heartgate.serving.targets.base import RollbackError


class PromotionConflict(HeartgateError):
    """Production changed between the gate's comparison and the promotion."""


def label(version: str | None) -> str:
    return f"version {version}" if version else "none"


def conflict_message(candidate_version: str, scored_against: str | None, now: str | None) -> str | None:
    """Why this promotion must not happen, or None when production is where the gate saw it."""
    if now == scored_against:
        return None
    return (
        f"@production moved from {label(scored_against)} to {label(now)} after the gate compared "
        f"version {candidate_version} with it; not promoted (run again to compare with the new production model)"
    )


def promote(
    config: HeartgateConfig, candidate: RegisteredVersion, decision: GateDecision, approval: ApprovalOutcome, log: Callable[[str], None] = print
) -> Promotion:
    """Move `@production` to the approved candidate, keeping the old one as `@previous`; its
    signed release record is written first, before any alias moves. A kill between two of these
    writes leaves production where it was (record written, no alias moved), or `@previous` on the
    old production beside it (moved first for that reason): nothing for reconcile to undo."""
    if not (decision.promotable and approval.approved):
        raise ValueError("only a candidate that passed the gate and was approved can be promoted")
    registry = Registry.for_config(config)
    with promotion_lock(registry.model_name, config.state_root):
        now = registry.alias_version(PRODUCTION_ALIAS)
        conflict = conflict_message(candidate.version, decision.production_version, now)
        if conflict:
            registry.tag(candidate.version, {"rejected": conflict})
            raise PromotionConflict(conflict)
        signed = sign(release_record(registry, candidate, decision, approval), signing_key(config, os.environ))
        registry.tag(candidate.version, {RECORD_TAG: signed.to_json()})
        log(f"release record of version {candidate.version} signed (key {signed.key_id}); moving the aliases")
        before = registry.alias_version(PREVIOUS_ALIAS)
        if now is not None:
            registry.point(PREVIOUS_ALIAS, now)
        registry.point(PRODUCTION_ALIAS, candidate.version)
    registry.tag(candidate.version, {"promoted_at": timestamp(), "promoted_from": now or "none"})
    return Promotion(version=candidate.version, previous=now, previous_alias_before=before, reviewer=approval.reviewer)


def revert_promotion(config: HeartgateConfig, promotion: Promotion, reason: str) -> None:
    """Put `@production` and `@previous` back where they were before `promotion` (its deploy
    failed). Only if nothing else moved `@production` meanwhile."""
    registry = Registry.for_config(config)
    with promotion_lock(registry.model_name, config.state_root):
        if registry.alias_version(PRODUCTION_ALIAS) != promotion.version:
            return
        registry.point(PRODUCTION_ALIAS, promotion.previous)
        registry.point(PREVIOUS_ALIAS, promotion.previous_alias_before)
    registry.tag(promotion.version, {"rejected": f"deploy failed, promotion reverted: {reason}"})


def roll_back(config: HeartgateConfig, log: Callable[[str], None] = print) -> Deployment:
    """Put `@previous` back into production and serving (`heartgate rollback`). The target serves
    it first (smoke-tested); then `@production` moves back, unless it moved meanwhile, in which case
    what was serving before is put back too."""
    registry = Registry.for_config(config, existing_only=True)
    current, previous = registry.alias_version(PRODUCTION_ALIAS), registry.alias_version(PREVIOUS_ALIAS)
    if previous is None:
        raise RollbackError(f"nothing to roll back to: model {registry.model_name!r} has no @previous version")
    target = target_for(config, log)
    with deploy_lock(target.name, config.state_root):
        serving = target.current()
        with Transaction(log) as undo:
            deployment = target.roll_back(verified_build(config, registry, previous, os.environ))  # smoke-tested, or the target put back what served
            if serving is not None:
                undo.on_failure(f"put {serving.bento_tag} back on {target.name}", lambda _: target.restore(serving))
            with promotion_lock(registry.model_name, config.state_root):
                now = registry.alias_version(PRODUCTION_ALIAS)
                if now != current:
                    raise RollbackError(f"@production moved to {label(now)} during the rollback; aliases left as they are")
                registry.point(PRODUCTION_ALIAS, previous)
                registry.point(PREVIOUS_ALIAS, None)
        clear_undeployed(registry, target.name)  # serving again: the watchdog keeps it so
    if current:
        registry.tag(current, {"rolled_back": f"{timestamp()}: production rolled back to version {previous}"})
    log(f"rolled back: @production is version {previous} (was {current or 'none'}), serving at {deployment.url}")
    return deployment

"""promote: move `@production` to the approved candidate, keeping the old one as `@previous`.

Two runs must never both promote. The move happens only if `@production` still points where it
pointed when the gate scored the candidate; the check and the move run under a Prefect global
concurrency limit of one slot per registered model, so they are atomic across processes and
machines that share the Prefect server (MLflow aliases have no compare-and-set of their own).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timezone

from prefect import get_run_logger, task
from pydantic import BaseModel, ConfigDict

from heartgate.config import HeartgateConfig
from heartgate.errors import HeartgateError
from heartgate.registry import PREVIOUS_ALIAS, PRODUCTION_ALIAS, tag_version, version_by_alias
from heartgate.tracking import connect
from tasks.approval import ApprovalOutcome
from tasks.gate import GateDecision
from tasks.register import RegisteredVersion

LOCK_TIMEOUT_S = 300


class Promotion(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    previous: str | None  # @production before, now @previous
    previous_alias_before: str | None  # what @previous pointed at before, restored by a revert
    reviewer: str


class PromotionConflict(HeartgateError):
    """Production changed between the gate's comparison and the promotion."""


def conflict_message(candidate_version: str, scored_against: str | None, now: str | None) -> str | None:
    """Why this promotion must not happen, or None when production is where the gate saw it."""
    if now == scored_against:
        return None
    return (
        f"@production moved from {_label(scored_against)} to {_label(now)} after the gate compared "
        f"version {candidate_version} with it; not promoted (run again to compare with the new production model)"
    )


def _label(version: str | None) -> str:
    return f"version {version}" if version else "none"


@contextlib.contextmanager
def promotion_lock(model_name: str) -> Iterator[None]:
    """One promotion at a time per registered model, across every process on this Prefect server."""
    from prefect import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists

    name = f"heartgate-promote-{model_name}"
    with get_client(sync_client=True) as client:
        # Prefect requires the limit to exist before slots are taken; absent, `concurrency` would not block.
        with contextlib.suppress(ObjectAlreadyExists):
            client.upsert_global_concurrency_limit_by_name(name, limit=1)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=LOCK_TIMEOUT_S):
        yield


def promote_version(
    config: HeartgateConfig, candidate: RegisteredVersion, decision: GateDecision, approval: ApprovalOutcome
) -> Promotion:
    import mlflow

    if not (decision.promotable and approval.approved):
        raise ValueError("only a candidate that passed the gate and was approved can be promoted")
    connect(config)
    client = mlflow.MlflowClient()
    name = candidate.name
    with promotion_lock(name):
        current = version_by_alias(client, name, PRODUCTION_ALIAS)
        now = str(current.version) if current else None
        conflict = conflict_message(candidate.version, decision.production_version, now)
        if conflict:
            client.set_model_version_tag(name, candidate.version, "rejected", conflict)
            raise PromotionConflict(conflict)
        before = version_by_alias(client, name, PREVIOUS_ALIAS)
        if now is not None:
            client.set_registered_model_alias(name, PREVIOUS_ALIAS, now)
        client.set_registered_model_alias(name, PRODUCTION_ALIAS, candidate.version)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tag_version(client, name, candidate.version, {"promoted_at": stamp, "promoted_from": now or "none"})
    return Promotion(
        version=candidate.version,
        previous=now,
        previous_alias_before=str(before.version) if before else None,
        reviewer=approval.reviewer,
    )


def _point(client, name: str, alias: str, version: str | None) -> None:  # noqa: ANN001 - mlflow client
    if version is None:
        client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, version)


def revert_promotion(config: HeartgateConfig, promotion: Promotion, reason: str) -> None:
    """Put `@production` and `@previous` back where they were before `promotion` (its deploy
    failed). Only if nothing else moved `@production` meanwhile."""
    import mlflow

    connect(config)
    client = mlflow.MlflowClient()
    name = config.registry.model_name
    with promotion_lock(name):
        current = version_by_alias(client, name, PRODUCTION_ALIAS)
        if current is None or str(current.version) != promotion.version:
            return
        _point(client, name, PRODUCTION_ALIAS, promotion.previous)
        _point(client, name, PREVIOUS_ALIAS, promotion.previous_alias_before)
    client.set_model_version_tag(name, promotion.version, "rejected", f"deploy failed, promotion reverted: {reason}")


@task(name="revert-promotion")
def revert_promotion_task(config: HeartgateConfig, promotion: Promotion, reason: str) -> None:
    revert_promotion(config, promotion, reason)
    get_run_logger().info("@production is back on %s", _label(promotion.previous))


@task(name="promote")
def promote(
    config: HeartgateConfig, candidate: RegisteredVersion, decision: GateDecision, approval: ApprovalOutcome
) -> Promotion:
    promotion = promote_version(config, candidate, decision, approval)
    get_run_logger().info(
        "@production -> version %s (was %s), approved by %s",
        promotion.version, _label(promotion.previous), promotion.reviewer,
    )  # fmt: skip
    return promotion

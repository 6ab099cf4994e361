"""train-and-deploy: the table of contents of heartgate. One task per step, top to bottom."""

from __future__ import annotations

import os
from typing import Any

from prefect import State, flow, get_run_logger

from heartgate.approval import refuse_auto_approve, request_approval, timed_out_error
from heartgate.config import load_config, nest
from heartgate.contracts import RunSummary
from heartgate.dependencies import require_dependencies
from heartgate.lineage import Lineage
from heartgate.locks import deploy_lock
from heartgate.outcome import final_state
from heartgate.promotion import label
from heartgate.runs import claim
from heartgate.state import require_shared_state
from heartgate.targets import target_for
from heartgate.transaction import Transaction
from tasks.approval import record_approval
from tasks.build_bento import build_bento
from tasks.evaluate import evaluate_and_pick_threshold
from tasks.gate import promotion_gate
from tasks.promote import promote, revert_promotion
from tasks.pull_data import pull_data
from tasks.reconcile import reconcile
from tasks.register import register
from tasks.split_data import split_data
from tasks.terraform_apply import terraform_apply
from tasks.train import train


@flow(name="train-and-deploy")
def train_and_deploy(
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    auto_approve: bool = False,
    target: str | None = None,
    profile: str | None = None,
) -> State[RunSummary]:
    """Train a candidate on the current data, compare it with production and, if it is better on
    both precision and recall and a person approves, promote and deploy it.

    overrides: dotted config keys, e.g. {"train.epochs": 20}; they win over the config file and
    HEARTGATE_* environment variables. auto_approve: skip the human approval (demos, CI); the
    lineage then records the approver as "auto". target: where terraform-apply deploys (default:
    the config's deploy.target, "local"). profile: configs/PROFILE.yaml under the config file
    (the deployments of the server profile set it). The run's final state message is its outcome.
    """
    return final_state(lambda: train_and_deploy_steps(config_file, overrides, auto_approve, target, profile))


def train_and_deploy_steps(
    config_file: str | None, overrides: dict[str, Any] | None, auto_approve: bool, target: str | None, profile: str | None
) -> RunSummary:
    """The steps, one task each, top to bottom."""
    claim()  # this run's process, so a run killed with it ends CRASHED instead of RUNNING forever
    overrides = {**(overrides or {}), **({"deploy.target": target} if target else {})}
    config = load_config(config_file, nest(overrides, "."), environ=os.environ, profile=profile)
    require_shared_state(config)  # a worker never forks the team's registry by accident
    require_dependencies(config)  # MLflow, Prefect, S3 down: one line now, not a traceback later
    refuse_auto_approve(config, auto_approve)
    target_for(config).require_api_key()  # the deploy will need the API key: say so now, not after training
    logger = get_run_logger()

    reconciled = reconcile(config)  # production is served as @production says before anything else
    data = pull_data(config)
    split = split_data(data, config)
    lineage = Lineage.of_run(data.md5, split.md5, data.source, config.model_hash())
    trained = train(config, data, split, lineage)
    evaluation = evaluate_and_pick_threshold(config, data, split, trained)
    candidate = register(config, lineage, trained, evaluation)
    decision = promotion_gate(config, data, split, candidate)

    approval = promotion = deployment = None
    if decision.promotable:
        approval = request_approval(decision, candidate, config, auto_approve, logger.info)
        record_approval(config, candidate, approval)
        if approval.decision == "timed_out":
            raise timed_out_error(candidate, config)
        if approval.approved:
            promotion = promote(config, candidate, decision, approval)

    if promotion:  # nothing half-deployed: if the build or the deploy fails, production goes back too
        with deploy_lock(config.deploy.target, config.state_root), Transaction(logger.info) as undo:
            undo.on_failure(f"@production back on {label(promotion.previous)}", lambda failure: revert_promotion(config, promotion, str(failure)))
            bento = build_bento(config, promotion.version)
            deployment = terraform_apply(config, bento)

    summary = RunSummary(
        reconciled=reconciled, data=data, split=split, lineage=lineage, trained=trained, evaluation=evaluation,
        candidate=candidate, gate=decision, approval=approval, promotion=promotion, deployment=deployment,
    )  # fmt: skip
    for line in summary.lines():
        logger.info(line)
    return summary

"""train-and-deploy: the table of contents of heartgate. One task per step, top to bottom."""

from __future__ import annotations

from prefect import State, flow, get_run_logger

from heartgate.adapters.locks import deploy_lock
from heartgate.adapters.runs import claim
from heartgate.adapters.transaction import Transaction
from heartgate.core.contracts import RunSummary
from heartgate.core.lineage import Lineage
from heartgate.release.approval import auto_approved, request_approval, timed_out_error
from heartgate.release.outcome import final_state
from heartgate.release.parameters import RunParameters
from heartgate.release.prepare import prepare_run
from heartgate.release.promotion import label
from heartgate.serving.targets import target_for
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
    choices: RunParameters = RunParameters(),  # noqa: B008 - a default Prefect shows on the Run form
    profile: str = "",
    config_file: str = "",
) -> State[RunSummary]:
    """Train a candidate on the current data, compare it with production and, if it is better on
    both precision and recall and a person approves, promote and deploy it. The run's final state
    message (and its `outcome:` tag) says what happened.

    Args:
        choices: What this run trains and where it deploys; a field left at its default keeps the config's value.
        profile: configs/PROFILE.yaml over the defaults; the deployments set it (server on the team stack).
        config_file: The team's config file, by its path in the repository; the deployments set it.
    """
    return final_state(lambda: train_and_deploy_steps(choices, profile, config_file))


def train_and_deploy_steps(choices: RunParameters, profile: str, config_file: str) -> RunSummary:
    """The steps, one task each, top to bottom."""
    claim()  # this run's process, so a run killed with it ends CRASHED instead of RUNNING forever
    config = prepare_run(config_file, choices.config_overrides(), profile)  # refused now, not after training
    auto_approve = auto_approved(config)  # the CLI's demo mode only: never a parameter of a deployment
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
        reconciled=reconciled,
        data=data,
        split=split,
        lineage=lineage,
        trained=trained,
        evaluation=evaluation,
        candidate=candidate,
        gate=decision,
        approval=approval,
        promotion=promotion,
        deployment=deployment,
    )
    for line in summary.lines():
        logger.info(line)
    return summary

"""train-and-deploy: the table of contents of heartgate. One task per step, top to bottom."""

from __future__ import annotations

import os
from typing import Any, Literal

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict

from heartgate.config import load_config, nest
from heartgate.lineage import Lineage, git_commit
from heartgate.state import StatePaths, activate
from tasks.approval import ApprovalOutcome, record_approval, request_approval, timed_out_error
from tasks.build_bento import build_bento
from tasks.deploy import Deployment, terraform_apply
from tasks.evaluate import EvaluationResult, evaluate_and_pick_threshold
from tasks.gate import GateDecision, promotion_gate
from tasks.promote import Promotion, promote, revert_promotion_task
from tasks.pull_data import DataVersion, pull_data
from tasks.register import RegisteredVersion, register
from tasks.split_data import SplitVersion, split_data
from tasks.train import TrainResult, train


class RunSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    data: DataVersion
    split: SplitVersion
    lineage: Lineage
    trained: TrainResult
    evaluation: EvaluationResult
    candidate: RegisteredVersion
    gate: GateDecision
    approval: ApprovalOutcome | None = None
    promotion: Promotion | None = None
    deployment: Deployment | None = None

    @property
    def outcome(self) -> str:
        version = self.candidate.version
        if self.promotion and self.deployment:
            return (
                f"promoted version {version} to @production (approved by {self.promotion.reviewer}) "
                f"and deployed {self.deployment.bento_tag} to {self.deployment.target} at {self.deployment.url}"
            )
        if not self.gate.promotable:
            return f"not promoted: version {version} did not pass the gate; production unchanged"
        assert self.approval is not None
        return f"not promoted: version {version} rejected by {self.approval.reviewer}; production unchanged"

    def lines(self) -> list[str]:
        test = self.evaluation.test
        return [
            f"data {self.data.md5} ({self.data.rows} beats), split {self.split.md5} {self.split.counts}",
            f"MLflow run {self.trained.run_id}: {self.trained.epochs} epochs in {self.trained.train_seconds:.1f}s",
            f"threshold {self.evaluation.threshold:.5g} ({self.evaluation.threshold_rule}); test precision "
            f"{test.precision:.4f} recall {test.recall:.4f} F1 {test.f1:.4f} ROC AUC {test.roc_auc:.4f} PR AUC {test.pr_auc:.4f}",
            f"registered {self.candidate.name} version {self.candidate.version} as @candidate",
            *(f"gate: {reason}" for reason in self.gate.reasons),
            self.outcome,
        ]


@flow(name="train-and-deploy")
def train_and_deploy(
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    auto_approve: bool = False,
    target: Literal["local", "aws"] | None = None,
) -> RunSummary:
    """Train a candidate on the current data, compare it with production and, if it is better on
    both precision and recall and a person approves, promote and deploy it.

    overrides: dotted config keys, e.g. {"train.epochs": 20}; they win over the config file and
    HEARTGATE_* environment variables. auto_approve: skip the human approval (demos, CI); the
    lineage then records the approver as "auto". target: where terraform-apply deploys (default:
    the config's deploy.target, "local").
    """
    overrides = {**(overrides or {}), **({"deploy.target": target} if target else {})}
    config = load_config(config_file, nest(overrides, "."), environ=os.environ)
    activate(StatePaths(config.state_root))

    data = pull_data(config)
    split = split_data(data, config)
    lineage = Lineage(
        data_md5=data.md5,
        split_md5=split.md5,
        data_source=data.source,
        git_commit=git_commit(),
        config_hash=config.model_hash(),
    )
    trained = train(config, data, split, lineage)
    evaluation = evaluate_and_pick_threshold(config, data, split, trained)
    candidate = register(config, lineage, trained, evaluation)
    decision = promotion_gate(config, data, split, candidate)

    approval = promotion = deployment = None
    if decision.promotable:
        approval = request_approval(decision, candidate, config, auto_approve)
        record_approval(config, candidate, approval)
        if approval.decision == "timed_out":
            raise timed_out_error(candidate, config)
        if approval.approved:
            promotion = promote(config, candidate, decision, approval)

    if promotion:
        try:
            bento = build_bento(config, promotion.version)
            deployment = terraform_apply(config, bento, data, split)
        except Exception as failure:  # nothing half-deployed: production goes back too
            revert_promotion_task(config, promotion, str(failure))
            raise

    summary = RunSummary(
        data=data, split=split, lineage=lineage, trained=trained, evaluation=evaluation,
        candidate=candidate, gate=decision, approval=approval, promotion=promotion, deployment=deployment,
    )  # fmt: skip
    logger = get_run_logger()
    for line in summary.lines():
        logger.info(line)
    return summary

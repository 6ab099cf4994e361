"""train-and-deploy: the table of contents of heartgate. One task per step, top to bottom."""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict

from heartgate.config import load_config, nest
from heartgate.lineage import Lineage, git_commit
from tasks.evaluate import EvaluationResult, evaluate_and_pick_threshold
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

    def lines(self) -> list[str]:
        test = self.evaluation.test
        return [
            f"data {self.data.md5} ({self.data.rows} beats), split {self.split.md5} {self.split.counts}",
            f"MLflow run {self.trained.run_id}: {self.trained.epochs} epochs in {self.trained.train_seconds:.1f}s",
            f"threshold {self.evaluation.threshold:.5g} ({self.evaluation.threshold_rule}); test precision "
            f"{test.precision:.4f} recall {test.recall:.4f} F1 {test.f1:.4f} ROC AUC {test.roc_auc:.4f} PR AUC {test.pr_auc:.4f}",
            f"registered {self.candidate.name} version {self.candidate.version} as @candidate",
        ]


@flow(name="train-and-deploy")
def train_and_deploy(config_file: str | None = None, overrides: dict[str, Any] | None = None) -> RunSummary:
    """Train a candidate on the current data and register it.

    overrides: dotted config keys, e.g. {"train.epochs": 20}; they win over the config file and
    HEARTGATE_* environment variables.
    """
    config = load_config(config_file, nest(overrides or {}, "."), environ=os.environ)

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

    summary = RunSummary(
        data=data, split=split, lineage=lineage, trained=trained, evaluation=evaluation, candidate=candidate
    )
    logger = get_run_logger()
    for line in summary.lines():
        logger.info(line)
    return summary

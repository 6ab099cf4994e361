"""record-approval: the person's answer (heartgate.release.approval) goes into the candidate's lineage.
The pause itself happens in the flow: Prefect cannot pause inside a task."""

from __future__ import annotations

from prefect import task

from heartgate.adapters.registry import Registry
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import ApprovalOutcome, RegisteredVersion
from heartgate.release.approval import approval_tags


@task(name="record-approval")
def record_approval(config: HeartgateConfig, candidate: RegisteredVersion, outcome: ApprovalOutcome) -> None:
    Registry.for_config(config).tag(candidate.version, approval_tags(outcome))

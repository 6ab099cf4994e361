"""approval: a person decides, in the Prefect UI or with `heartgate approve/reject`.

The flow waits for typed input (`Approval`): a run from a deployment suspends (it holds no worker
and resumes on any worker, heartgate.release.resume), a run in a terminal pauses in place. The request's
description holds the gate's evidence (heartgate.release.evidence: tables, per-class recall, histograms,
MLflow links) and what would be deployed, so the decision can be made from the UI alone; before
it waits the run labels itself for the notification (heartgate.release.notify). Unanswered within
`approval.timeout_s` means not approved; answers from reviewers outside `approval.approvers` are
ignored. Pausing is only possible in the flow itself, not inside a
task, so `request_approval` is a plain function the flow calls; the record-approval task writes
the answer into the lineage with `approval_tags`. `answer_paused_run` and `waiting_runs` are what
`heartgate approve/reject/pending` use.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from prefect.input import RunInput
from pydantic import Field

from heartgate.adapters.registry import Registry
from heartgate.adapters.runs import end_dead_runs, gone_process
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import ApprovalOutcome, GateDecision, RegisteredVersion
from heartgate.core.errors import ConfigError, HeartgateError
from heartgate.core.lineage import timestamp
from heartgate.release.evidence import evidence_markdown
from heartgate.release.notify import label_waiting_run, waiting_labels

AUTO_REVIEWER = "auto"


class Approval(RunInput):
    """What the approver fills in (the UI renders this form; the CLI sends the same fields)."""

    approve: bool = Field(description="Promote this candidate to production?")
    reviewer: str = Field(min_length=1, description="Your name; it is recorded in the model's lineage.")
    comment: str = Field(default="", description="Why (optional); recorded in the lineage.")


class ApprovalTimedOut(HeartgateError):
    """Nobody answered in time: not approved, nothing promoted."""

    final_state_by_prefect = True  # the server fails an expired pause with "... paused and never resumed."
    outcome = "timed-out"


def approval_request(evidence: str, candidate: RegisteredVersion, flow_run_id: str) -> str:
    """The markdown shown on the paused run: the gate's evidence (heartgate.release.evidence) and exactly
    what would be deployed."""
    tags = candidate.tags
    return "\n".join(
        [
            f"## Promote {candidate.name} version {candidate.version} to production?",
            "",
            evidence,
            "",
            "**What would be deployed**",
            "",
            f"- registry: `{candidate.name}` version {candidate.version} (alias `@production`; the current one stays reachable as `@previous`)",
            f"- MLflow run `{candidate.run_id}`, threshold {float(tags['threshold']):.6g} ({tags['threshold_rule']})",
            f"- data md5 `{tags['data_md5']}`, split md5 `{tags['split_md5']}`, git `{tags['git_commit']}`",
            "",
            f"Answer here, or: `heartgate approve {flow_run_id} --reviewer NAME` / `heartgate reject {flow_run_id} --reviewer NAME --comment WHY`",
        ]
    )


# `heartgate run --auto-approve` (demos, CI) sets this around the flow it runs in its own process.
# It is not a flow parameter: whoever may press Run on a deployment must not be able to skip the person.
_AUTO_APPROVE: ContextVar[bool] = ContextVar("heartgate_auto_approve", default=False)


@contextlib.contextmanager
def auto_approve_in_this_process() -> Iterator[None]:
    """The CLI's demo mode: runs started in this process approve themselves (as reviewer "auto")."""
    token = _AUTO_APPROVE.set(True)
    try:
        yield
    finally:
        _AUTO_APPROVE.reset(token)


def auto_approved(config: HeartgateConfig) -> bool:
    """Whether this run skips the person: only in the CLI's demo mode, and only where the config allows it."""
    auto_approve = _AUTO_APPROVE.get()
    refuse_auto_approve(config, auto_approve)
    return auto_approve


def refuse_auto_approve(config: HeartgateConfig, auto_approve: bool) -> None:
    """On a shared stack a person approves: --auto-approve only where the config allows it."""
    if auto_approve and not config.approval.allow_auto_approve:
        raise ConfigError(
            "auto-approve is refused here (approval.allow_auto_approve: false, the server profile): "
            "a person approves in the Prefect UI or with `heartgate approve`"
        )


def request_approval(
    decision: GateDecision,
    candidate: RegisteredVersion,
    config: HeartgateConfig,
    auto_approve: bool,
    log: Callable[[str], None],
) -> ApprovalOutcome:
    """Wait until a person answers (or the timeout passes); answers from reviewers outside
    `approval.approvers` are ignored and the run waits on."""
    from prefect.context import get_run_context

    if auto_approve:
        return ApprovalOutcome(decision="approved", reviewer=AUTO_REVIEWER, comment="--auto-approve", answered_at=timestamp())

    flow_run = get_run_context().flow_run
    evidence = evidence_markdown(config, Registry.for_config(config), decision, candidate)
    label_waiting_run(flow_run.id, waiting_labels(decision, candidate))  # what the notification says (heartgate.release.notify)
    form = Approval.with_initial_data(description=approval_request(evidence, candidate, str(flow_run.id)))
    log(
        f"version {candidate.version} passed the gate and waits up to {config.approval.timeout_s}s for approval: "
        f"answer in the Prefect UI, or run `heartgate approve {flow_run.id} --reviewer NAME` "
        "(or `heartgate reject ...`) in another terminal"
    )
    approvers = config.approval.approvers
    for attempt in itertools.count():
        answer = wait_for_answer(form, config, durable=flow_run.deployment_id is not None, key=f"approval-{attempt}")
        if answer is None:
            return ApprovalOutcome(decision="timed_out", reviewer="", comment="", answered_at=timestamp())
        if not approvers or answer.reviewer in approvers:
            break
        log(f"answer from {answer.reviewer!r} ignored: not one of approval.approvers ({', '.join(approvers)}); still waiting")
    decision_word = "approved" if answer.approve else "rejected"
    log(f"{decision_word} by {answer.reviewer}" + (f": {answer.comment}" if answer.comment else ""))
    return ApprovalOutcome(decision=decision_word, reviewer=answer.reviewer, comment=answer.comment, answered_at=timestamp())


def wait_for_answer(form: type[Approval], config: HeartgateConfig, durable: bool, key: str) -> Approval | None:
    """The answer, or None when the timeout passed.

    durable (a run from a deployment): suspend. The run leaves its worker; an answer reschedules
    it, any worker runs it again from the top, every step before this one returns its persisted
    result (tasks cache per flow run, heartgate.release.resume) and this call returns the answer given
    under `key`. An expired suspension is failed by the Prefect server itself ("... paused and
    never resumed."). Otherwise (`heartgate run` in a terminal, no deployment to resubmit):
    pause, and this process waits."""
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run, suspend_flow_run

    if durable:
        return suspend_flow_run(wait_for_input=form, timeout=config.approval.timeout_s, key=key)
    try:
        return pause_flow_run(wait_for_input=form, timeout=config.approval.timeout_s, poll_interval=config.approval.poll_interval_s, key=key)
    except FlowPauseTimeout:
        return None


def approval_tags(outcome: ApprovalOutcome) -> dict[str, str]:
    """The answer as version tags; a version that was not approved also gets a `rejected` tag."""
    tags = outcome.as_tags()
    if outcome.decision == "rejected":
        tags["rejected"] = f"rejected by {outcome.reviewer}" + (f": {outcome.comment}" if outcome.comment else "")
    if outcome.decision == "timed_out":
        tags["rejected"] = "approval timed out"
    return tags


def timed_out_error(candidate: RegisteredVersion, config: HeartgateConfig) -> ApprovalTimedOut:
    return ApprovalTimedOut(f"timed out: no approval for version {candidate.version} within {config.approval.timeout_s}s: not promoted, production unchanged")


class ApprovalError(HeartgateError):
    """An answer could not be given to a waiting run."""


def answer_paused_run(flow_run_id: str, approve: bool, reviewer: str, comment: str = "", approvers: tuple[str, ...] = ()) -> str:
    """Give a paused run its answer through Prefect's own resume API (what the UI's form does).

    Returns the run's name. Refuses, in one line, a run that does not exist or is not waiting, and
    a reviewer outside `approvers` (the run would ignore the answer; the UI's answers are checked
    by the run itself)."""
    from uuid import UUID

    from prefect import get_client
    from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound
    from prefect.flow_runs import resume_flow_run
    from pydantic import ValidationError

    try:
        run_id = UUID(flow_run_id)
    except ValueError:
        raise ApprovalError(f"{flow_run_id!r} is not a flow run id") from None
    try:
        answer = Approval(approve=approve, reviewer=reviewer.strip(), comment=comment)
    except ValidationError as exc:
        raise ApprovalError(f"invalid answer: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    if approvers and answer.reviewer not in approvers:
        raise ApprovalError(f"{answer.reviewer!r} is not one of approval.approvers ({', '.join(approvers)}): the run would ignore this answer")
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(run_id)
        except ObjectNotFound:
            raise ApprovalError(f"no flow run {flow_run_id} on this Prefect server") from None
    gone = gone_process(run)
    if gone:  # resuming it would set it RUNNING with nobody to run it
        end_dead_runs()
        raise ApprovalError(f"flow run {run.name} ({flow_run_id}) cannot be answered: its process {gone} is gone; it is now CRASHED (start a new run)")
    try:
        resume_flow_run(run_id, run_input=answer.model_dump(include={"approve", "reviewer", "comment"}))
    except NotPausedError:
        state = run.state.name if run.state else "unknown"
        raise ApprovalError(f"flow run {run.name} ({flow_run_id}) is not waiting for approval (state: {state})") from None
    except FlowPauseTimeout:
        raise ApprovalError(f"flow run {run.name} ({flow_run_id}) timed out waiting; it can no longer be approved") from None
    except RuntimeError as exc:
        raise ApprovalError(f"Prefect refused the answer for {run.name}: {exc}") from None
    return run.name


def waiting_runs() -> list[tuple[str, str, str]]:
    """(flow run id, name, paused since) for every run waiting for an answer."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=paused)
    return [(str(run.id), run.name, run.state.timestamp.isoformat(timespec="seconds")) for run in runs if run.state]

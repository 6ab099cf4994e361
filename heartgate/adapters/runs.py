"""Flow runs whose process is gone: found, and ended CRASHED, never left RUNNING forever.

Every run records the process that runs it (`host:pid`, Prefect's `infrastructure_pid`, which a
process worker sets and `claim` sets for a run in a terminal). A run in RUNNING, PENDING or
PAUSED-in-place whose process on this host is gone is a dead run: nobody will ever finish it or
act on an answer to it. `end_dead_runs` sets them CRASHED; reconcile (so every run, `heartgate
reconcile` and the watchdog) and `heartgate pending/approve/reject` call it.

A suspended run (waiting for approval from a deployment) holds no process on purpose and is left
alone. A run a worker started is recorded by the worker itself (its process's pid, without a
host): the Prefect server's heartbeat automation, which `heartgate up` creates, ends those when
they go silent, on whatever machine they ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from heartgate.adapters.processes import is_running, runs_here, this_process

if TYPE_CHECKING:  # for the annotations only: the library is imported where it is used
    from prefect.client.schemas.objects import FlowRun

RUN_PROCESS_MARKER = "python"  # a heartgate run, or a process worker's flow-run subprocess
ACTIVE_STATES = ("RUNNING", "PENDING", "PAUSED")  # a process is at work (or waits) in these


def claim() -> None:
    """Record this process as the current flow run's, unless a worker already recorded its own."""
    from prefect import get_client
    from prefect.context import get_run_context

    flow_run = get_run_context().flow_run
    if flow_run.infrastructure_pid:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, infrastructure_pid=this_process())


def gone_process(flow_run: FlowRun) -> str | None:
    """`host:pid` of the run's process if that process is gone, else None (alive, elsewhere, or
    a suspended run, which has no process by design)."""
    state = flow_run.state
    if state is None or state.type.value not in ACTIVE_STATES or (state.is_paused() and state.state_details.pause_reschedule):
        return None  # finished (nothing to end), or suspended
    pid = runs_here(flow_run.infrastructure_pid)
    if pid is None or is_running(pid, RUN_PROCESS_MARKER):
        return None
    return flow_run.infrastructure_pid


def end_dead_runs() -> list[str]:
    """Set every dead run CRASHED; returns one line per run ended."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    active = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(name) for name in ACTIVE_STATES])))
    ended = []
    with get_client(sync_client=True) as client:
        for flow_run in client.read_flow_runs(flow_run_filter=active):
            gone = gone_process(flow_run)
            if gone:
                message = f"its process {gone} is gone (killed or crashed); nothing it was doing continues"
                client.set_flow_run_state(flow_run.id, Crashed(message=message), force=True)
                ended.append(f"flow run {flow_run.name} ({flow_run.id}) ended CRASHED: {message}")
    return ended

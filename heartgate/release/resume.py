"""Steps that run once per flow run, so a run can wait for approval without holding a worker.

A run from a deployment suspends for approval (heartgate.release.approval.wait_for_answer) and leaves its
worker. When the answer comes, Prefect reschedules it and a worker (any worker) runs the flow
again from the top. The steps before the approval carry `cache_key_fn=once_per_flow_run`: they
return the result they persisted the first time instead of pulling, training and registering
again. On the server profile results persist to shared storage (`stack.results_storage`, an S3
prefix), so the worker that resumes need not be the one that started.

The key is the flow run and the step, nothing else: the resumed run must see exactly what the
reviewer saw, even if its worker has another state dir or a newer checkout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for the annotations only: the library is imported where it is used
    from prefect.context import TaskRunContext


def once_per_flow_run(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Prefect cache key: one result per (flow run, step)."""
    return f"{context.task_run.flow_run_id}-{context.task.name}"

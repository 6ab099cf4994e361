"""How a train-and-deploy run ends, wherever it runs (a terminal or a worker): its final Prefect
state carries the outcome in one line — "promoted … and deployed …", "not promoted: … did not
pass the gate", "… rejected by …", or the reason it failed — and an expected failure (a
`HeartgateError`: the race loser, a timed-out approval, a refused deploy) is logged without a
traceback. A bug keeps its traceback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from heartgate.core.contracts import Reconciled, RunSummary
from heartgate.core.errors import HeartgateError

if TYPE_CHECKING:  # for the annotations only: the library is imported where it is used
    from prefect.client.schemas.objects import State

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class _NoTracebackForKnownErrors(logging.Filter):
    """A HeartgateError already names the problem in one line; its traceback is only noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HeartgateError):
            record.exc_info, record.exc_text = None, None
        return True


@contextlib.contextmanager
def one_line_known_errors() -> Iterator[None]:
    known_errors = _NoTracebackForKnownErrors()
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    for logger in loggers:
        logger.addFilter(known_errors)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(known_errors)


def tag_this_run(tag: str) -> None:
    """Add `tag` to the current flow run (the runs list shows tags; the state message needs a click)."""
    from prefect import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    try:
        with get_client(sync_client=True) as client:
            tags = client.read_flow_run(context.flow_run.id).tags
            client.update_flow_run(context.flow_run.id, tags=[*(t for t in tags if not t.startswith(OUTCOME_PREFIX)), tag])
    except Exception as exc:  # noqa: BLE001 - a label; the run's outcome is its state, which must still be set
        logging.getLogger("prefect.flow_runs").warning(f"could not tag the run {tag}: {exc}")


OUTCOME_PREFIX = "outcome:"


def final_state(run: Callable[[], RunSummary | Reconciled]) -> State:
    """Run the steps; the flow returns this state, so the UI shows the outcome as its message (and
    a train-and-deploy run as its `outcome:` tag), and a caller of the flow gets the summary (or the
    HeartgateError raised again)."""
    from prefect.states import Completed, Failed

    with one_line_known_errors():
        try:
            summary = run()
        except HeartgateError as expected:
            tag_this_run(OUTCOME_PREFIX + expected.outcome)
            if expected.final_state_by_prefect:
                raise
            return Failed(message=str(expected), data=expected)
        except Exception:
            tag_this_run(OUTCOME_PREFIX + HeartgateError.outcome)
            raise
    if isinstance(summary, RunSummary):
        tag_this_run(summary.outcome_tag)
    return Completed(message=summary.outcome, data=summary)

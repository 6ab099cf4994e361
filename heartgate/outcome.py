"""How a train-and-deploy run ends, wherever it runs (a terminal or a worker): its final Prefect
state carries the outcome in one line — "promoted … and deployed …", "not promoted: … did not
pass the gate", "… rejected by …", or the reason it failed — and an expected failure (a
`HeartgateError`: the race loser, a timed-out approval, a refused deploy) is logged without a
traceback. A bug keeps its traceback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from heartgate.contracts import Reconciled, RunSummary
from heartgate.errors import HeartgateError

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


def final_state(run: Callable[[], RunSummary | Reconciled]) -> Any:  # noqa: ANN401 - a prefect State
    """Run the steps; the flow returns this state, so the UI shows the outcome as its message and
    a caller of the flow gets the summary (or the HeartgateError raised again)."""
    from prefect.states import Completed, Failed

    with one_line_known_errors():
        try:
            summary = run()
        except HeartgateError as expected:
            if expected.final_state_by_prefect:
                raise
            return Failed(message=str(expected), data=expected)
    return Completed(message=summary.outcome, data=summary)

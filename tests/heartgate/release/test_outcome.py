"""A run ends with its outcome as the state message; expected failures in one line."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from heartgate.core.errors import HeartgateError
from heartgate.release.approval import ApprovalTimedOut
from heartgate.release.outcome import final_state, one_line_known_errors


def test_the_outcome_is_the_completed_state_message():
    summary = SimpleNamespace(outcome="not promoted: version 2 did not pass the gate; production unchanged")
    state = final_state(lambda: summary)
    assert state.is_completed() and state.message == summary.outcome and state.data is summary


def test_an_expected_failure_is_the_failed_state_message():
    def lose() -> None:
        raise HeartgateError("@production moved from none to version 1 after the gate compared version 2 with it")

    state = final_state(lose)
    assert state.is_failed() and state.message.startswith("@production moved from none to version 1")
    assert isinstance(state.data, HeartgateError)


def test_an_expired_approval_is_raised_because_prefect_sets_that_final_state():
    def expire() -> None:
        raise ApprovalTimedOut("no approval for version 1 within 3s: not promoted, production unchanged")

    with pytest.raises(ApprovalTimedOut):
        final_state(expire)


def test_a_bug_is_raised_with_its_traceback():
    with pytest.raises(ZeroDivisionError):
        final_state(lambda: 1 / 0)


def test_known_errors_are_logged_without_traceback_bugs_with(caplog):
    logger = logging.getLogger("prefect.flow_runs")
    with one_line_known_errors(), caplog.at_level(logging.ERROR, logger="prefect.flow_runs"):
        for error in (HeartgateError("known"), KeyError("bug")):
            try:
                raise error
            except Exception:
                logger.exception("Encountered exception during execution")
    known, bug = caplog.records
    assert known.exc_info is None and bug.exc_info is not None

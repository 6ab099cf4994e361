"""The one undo mechanism: every undo runs, newest first; the message keeps the original failure
and names a failed undo beside it, each in one line."""

from __future__ import annotations

import pytest

from heartgate.adapters.transaction import RolledBack, Transaction, UndoFailed
from heartgate.core.errors import HeartgateError


def test_success_runs_no_undo():
    undone = []
    with Transaction(log=lambda _: None) as tx:
        tx.on_failure("a", lambda failure: undone.append("a"))
    assert undone == []


def test_a_failure_runs_every_undo_newest_first_and_keeps_the_reason():
    undone = []
    with pytest.raises(RolledBack) as raised, Transaction(log=lambda _: None) as tx:
        tx.on_failure("promote", lambda failure: undone.append(("promote", str(failure))))
        tx.on_failure("apply", lambda failure: undone.append(("apply", str(failure))) or "rolled back: v1 serves again")
        raise HeartgateError("deploy of v2 failed: smoke test")
    assert [name for name, _ in undone] == ["apply", "promote"]
    assert all(reason == "deploy of v2 failed: smoke test" for _, reason in undone)
    assert str(raised.value) == "deploy of v2 failed: smoke test; rolled back: v1 serves again"


def test_without_notes_the_original_error_is_raised_unchanged():
    original = HeartgateError("@production moved")
    with pytest.raises(HeartgateError) as raised, Transaction(log=lambda _: None) as tx:
        tx.on_failure("nothing to say", lambda failure: None)
        raise original
    assert raised.value is original


def test_a_failing_undo_is_reported_beside_the_original_and_the_others_still_run():
    undone = []

    def broken(failure: BaseException) -> None:
        raise HeartgateError("terraform apply failed in local: port 3000 already answers")

    with pytest.raises(UndoFailed) as raised, Transaction(log=lambda _: None) as tx:
        tx.on_failure("@production back on version 1", lambda failure: undone.append("aliases"))
        tx.on_failure("re-apply heartgate:v1", broken)
        raise HeartgateError("deploy of heartgate:v2 failed: smoke test of http://x failed")
    assert undone == ["aliases"]
    assert str(raised.value).splitlines() == [
        "deploy of heartgate:v2 failed: smoke test of http://x failed",
        "undo failed: re-apply heartgate:v1: terraform apply failed in local: port 3000 already answers",
    ]


def test_a_bug_keeps_its_traceback_and_the_undo_is_logged():
    logged = []
    with pytest.raises(KeyError), Transaction(log=logged.append) as tx:
        tx.on_failure("put back", lambda failure: "rolled back: v1 serves again")
        raise KeyError("url")
    assert logged == ["undo: put back", "rolled back: v1 serves again"]


def test_the_cli_prints_each_failure_on_its_own_line(monkeypatch, capsys, tmp_path):
    from heartgate import cli

    def failing(args, config, overrides):
        raise UndoFailed(HeartgateError("deploy failed"), ["re-apply v1: terraform failed"])

    monkeypatch.setitem(cli.COMMANDS, "status", failing)
    monkeypatch.setattr(cli, "open_state_dir", lambda paths: None)  # keep this process's environment
    assert cli.main(["status", "--state-dir", str(tmp_path / "state")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "heartgate: error: deploy failed",
        "heartgate: error: undo failed: re-apply v1: terraform failed",
    ]

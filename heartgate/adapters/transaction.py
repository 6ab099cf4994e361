"""One undo mechanism for every step that changes production.

A `Transaction` is an undo log: each step that changes shared state registers how to put it back
(`on_failure`); if anything in the block fails, every registered undo runs, newest first, and the
block fails with the original reason. The flow (promote -> build-bento -> terraform-apply), each
deploy target (apply -> smoke test) and `heartgate rollback` all use it.

Why not Prefect's `transaction()` (docs/decisions.md #4): its rollback hooks stop at the first
hook that fails and only log that failure, so the user would see neither the undo's failure nor
the original one in the run's final message, and later hooks (putting `@production` back) would
not run. Here every undo runs, and an undo that fails is reported beside the original failure,
each in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from heartgate.core.errors import HeartgateError

Undo = Callable[[BaseException], str | None]  # gets the failure; may return a note for the message


class RolledBack(HeartgateError):
    """The block failed and was undone: the original reason, then what the undo did."""


class UndoFailed(HeartgateError):
    """The block failed and an undo failed too. The message has one line per failure: the
    original one first, then each undo's."""

    def __init__(self, failure: BaseException, undo_failures: list[str]) -> None:
        super().__init__("\n".join([_one_line(failure), *(f"undo failed: {line}" for line in undo_failures)]))
        self.failure = failure
        self.undo_failures = undo_failures


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, HeartgateError) else f"{type(error).__name__}: {text}"


@dataclass
class Transaction:
    log: Callable[[str], None] = print
    _undos: list[tuple[str, Undo]] = field(default_factory=list)

    def on_failure(self, what: str, undo: Undo) -> None:
        """Register how to put back what the block just changed; `what` names it in messages."""
        self._undos.append((what, undo))

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, kind: type[BaseException] | None, failure: BaseException | None, _: TracebackType | None) -> None:
        if failure is None or not isinstance(failure, Exception):
            return  # success, or an interrupt: an interrupted process leaves the next run to repair
        notes, undo_failures = self._undo(failure)
        if undo_failures:
            raise UndoFailed(failure, undo_failures) from failure
        if notes and isinstance(failure, HeartgateError):
            raise RolledBack(f"{_one_line(failure)}; {'; '.join(notes)}") from failure
        for note in notes:  # a bug keeps its traceback; the undo is logged beside it
            self.log(note)

    def _undo(self, failure: BaseException) -> tuple[list[str], list[str]]:
        notes: list[str] = []
        undo_failures: list[str] = []
        for what, undo in reversed(self._undos):
            self.log(f"undo: {what}")
            try:
                note = undo(failure)
            except Exception as error:  # noqa: BLE001 - every undo runs, whatever the one before did
                undo_failures.append(f"{what}: {_one_line(error)}")
                continue
            if note:
                notes.append(note)
        self._undos.clear()
        return notes, undo_failures

"""The two locks that keep production consistent, and why each survives a crash of its holder.

- `promotion_lock(model)`: moving `@production` (promote, revert, rollback, a reconcile's fallback).
- `deploy_lock(target)`: changing what a target serves (a run's build + apply, `reconcile`,
  `rollback`, `undeploy`). Taken before the promotion lock when both are needed.

Where a Prefect server is configured (PREFECT_API_URL: the team stack, `heartgate up`), each lock
is a Prefect global concurrency limit of one slot, shared by every process and machine on that
server. Its slot is leased: the holder renews the lease in the background, and the server's
repossessor frees the slot of a holder that died within `LEASE_S` (plus one repossessor loop).

Without one (a `heartgate run` in a terminal), each process starts its own temporary Prefect
server, which runs no repossessor: a slot taken by a process killed with -9 would stay taken
forever. There the lock is an exclusive `flock` on a file under the state dir, which the kernel
releases when its holder dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from heartgate.core.errors import HeartgateError

LEASE_S = 60
DEFAULT_TIMEOUT_S = 300


class LockTimeout(HeartgateError):
    """Another process held the lock for longer than the caller was willing to wait."""


def promotion_lock(model_name: str, state_root: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> contextlib.AbstractContextManager[None]:
    """One move of `@production` at a time per registered model."""
    return exclusive(f"heartgate-promote-{model_name}", state_root, timeout_s)


def deploy_lock(target: str, state_root: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> contextlib.AbstractContextManager[None]:
    """One change of what `target` serves at a time."""
    return exclusive(f"heartgate-deploy-{target}", state_root, timeout_s)


def locks_are_shared() -> bool:
    """True where the locks are a Prefect server's, held across every machine that uses it."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def exclusive(name: str, state_root: Path, timeout_s: float) -> contextlib.AbstractContextManager[None]:
    if locks_are_shared():
        return _prefect_slot(name, timeout_s)
    return _file_lock(state_root / "locks" / f"{name}.lock", name, timeout_s)


@contextlib.contextmanager
def _prefect_slot(name: str, timeout_s: float) -> Iterator[None]:
    from prefect import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists

    # Prefect requires the limit to exist before slots are taken; absent, `concurrency` would not block.
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.upsert_global_concurrency_limit_by_name(name, limit=1)
    try:
        with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_s, lease_duration=LEASE_S):
            yield
    except TimeoutError:
        raise LockTimeout(f"{name} is held by another run for more than {timeout_s:.0f}s; try again later") from None


@contextlib.contextmanager
def _file_lock(path: Path, name: str, timeout_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with path.open("a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise LockTimeout(f"{name} is held by {holder} for more than {timeout_s:.0f}s; try again later") from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")  # who holds it, for the message above
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)

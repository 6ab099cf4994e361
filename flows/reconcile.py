"""reconcile: the watchdog. prefect.yaml schedules it every `stack.watchdog_interval_s`, so a
server that died, or a deploy a crash cut short, is repaired without a person; `heartgate
reconcile` runs the same step by hand, and every train-and-deploy run runs it first."""

from __future__ import annotations

from typing import Any

from prefect import State, flow

from heartgate.core.contracts import Reconciled
from heartgate.release.outcome import final_state
from heartgate.release.prepare import prepare_run
from tasks.reconcile import reconcile


@flow(name="reconcile")
def reconcile_production(config_file: str | None = None, overrides: dict[str, Any] | None = None, profile: str | None = None) -> State[Reconciled]:
    """Compare what the target serves with `@production` and converge (heartgate.release.reconcile). The
    run's final message says what it found and did."""

    def steps() -> Reconciled:
        return reconcile(prepare_run(config_file, overrides or {}, profile))

    return final_state(steps)

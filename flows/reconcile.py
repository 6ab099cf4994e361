"""reconcile: the watchdog. prefect.yaml schedules it every `stack.watchdog_interval_s`, so a
server that died, or a deploy a crash cut short, is repaired without a person; `heartgate
reconcile` runs the same step by hand, and every train-and-deploy run runs it first."""

from __future__ import annotations

import os
from typing import Any

from prefect import State, flow

from heartgate.adapters.dependencies import require_dependencies
from heartgate.adapters.state import require_shared_state
from heartgate.core.config import load_config, nest
from heartgate.core.contracts import Reconciled
from heartgate.release.outcome import final_state
from tasks.reconcile import reconcile


@flow(name="reconcile")
def reconcile_production(config_file: str | None = None, overrides: dict[str, Any] | None = None, profile: str | None = None) -> State[Reconciled]:
    """Compare what the target serves with `@production` and converge (heartgate.release.reconcile). The
    run's final message says what it found and did."""

    def steps() -> Reconciled:
        config = load_config(config_file, nest(overrides or {}, "."), environ=os.environ, profile=profile)
        require_shared_state(config)
        require_dependencies(config)
        return reconcile(config)

    return final_state(steps)

"""reconcile: before anything else, make the target serve `@production` (heartgate.release.reconcile),
and end the runs whose process is gone (heartgate.adapters.runs)."""

from __future__ import annotations

from prefect import get_run_logger, task

import heartgate.release.reconcile
from heartgate.adapters.runs import end_dead_runs
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import Reconciled
from heartgate.release.resume import once_per_flow_run


@task(name="reconcile", cache_key_fn=once_per_flow_run)
def reconcile(config: HeartgateConfig) -> Reconciled:
    logger = get_run_logger()
    for line in end_dead_runs():
        logger.warning(line)
    reconciled = heartgate.release.reconcile.reconcile(config, logger.info)
    logger.info(reconciled.message)
    return reconciled

"""reconcile: before anything else, make the target serve `@production` (heartgate.reconcile),
and end the runs whose process is gone (heartgate.runs)."""

from __future__ import annotations

from prefect import get_run_logger, task

import heartgate.reconcile
from heartgate.config import HeartgateConfig
from heartgate.contracts import Reconciled
from heartgate.resume import once_per_flow_run
from heartgate.runs import end_dead_runs


@task(name="reconcile", cache_key_fn=once_per_flow_run)
def reconcile(config: HeartgateConfig) -> Reconciled:
    logger = get_run_logger()
    for line in end_dead_runs():
        logger.warning(line)
    reconciled = heartgate.reconcile.reconcile(config, logger.info)
    logger.info(reconciled.message)
    return reconciled

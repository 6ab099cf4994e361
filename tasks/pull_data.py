"""pull-data: fetch ECG5000, check it, and version it with DVC (heartgate.ml.data)."""

from __future__ import annotations

from prefect import get_run_logger, task

import heartgate.ml.data
from heartgate.adapters.dvc_store import DvcStore
from heartgate.adapters.state import StatePaths
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import DataVersion
from heartgate.core.errors import retry_only_transient
from heartgate.release.resume import once_per_flow_run


@task(name="pull-data", cache_key_fn=once_per_flow_run, retries=2, retry_delay_seconds=5, retry_condition_fn=retry_only_transient)
def pull_data(config: HeartgateConfig) -> DataVersion:
    data = heartgate.ml.data.pull_data(config.data, DvcStore.for_config(config), StatePaths(config.state_root).downloads)
    get_run_logger().info(data.describe())
    return data

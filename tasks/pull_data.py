"""pull-data: fetch ECG5000, check it, and version it with DVC (heartgate.data)."""

from __future__ import annotations

from prefect import get_run_logger, task

import heartgate.data
from heartgate.config import HeartgateConfig
from heartgate.contracts import DataVersion
from heartgate.errors import retry_only_transient
from heartgate.resume import once_per_flow_run


@task(name="pull-data", cache_key_fn=once_per_flow_run, retries=2, retry_delay_seconds=5, retry_condition_fn=retry_only_transient)
def pull_data(config: HeartgateConfig) -> DataVersion:
    data = heartgate.data.pull_data(config)
    get_run_logger().info(data.describe())
    return data

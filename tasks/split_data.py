"""split-data: the fixed, versioned train/validation/test split (heartgate.ml.splits)."""

from __future__ import annotations

from prefect import get_run_logger, task

import heartgate.ml.splits
from heartgate.adapters.dvc_store import DvcStore
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import DataVersion, SplitVersion
from heartgate.core.errors import retry_only_transient
from heartgate.release.resume import once_per_flow_run


@task(name="split-data", cache_key_fn=once_per_flow_run, retries=2, retry_delay_seconds=5, retry_condition_fn=retry_only_transient)
def split_data(data: DataVersion, config: HeartgateConfig) -> SplitVersion:
    split = heartgate.ml.splits.split_data(data, config.split, DvcStore.for_config(config))
    get_run_logger().info("split %s %s", split.md5, split.counts)
    return split

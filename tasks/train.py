"""train: the autoencoder on the normal train beats, tracked in MLflow (heartgate.training)."""

from __future__ import annotations

from prefect import get_run_logger, task

import heartgate.training
from heartgate.config import HeartgateConfig
from heartgate.contracts import DataVersion, SplitVersion, TrainResult
from heartgate.lineage import Lineage
from heartgate.links import run_origin
from heartgate.registry import Registry
from heartgate.resume import once_per_flow_run
from heartgate.splits import load_split_arrays


@task(name="train", cache_key_fn=once_per_flow_run)
def train(config: HeartgateConfig, data: DataVersion, split: SplitVersion, lineage: Lineage) -> TrainResult:
    arrays = load_split_arrays(data, split, config.split.seed)
    registry = Registry.for_config(config)
    return heartgate.training.train(config, registry, arrays, lineage, progress=get_run_logger().info, origin=run_origin())

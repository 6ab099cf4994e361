"""train: the autoencoder on the normal train beats, tracked in MLflow (heartgate.ml.training)."""

from __future__ import annotations

from prefect import get_run_logger, task

import heartgate.ml.training
from heartgate.adapters.registry import Registry
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import DataVersion, SplitVersion, TrainResult
from heartgate.core.lineage import Lineage
from heartgate.ml.splits import load_split_arrays
from heartgate.release.links import run_origin
from heartgate.release.resume import once_per_flow_run


@task(name="train", cache_key_fn=once_per_flow_run)
def train(config: HeartgateConfig, data: DataVersion, split: SplitVersion, lineage: Lineage) -> TrainResult:
    arrays = load_split_arrays(data, split, config.split.seed)
    registry = Registry.for_config(config)
    recorded = heartgate.ml.training.config_params(config)
    return heartgate.ml.training.train(config.train, registry, arrays, lineage, recorded, progress=get_run_logger().info, origin=run_origin())

"""What every flow does before its first step: the config it runs with, and the refusals that
are cheaper now than after training (another machine's state, a dependency down)."""

from __future__ import annotations

import os
from typing import Any

from heartgate.adapters.dependencies import require_dependencies
from heartgate.adapters.state import require_shared_state
from heartgate.core.config import HeartgateConfig, load_config, nest
from heartgate.release.record import signing_key
from heartgate.serving.targets import target_for


def prepare_run(config_file: str | None, overrides: dict[str, Any], profile: str | None) -> HeartgateConfig:
    """The run's config (dotted `overrides` over the profile over the file), once checked: a
    worker never forks the team's registry by accident, and MLflow, Prefect, S3 or what the deploy
    target needs down is one line now, not a traceback later."""
    config = load_config(config_file or None, nest(overrides, "."), environ=os.environ, profile=profile or None)
    target = target_for(config, log=lambda _: None)  # checks deploy.target and every target's section
    require_shared_state(config)
    signing_key(config, os.environ)  # a promotion will sign with it: a missing or wrong one stops the run now, before training
    require_dependencies(config, target.dependencies)
    return config

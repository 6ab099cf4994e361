"""Deploy targets: one module per target, each a `DeployTarget` subclass with a Terraform root
`infra/terraform/envs/<name>`. The target is chosen here, in one place, by `deploy.target`;
a new target is a new module in this package and a new Terraform root, nothing else."""

from __future__ import annotations

import importlib
import pkgutil

from heartgate.core.config import HeartgateConfig
from heartgate.core.errors import ConfigError
from heartgate.serving.targets.base import DeployTarget, Log


def _targets() -> dict[str, type[DeployTarget]]:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
    return {target.name: target for target in DeployTarget.__subclasses__()}


def target_names() -> list[str]:
    return sorted(_targets())


def target_for(config: HeartgateConfig, log: Log = print) -> DeployTarget:
    targets = _targets()
    name = config.deploy.target
    if name not in targets:
        raise ConfigError(f"unknown deploy target {name!r} (available: {', '.join(sorted(targets))})")
    return targets[name](config, log)

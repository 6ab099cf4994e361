"""Deploy targets: one module (or package) per target, each a `DeployTarget` subclass with a
Terraform root `infra/terraform/envs/<name>`. A target declares its own config section, key
policy, dependency probes and worker credentials (heartgate.serving.targets.base), so a new target
is a new module here and a new Terraform root, nothing else: `deploy.target`, the Run form's
target field, `--target`, the dependency check and `heartgate up`'s workers find it here."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Mapping

from heartgate.core.config import HeartgateConfig
from heartgate.core.errors import ConfigError
from heartgate.serving.targets.base import DeployTarget, Log


@functools.cache
def _import_target_modules() -> None:
    """Each module (or package) here registers its target when imported; the scan runs once."""
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


def _targets() -> dict[str, type[DeployTarget]]:
    _import_target_modules()
    return dict(DeployTarget.registered)


def target_names() -> list[str]:
    return sorted(_targets())


def _available(targets: Mapping[str, type[DeployTarget]]) -> str:
    return f"available: {', '.join(sorted(targets))}"


def require_target_name(name: str) -> str:
    """`name` if a target of that name is registered, else one line naming the choices."""
    targets = _targets()
    if name not in targets:
        raise ConfigError(f"unknown deploy target {name!r} ({_available(targets)})")
    return name


def check_config(config: HeartgateConfig) -> None:
    """`deploy.target` names a target, and every `deploy.<name>` section belongs to one and is
    valid for it (the core cannot check them: it knows no target by name)."""
    targets = _targets()
    require_target_name(config.deploy.target)
    for name in config.deploy.sections():
        if name not in targets:
            raise ConfigError(f"invalid config value deploy.{name}: no deploy target is named {name!r} ({_available(targets)})")
        targets[name].settings_of(config)


def target_for(config: HeartgateConfig, log: Log = print) -> DeployTarget:
    check_config(config)
    return _targets()[config.deploy.target](config, log)


def worker_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """What a worker needs to deploy to any target a run may choose (each target names its own)."""
    return {name: value for target in _targets().values() for name, value in target.worker_credentials(environ).items()}

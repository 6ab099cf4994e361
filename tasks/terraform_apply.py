"""terraform-apply: deploy the bento to the configured target, smoke-test it, and put the previous
deployment back on failure (heartgate.serving.targets)."""

from __future__ import annotations

from prefect import get_run_logger, task

from heartgate.adapters.registry import Registry
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import BentoBuild, Deployment
from heartgate.release.reconcile import record_deployed
from heartgate.serving.targets import target_for


@task(name="terraform-apply")
def terraform_apply(config: HeartgateConfig, built: BentoBuild) -> Deployment:
    logger = get_run_logger()
    deployment = target_for(config, logger.info).apply(built)
    record_deployed(Registry.for_config(config), deployment)
    logger.info(f"deployed {deployment.bento_tag} to {deployment.target} at {deployment.url}")
    return deployment

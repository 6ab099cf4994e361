"""rollback: put `@previous` back into production and serving, by hand (`heartgate rollback`).

The previous version's bento is rebuilt from the registry if the store lost it, deployed with the
same Terraform step (smoke test included; if that fails, what was serving keeps serving), and only
then does `@production` move back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from heartgate.config import HeartgateConfig
from heartgate.errors import HeartgateError
from heartgate.registry import PREVIOUS_ALIAS, PRODUCTION_ALIAS, version_by_alias
from heartgate.tracking import connect, require_existing_store
from tasks.build_bento import build_bento_for_version
from tasks.deploy import Deployment, bento_model_dir, deploy_bento, read_deployment
from tasks.promote import promotion_lock
from tasks.split_data import load_tracked_split_arrays


class RollbackError(HeartgateError):
    """There is nothing to roll back to, or production moved meanwhile."""


def rollback_production(config: HeartgateConfig, log: Callable[[str], None] = print) -> Deployment:
    import mlflow

    require_existing_store(config)
    connect(config)
    client = mlflow.MlflowClient()
    name = config.registry.model_name
    current, previous = (version_by_alias(client, name, alias) for alias in (PRODUCTION_ALIAS, PREVIOUS_ALIAS))
    if previous is None:
        raise RollbackError(f"nothing to roll back to: model {name!r} has no @previous version")
    target, rolled_back = str(previous.version), str(current.version) if current else None

    if config.deploy.target == "aws":
        from tasks.deploy_aws import rollback_lambda

        deployed = read_deployment(config)
        if deployed is None or deployed.previous_registry_version != target:
            before = deployed.previous_registry_version if deployed else None
            raise RollbackError(f"the function version before `live` serves registry version {before}, not @previous {target}")
        deployment = rollback_lambda(config, log)
    else:
        built = build_bento_for_version(config, target)
        deployment = deploy_bento(config, built, bento_model_dir(built.model_tag), load_tracked_split_arrays(config), log)
    with promotion_lock(name):
        now = version_by_alias(client, name, PRODUCTION_ALIAS)
        if (str(now.version) if now else None) != rolled_back:
            raise RollbackError(f"@production moved to version {now.version if now else 'none'} during the rollback; aliases left as they are")
        client.set_registered_model_alias(name, PRODUCTION_ALIAS, target)
        client.delete_registered_model_alias(name, PREVIOUS_ALIAS)
    if rolled_back:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        client.set_model_version_tag(name, rolled_back, "rolled_back", f"{stamp}: production rolled back to version {target}")
    log(f"rolled back: @production is version {target} (was {rolled_back or 'none'}), serving at {deployment.url}")
    return deployment

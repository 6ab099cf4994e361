"""reconcile: make the target serve what the registry says should serve.

The desired state is shared: the registry's `@production`, unless `heartgate undeploy` stopped
the target on purpose (a registered-model tag `undeployed.<target>`, cleared by the next deploy).
The actual state is checked on the target now (`DeployTarget.observe`: what answers, as which
version, against what Terraform's state records). Reconcile compares the two under the target's
deploy lock and converges:

- they agree: smoke-test what serves (a server can answer and still be wrong) and keep it;
- they differ, or the smoke test fails: deploy `@production` again (the target's own apply,
  which stops strays, replaces a dead server and smoke-tests);
- that fails: the target's undo has put back the last deployment that passed a smoke test;
  `@production` moves back to it and the version that could not be served is tagged `rejected`;
- `@production`'s release record does not verify (the alias was moved outside heartgate, the
  record is missing or forged, the registered artifact was replaced): it is never served. The last
  valid release keeps serving (or serves again) and `@production` goes back to it, the version is
  tagged with the reason, the approval notification's channel gets a one-line alert and Prefect an
  event, `status` names it until the next verified deploy, and the command fails (ReleaseRefused).

Every repair is written into the lineage of the version it concerns (`reconciled.<target>`).
Every train-and-deploy run reconciles first, `heartgate reconcile` does it by hand, and the
`reconcile` deployment runs it on a schedule (a watchdog).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from heartgate.adapters.locks import deploy_lock, promotion_lock
from heartgate.adapters.registry import PRODUCTION_ALIAS, Registry
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import BentoBuild, Deployment, Reconciled, ServingState
from heartgate.core.errors import HeartgateError
from heartgate.core.lineage import timestamp
from heartgate.release.notify import alert
from heartgate.release.record import ReleaseNotVerified, trusted_key, verified_build
from heartgate.serving.bento import bento_src, registry_version_of, tags_for
from heartgate.serving.proof import PUBLIC_KEY_VARIABLE, check_served_model
from heartgate.serving.targets import target_for
from heartgate.serving.targets.base import DeployTarget, model_dir

Log = Callable[[str], None]
UNDEPLOYED_TAG = "undeployed.{target}"
RECONCILED_TAG = "reconciled.{target}"
DEPLOYED_TAG = "deployed.{target}"  # on a version: when and where a run's deploy served it (heartgate history)
REFUSED_TAG = "refused.{target}"  # on the model: the last version reconcile refused to serve (status names it)
REFUSED_EVENT = "heartgate.release.refused"


class ReconcileFailed(HeartgateError):
    """Neither `@production` nor anything that passed a smoke test could be served."""


class OutOfSync(HeartgateError):
    """`heartgate status`: the target does not serve what is desired."""


class ReleaseRefused(HeartgateError):
    """`@production` named a version without a valid release record: it was not served."""


@dataclass(frozen=True)
class Desired:
    version: str | None  # None: nothing should serve
    why: str

    def describe(self) -> str:
        return f"version {self.version} ({self.why})" if self.version else f"nothing ({self.why})"


def desired_state(registry: Registry | None, target: str, elsewhere: str | None = None) -> Desired:
    """elsewhere: why this machine does not serve `target` at all (`DeployTarget.elsewhere`)."""
    if elsewhere:
        return Desired(None, elsewhere)
    if registry is None:
        return Desired(None, "no registry yet")
    undeployed = registry.model_tags().get(UNDEPLOYED_TAG.format(target=target))
    if undeployed:
        return Desired(None, f"undeployed {undeployed}")
    version = registry.alias_version(PRODUCTION_ALIAS)
    return Desired(version, "@production") if version else Desired(None, "no @production yet")


def in_sync(desired: Desired, actual: ServingState) -> bool:
    if desired.version is None:
        return actual.deployed is None and actual.answering is None and not actual.problems
    return actual.serves(desired.version)


def drift(desired: Desired, actual: ServingState) -> str:
    """Why the actual state is not the desired one, in one line."""
    return f"desired {desired.describe()}, actual {actual.describe()}"


def mark_undeployed(registry: Registry, target: str, by: str) -> None:
    registry.tag_model(UNDEPLOYED_TAG.format(target=target), f"at {timestamp()} by {by}")


def clear_undeployed(registry: Registry, target: str) -> None:
    registry.tag_model(UNDEPLOYED_TAG.format(target=target), None)


def record_deployed(registry: Registry, deployment: Deployment) -> None:
    """A deploy passed its smoke test: serving again (the watchdog keeps it so), and the version's
    ledger says where. A verified release serves now, so an earlier refusal is no longer news."""
    clear_undeployed(registry, deployment.target)
    registry.tag_model(REFUSED_TAG.format(target=deployment.target), None)
    registry.tag(deployment.registry_version, {DEPLOYED_TAG.format(target=deployment.target): f"{timestamp()}: {deployment.url}"})


def reconcile(config: HeartgateConfig, log: Log = print, lock_timeout_s: float = 300) -> Reconciled:
    """Compare and converge, under the target's deploy lock."""
    registry = Registry.for_config(config)
    target = target_for(config, log)
    with deploy_lock(target.name, config.state_root, lock_timeout_s):
        desired = desired_state(registry, target.name, target.elsewhere())
        actual = target.observe()
        if desired.version is None:
            return Reconciled(
                target=target.name, desired=None, action="nothing_desired", message=f"{target.name}: nothing to serve ({desired.why}); {actual.describe()}"
            )
        try:
            built = verified_build(config, registry, desired.version, os.environ)
        except ReleaseNotVerified as unproven:
            raise _refuse(config, registry, target, desired.version, str(unproven)) from None
        if actual.serves(desired.version):
            try:
                return _verify(registry, target, built)
            except HeartgateError as failure:
                why = f"version {desired.version} answers but fails its smoke test ({failure})"
        else:
            why = drift(desired, actual)
        return _repair(config, registry, target, desired.version, why)


def _verify(registry: Registry, target: DeployTarget, built: BentoBuild) -> Reconciled:
    """It serves the desired version: smoke-test it. If no smoke test had passed on it yet (a
    deploy killed between apply and smoke test), the lineage says it has now."""
    recorded = target.current()
    deployment = target.verify(built)
    message = f"{target.name}: serves version {built.registry_version} at {deployment.url}, smoke-tested"
    if recorded is None or recorded.registry_version != built.registry_version:
        registry.tag(
            built.registry_version,
            {RECONCILED_TAG.format(target=target.name): f"{timestamp()}: served but never smoke-tested (an interrupted deploy); smoke-tested and recorded"},
        )
        message += " (its deploy had been interrupted before the smoke test)"
    return Reconciled(target=target.name, desired=built.registry_version, action="in_sync", message=message)


def _repair(config: HeartgateConfig, registry: Registry, target: DeployTarget, version: str, why: str) -> Reconciled:
    target.log(f"{target.name} is out of sync: {why}; deploying @production version {version} again")
    try:
        deployment = target.apply(verified_build(config, registry, version, os.environ))
    except HeartgateError as failure:
        return _fall_back(config, registry, target, version, f"{why}; deploying it again failed: {failure}")
    clear_undeployed(registry, target.name)
    registry.tag(version, {RECONCILED_TAG.format(target=target.name): f"{timestamp()}: redeployed, smoke-tested; was: {why}"})
    message = f"{target.name}: redeployed version {version} at {deployment.url}, smoke-tested (was: {why})"
    return Reconciled(target=target.name, desired=version, action="redeployed", message=message)


def _fall_back(config: HeartgateConfig, registry: Registry, target: DeployTarget, version: str, why: str) -> Reconciled:
    """The target's undo put back the last deployment that passed a smoke test (if there was
    one): check it serves, then make `@production` say so."""
    fallback = target.current()
    if fallback is None or fallback.registry_version == version or not target.observe().serves(fallback.registry_version):
        raise ReconcileFailed(f"{target.name} cannot serve @production version {version} and has nothing that passed a smoke test to fall back to: {why}")
    with promotion_lock(registry.model_name, config.state_root):
        moved = registry.alias_version(PRODUCTION_ALIAS) == version
        if moved:
            registry.point(PRODUCTION_ALIAS, fallback.registry_version)
    note = f"{timestamp()}: {target.name} could not serve it ({why}); fell back to version {fallback.registry_version}"
    registry.tag(version, {"rejected": note, RECONCILED_TAG.format(target=target.name): note})
    registry.tag(fallback.registry_version, {RECONCILED_TAG.format(target=target.name): f"{timestamp()}: served again in place of version {version}"})
    message = f"{target.name}: could not serve version {version}; version {fallback.registry_version} serves at {fallback.url}" + (
        f" and @production is back on it ({why})" if moved else f" ({why})"
    )
    return Reconciled(target=target.name, desired=version, action="fell_back", message=message)


def _refuse(config: HeartgateConfig, registry: Registry, target: DeployTarget, version: str, why: str) -> ReleaseRefused:
    """`@production` names `version`, whose release does not verify: keep (or put back) the last
    valid release, point `@production` at it, tag, alert; the error says what happened."""
    serving = target.current()
    if serving is not None and serving.registry_version == version and _served_copy_verified(config, serving.bento_tag):
        kept = f"{target.name} keeps serving its verified copy of version {version} (checked against the signed record)"
    elif serving is not None and serving.registry_version != version:
        fallback = verified_build(config, registry, serving.registry_version, os.environ)  # it must be a valid release too
        if target.observe().serves(fallback.registry_version):
            target.verify(fallback)
        else:
            target.apply(fallback)
        with promotion_lock(registry.model_name, config.state_root):
            if registry.alias_version(PRODUCTION_ALIAS) == version:
                registry.point(PRODUCTION_ALIAS, fallback.registry_version)
        kept = f"{target.name} serves version {fallback.registry_version}, and @production is back on it"
    else:
        kept = f"{target.name} has no verified release to serve"
    note = f"{timestamp()}: not served, its release does not verify ({why})"
    registry.tag(version, {"rejected": note, RECONCILED_TAG.format(target=target.name): note})
    message = f"refused @production version {version}: {why}; {kept}"
    registry.tag_model(REFUSED_TAG.format(target=target.name), f"version {version} at {timestamp()}: {why}")
    alert(config, f"heartgate: {message}", event=REFUSED_EVENT, resource=f"heartgate.model.{registry.model_name}.{version}", log=target.log)
    return ReleaseRefused(message)


def _served_copy_verified(config: HeartgateConfig, bento_tag: str) -> bool:
    """Whether the bento that serves (this machine's store) still carries a valid release of its
    own: the case of a registry artifact replaced after it was deployed."""
    from bentoml.exceptions import BentoMLException

    try:
        environ = {PUBLIC_KEY_VARIABLE: trusted_key(config, os.environ)}
        check_served_model(model_dir(tags_for(registry_version_of(bento_tag))[0]), bento_src(bento_tag), environ)
    except (HeartgateError, BentoMLException, OSError, ValueError, KeyError):
        return False
    return True


def refused_release(registry: Registry | None, target: str) -> str | None:
    """The last refusal `status` reports (until a verified release is deployed), or None."""
    if registry is None:
        return None
    with contextlib.suppress(HeartgateError):
        return registry.model_tags().get(REFUSED_TAG.format(target=target))
    return None

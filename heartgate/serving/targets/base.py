"""The interface every deploy target implements, and what they share: their Terraform root
(`infra/terraform/envs/<name>`), their working files under the state dir, and the record of the
last deployment that passed its smoke test.

A target also declares what the rest of heartgate would otherwise have to know about it: its
config section (`deploy.<name>`, `settings_type`), whether it serves without an API key by default
(`keyless_by_default`), the servers it needs before anything moves (`dependencies`), and the
credentials a worker needs to deploy to it (`worker_credentials`)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from heartgate.adapters.dependencies import Dependency
from heartgate.adapters.secrets import API_KEY
from heartgate.adapters.signing import trusted_public_key
from heartgate.adapters.state import StatePaths
from heartgate.adapters.terraform import Terraform
from heartgate.core.config import PROJECT_ROOT, HeartgateConfig, first_error
from heartgate.core.contracts import BentoBuild, Deployment, ServingState
from heartgate.core.errors import ConfigError, HeartgateError
from heartgate.serving.proof import PUBLIC_KEY_VARIABLE

Log = Callable[[str], None]
RECORD_FILE = "deployed.json"


class DeployFailed(HeartgateError):
    """The deploy failed; the target put the previous deployment back."""


class TargetSettings(BaseModel):
    """A target's own config section, `deploy.<name>` (none by default): subclass it with fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DeployTarget(ABC):
    """One place a promoted model can be served. Subclasses set `name` (the value of
    `deploy.target`, and the Terraform root `infra/terraform/envs/<name>`)."""

    name: ClassVar[str]
    record_type: ClassVar[type[Deployment]] = Deployment
    settings_type: ClassVar[type[TargetSettings]] = TargetSettings  # the section deploy.<name>
    keyless_by_default: ClassVar[bool] = False  # serve.api_key=auto: only a target that serves on loopback alone says True
    registered: ClassVar[dict[str, type[DeployTarget]]] = {}  # by name: every subclass, once its module is imported

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        DeployTarget.registered[cls.name] = cls

    def __init__(self, config: HeartgateConfig, log: Log) -> None:
        self.config = config
        self.log = log
        self.settings = self.settings_of(config)
        paths = StatePaths(config.state_root)
        self.deploy_dir = paths.deploy / self.name
        self.work_dir = paths.terraform / self.name

    # --- what each target declares --------------------------------------------------------------

    @classmethod
    def settings_of(cls, config: HeartgateConfig) -> TargetSettings:
        """The target's section of `config`, validated: a wrong key or value is one line naming it."""
        try:
            return cls.settings_type.model_validate(config.deploy.section(cls.name))
        except ValidationError as exc:
            raise ConfigError(first_error(exc, section=f"deploy.{cls.name}")) from None

    @classmethod
    def worker_credentials(cls, environ: Mapping[str, str]) -> dict[str, str]:
        """What a worker of the embedded profile needs from `heartgate up`'s environment to deploy
        here (a target that talks to a cloud names its credentials; none by default)."""
        return {}

    def dependencies(self, s3_endpoint: str | None) -> list[Dependency]:
        """The servers this target needs, checked with MLflow, Prefect and S3 before every command
        and run (heartgate.adapters.dependencies); none by default."""
        return []

    # --- what each target implements ------------------------------------------------------------

    @abstractmethod
    def apply(self, built: BentoBuild) -> Deployment:
        """Deploy `built`, smoke-test it and record it. On any failure the previous deployment is
        put back and DeployFailed (wrapped by the undo log) names the reason."""

    @abstractmethod
    def serving_again(self, deployment: Deployment) -> str:
        """What serves once `deployment` is put back (the note of an undo)."""

    @abstractmethod
    def roll_back(self, built: BentoBuild) -> Deployment:
        """Serve `built` again: the bento of the version before the current production."""

    @abstractmethod
    def observe(self) -> ServingState:
        """What the target serves, checked now: the actual state reconcile compares with @production."""

    @abstractmethod
    def verify(self, built: BentoBuild) -> Deployment:
        """Smoke-test what serves `built` now (observe() said it does) and record it as good."""

    @abstractmethod
    def backend_config(self) -> dict[str, str]:
        """`terraform init -backend-config` values: where this target's Terraform state lives."""

    # --- shared ---------------------------------------------------------------------------------

    def api_key_required(self) -> bool:
        """serve.api_key for this target: "required", "off", or "auto" (off where `keyless_by_default`)."""
        mode = self.config.serve.api_key
        return mode == "required" or (mode == "auto" and not self.keyless_by_default)

    def require_api_key(self) -> None:
        """Stop before anything moves when serve.api_key needs a key this target cannot get (by
        default it reads HEARTGATE_API_KEY; a target with a secret store overrides this)."""
        if self.api_key_required() and not os.environ.get(API_KEY):
            raise ConfigError(f"serve.api_key is required for the {self.name} target but {API_KEY} is not set in the environment")

    def terraform(self) -> Terraform:
        terraform = Terraform(
            root=PROJECT_ROOT / "infra" / "terraform" / "envs" / self.name,
            work_dir=self.work_dir,
            binary=self.config.deploy.terraform_binary,
            plugin_mirror=self.config.deploy.plugin_mirror,
            log=self.log,
        )
        terraform.init(self.backend_config())
        return terraform

    def serve_environment(self) -> dict[str, str]:
        """What the served process reads at start: the serving limits, under the config's names, and
        the public key it checks its release with (it refuses to serve without one)."""
        serve = self.config.serve
        return {
            PUBLIC_KEY_VARIABLE: trusted_public_key(self.config, os.environ) or "",
            "HEARTGATE_SERVE__MAX_ROWS": str(serve.max_rows),
            "HEARTGATE_SERVE__MAX_BODY_BYTES": str(serve.max_body_bytes),
            "HEARTGATE_SERVE__ACCESS_LOG": str(serve.access_log).lower(),
            "HEARTGATE_SERVE__WORKERS": str(serve.workers),
        }

    def current(self, terraform: Terraform | None = None) -> Deployment | None:
        """The last deployment that passed its smoke test, as recorded (a target whose record is
        its Terraform state reads it through `terraform`, if it is already initialized)."""
        record = self.deploy_dir / RECORD_FILE
        return self.record_type.model_validate_json(record.read_text()) if record.exists() else None

    def record(self, deployment: Deployment) -> None:
        self.deploy_dir.mkdir(parents=True, exist_ok=True)
        partial = self.deploy_dir / f".{RECORD_FILE}.partial"
        partial.write_text(deployment.model_dump_json(indent=2))
        partial.replace(self.deploy_dir / RECORD_FILE)

    def restore(self, deployment: Deployment, terraform: Terraform | None = None) -> str:
        """Put an earlier recorded deployment back exactly (with the initialized `terraform` of the
        apply being undone, if there is one); returns what is serving now."""
        (terraform or self.terraform()).apply(deployment.variables)
        self.record(deployment)
        return self.serving_again(deployment)

    def undeploy(self) -> Deployment | None:
        """Destroy what Terraform deployed on the target, including what an interrupted apply
        left in the state without finishing; returns the deployment that was there."""
        terraform = self.terraform()
        deployed = self.current(terraform)
        if deployed is not None or terraform.state_list():
            terraform.destroy(deployed.variables if deployed else self.placeholder_variables())
        self.forget()
        return deployed

    def placeholder_variables(self) -> dict[str, Any]:
        """Values for the root's required variables when only a destroy needs them (it acts on
        what the state records; the values are not used)."""
        return {}

    def elsewhere(self) -> str | None:
        """Why this machine does not serve this target at all (None: it does). A shared target
        (AWS) is served from every machine alike."""
        return None

    def forget(self) -> None:
        """Drop this machine's record of the last good deployment (nothing serves any more)."""
        (self.deploy_dir / RECORD_FILE).unlink(missing_ok=True)

    def deployment(self, built: BentoBuild, url: str, variables: dict[str, Any], **extra: Any) -> Deployment:
        return self.record_type(
            target=self.name,
            url=url,
            bento_tag=built.bento_tag,
            registry_version=built.registry_version,
            variables=variables,
            **extra,
        )


def model_dir(model_tag: str) -> Path:
    """The bento model store entry of a build (its ONNX file and metadata.json)."""
    import bentoml

    return Path(bentoml.models.get(model_tag).path)


class RollbackError(HeartgateError):
    """There is nothing to roll back to, or production moved meanwhile."""

"""A deploy target defined in the tests alone, to prove that a new target is one module: it
declares its config section, key policy, dependency probe and worker credentials, and nothing in
heartgate names it. The "edge device" is a directory (`deploy.edge.store`) holding a copy of the
served model's files; what it serves is what that copy says, checked by the ONNX file's sha256.

`python -m tests.heartgate.serving.targets.edge COMMAND ...` is the heartgate CLI with this
target registered (tests/flows/test_deploy.py runs `status` and `reconcile` through it).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from heartgate.adapters.dependencies import Dependency
from heartgate.core.contracts import BentoBuild, Deployment, ServingState
from heartgate.serving.served_model import METADATA_FILE, ONNX_FILE
from heartgate.serving.smoke import SmokeTestFailed
from heartgate.serving.targets.base import DeployTarget, TargetSettings, model_dir

TOKEN = "EDGE_TOKEN"  # what a worker needs to deploy to the edge (a credential heartgate has never heard of)


def edge_target() -> type[DeployTarget]:
    """Define (and so register) the target; a test drops it again from `DeployTarget.registered`."""

    class EdgeSettings(TargetSettings):
        store: Path  # the device's directory; it must exist (the target's dependency)

    class EdgeTarget(DeployTarget):
        name = "edge"
        settings_type = EdgeSettings
        settings: EdgeSettings

        @classmethod
        def worker_credentials(cls, environ: Mapping[str, str]) -> dict[str, str]:
            return {TOKEN: environ[TOKEN]} if environ.get(TOKEN) else {}

        def dependencies(self, s3_endpoint: str | None) -> list[Dependency]:
            store = self.settings.store

            def probe() -> None:
                if not store.is_dir():
                    raise FileNotFoundError(2, "no such directory", str(store))

            return [Dependency("the edge store", str(store), probe)]

        @property
        def url(self) -> str:
            return f"edge://{self.settings.store}"

        def backend_config(self) -> dict[str, str]:
            return {}  # no Terraform: the device is the state

        def apply(self, built: BentoBuild) -> Deployment:
            shutil.copytree(model_dir(built.model_tag), self.settings.store / "model", dirs_exist_ok=True)
            return self.verify(built)

        def verify(self, built: BentoBuild) -> Deployment:
            served = self.settings.store / "model"
            if hashlib.sha256((served / ONNX_FILE).read_bytes()).hexdigest() != built.onnx_sha256:
                raise SmokeTestFailed(f"the edge holds another model than {built.bento_tag}")
            deployment = self.deployment(built, self.url, {"store": str(self.settings.store)})
            self.record(deployment)
            return deployment

        def observe(self) -> ServingState:
            metadata = self.settings.store / "model" / METADATA_FILE
            answering = json.loads(metadata.read_text())["model_version"] if metadata.exists() else None
            recorded = self.current()
            return ServingState(target=self.name, deployed=recorded.registry_version if recorded else None, answering=answering, url=self.url)

        def roll_back(self, built: BentoBuild) -> Deployment:
            return self.apply(built)

        def serving_again(self, deployment: Deployment) -> str:
            return f"the edge serves {deployment.bento_tag} again"

    return EdgeTarget


if __name__ == "__main__":
    from heartgate.cli import main

    edge_target()
    sys.exit(main())

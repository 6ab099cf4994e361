"""The local target (the embedded default): the bento served on loopback by the Terraform root
`infra/terraform/envs/local`, whose `terraform_data` resource starts and stops the server.

Replacing the bento destroys the old server before the new one starts (docs/decisions.md #2), so
the undo of a failed apply or smoke test is to apply the previous deployment's variables again.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from heartgate.bento import build_bento
from heartgate.contracts import BentoBuild, Deployment
from heartgate.errors import HeartgateError
from heartgate.smoke import answering_version, check_answer, post_json, smoke_payload
from heartgate.state import StatePaths
from heartgate.targets.base import DeployFailed, DeployTarget, model_dir
from heartgate.terraform import Terraform, state_serial
from heartgate.transaction import Transaction


class LocalTarget(DeployTarget):
    name = "local"

    def backend_config(self) -> dict[str, str]:
        return {"path": str(self.work_dir / "terraform.tfstate")}

    def variables(self, bento_tag: str) -> dict[str, Any]:
        return {
            "bento_tag": bento_tag,
            "port": self.config.serve.port,
            "bentoml_bin": str(Path(sys.executable).with_name("bentoml")),  # this venv's, not one on PATH
            "bentoml_home": str(StatePaths(self.config.state_root).bentoml_home),
            "run_dir": str(self.deploy_dir),
            "environment": self.serve_environment(),
        }

    def apply(self, built: BentoBuild) -> Deployment:
        terraform = self.terraform()
        previous = self.current()
        variables = self.variables(built.bento_tag)
        with Transaction(self.log) as undo:
            undo.on_failure(f"put back what served before {built.bento_tag}", lambda _: self._put_back(terraform, previous, variables))
            try:
                terraform.apply(variables)
                url = terraform.outputs()["url"]
                status, body = post_json(f"{url}/predict", smoke_payload(model_dir(built.model_tag)))
                check_answer(url, status, body, built.registry_version)
            except HeartgateError as failure:
                raise DeployFailed(f"deploy of {built.bento_tag} failed: {failure}") from failure
        self.log(f"smoke test passed: {url} serves version {built.registry_version} and labels both known beats right")
        serial = state_serial(self.work_dir / "terraform.tfstate")
        deployment = self.deployment(built, url, variables, state_serial=serial)
        self.record(deployment)
        return deployment

    def _put_back(self, terraform: Terraform, previous: Deployment | None, variables: dict[str, Any]) -> str:
        if previous is None:
            terraform.destroy(variables)
            return "rolled back: nothing was deployed before, so nothing is serving"
        return f"rolled back: {self.restore(previous, terraform)}"

    def serving_again(self, deployment: Deployment) -> str:
        return f"{deployment.bento_tag} (version {deployment.registry_version}) is serving again"

    def roll_back(self, version: str) -> Deployment:
        return self.apply(build_bento(self.config, version))

    def health(self, deployment: Deployment) -> str:
        answering = answering_version(deployment.url)
        return f"answering as version {answering}" if answering else "NOT ANSWERING"

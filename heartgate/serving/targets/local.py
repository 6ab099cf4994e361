"""The local target (the embedded default): the bento served on loopback by the Terraform root
`infra/terraform/envs/local`, whose `terraform_data` resource starts and stops the server.

Replacing the bento destroys the old server before the new one starts (docs/decisions.md #2), so
the undo of a failed apply or smoke test is to apply the previous deployment's variables again.

Terraform cannot see a server that died (its state still says "created"), nor one an interrupted
apply started but never recorded. Every apply, restore and undeploy therefore looks first: a
server outside Terraform's state (its pidfile names a live process) is stopped, and a recorded
server that does not answer is replaced (`-replace`). What answers is always checked, never
assumed from the state or the record (docs/decisions.md #6).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from heartgate.adapters.processes import (
    command_line,
    descendants,
    environment_of,
    listeners,
    pid_in,
    stop_tree,
)
from heartgate.adapters.secrets import api_key_fingerprint
from heartgate.adapters.state import StatePaths
from heartgate.adapters.terraform import Terraform, state_serial
from heartgate.adapters.transaction import Transaction
from heartgate.core.contracts import BentoBuild, Deployment, ServingState
from heartgate.core.errors import HeartgateError
from heartgate.serving.bento import registry_version_of
from heartgate.serving.smoke import answering_version, check_answer, post_json, smoke_payload
from heartgate.serving.targets.base import DeployFailed, DeployTarget, model_dir

SERVER = "module.service.terraform_data.server"  # the one resource of the root
SERVER_MARKER = "bentoml"  # in the command line of every server this target starts
INTENT_FILE = "serves-here"  # server profile: this machine serves the local target (see `elsewhere`)


class LocalTarget(DeployTarget):
    name = "local"
    keyless_by_default = True  # it serves on loopback only; serve.api_key=required turns the key on

    @property
    def pidfile(self) -> Path:
        return self.deploy_dir / "server.pid"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.serve.port}"

    def backend_config(self) -> dict[str, str]:
        return {"path": str(self.work_dir / "terraform.tfstate")}

    def variables(self, bento_tag: str) -> dict[str, Any]:
        serve = self.config.serve
        return {
            "bento_tag": bento_tag,
            "port": serve.port,
            "bentoml_bin": str(Path(sys.executable).with_name("bentoml")),  # this venv's, not one on PATH
            "bentoml_home": str(StatePaths(self.config.state_root).bentoml_home),
            "run_dir": str(self.deploy_dir),
            "environment": self.serve_environment(),
            "python_bin": sys.executable,
            "log_max_bytes": serve.log_max_bytes,
            "log_backups": serve.log_backups,
            "api_key_sha256": self.api_key_fingerprint(),
        }

    def api_key_fingerprint(self) -> str:
        """On loopback the key is off unless serve.api_key=required; then the server reads
        HEARTGATE_API_KEY from the apply's environment (Terraform never stores it) and the
        deployment records only this fingerprint."""
        if not self.api_key_required():
            return ""
        self.require_api_key()
        return api_key_fingerprint(os.environ)

    def placeholder_variables(self) -> dict[str, Any]:
        return self.variables("heartgate:v0")

    def elsewhere(self) -> str | None:
        """The local target is this machine. The embedded profile is one machine: it serves
        production. On the server profile, every worker is a machine of its own, and only the
        ones a deploy ran on serve (marked before the deploy's first change, so a deploy killed
        half-way is still repaired here); reconcile on the others must not start servers."""
        if self.config.stack.profile == "embedded" or (self.deploy_dir / INTENT_FILE).exists():
            return None
        return "the server profile serves the local target only on machines a deploy ran on, and none ran here"

    def _recorded(self, terraform: Terraform) -> dict[str, Any]:
        """Terraform's outputs for the server it records ({} when none): where it serves now,
        which is where the config says only until a run changes serve.port."""
        return terraform.outputs() if SERVER in terraform.state_list() else {}

    def observe(self) -> ServingState:
        terraform = self.terraform()
        recorded = self._recorded(terraform)
        deployed = registry_version_of(recorded["bento_tag"]) if recorded else None
        url = recorded.get("url", self.url)
        answering = answering_version(url)
        pid, strays, foreign = self._listening(port_of(url))
        problems = []
        if recorded and pid is None:
            problems.append(f"the server of {recorded['bento_tag']} is gone (Terraform still records it)")
        if recorded and answering not in (None, deployed):
            problems.append(f"it answers as version {answering}, not the deployed {deployed}")
        if not recorded and pid is not None:
            problems.append(f"server pid {pid} runs outside Terraform's state (left by an interrupted deploy)")
        if strays:
            problems.append(f"pid {', '.join(map(str, strays))} of an earlier server still hold port {port_of(url)}")
        problems += [self._foreign(holder, port_of(url)) for holder in foreign]
        # Not a fault: a config change (serve.*) is applied by the next deploy, smoke-tested; the
        # watchdog does not retry a setting that may fail its smoke test every period.
        changed = bool(recorded) and terraform.plan_has_changes(self.variables(recorded["bento_tag"]))
        notes = ("its settings differ from the config (serve.*): the next deploy applies them",) if changed else ()
        return ServingState(target=self.name, deployed=deployed, answering=answering, url=url, problems=tuple(problems), notes=notes)

    def _listening(self, port: int | None = None) -> tuple[int | None, list[int], list[int]]:
        """The recorded server's pid (if it runs), then the other processes listening on `port`
        (the config's by default): heartgate's (the workers of a server that was killed keep the
        socket and answer), and anyone else's."""
        port = port or self.config.serve.port
        pid = pid_in(self.pidfile, SERVER_MARKER)
        tree = {pid, *descendants(pid)} if pid else set()
        home = str(StatePaths(self.config.state_root).bentoml_home)
        others = [holder for holder in listeners(port) if holder not in tree]
        ours = [holder for holder in others if SERVER_MARKER in command_line(holder) and environment_of(holder).get("BENTOML_HOME") == home]
        return pid, ours, [holder for holder in others if holder not in ours]

    def _foreign(self, pid: int, port: int | None = None) -> str:
        return f"port {port or self.config.serve.port} is held by pid {pid} ({command_line(pid)[:80] or '?'}), which heartgate did not start"

    def apply(self, built: BentoBuild) -> Deployment:
        terraform = self.terraform()
        previous = self.current()
        self.deploy_dir.mkdir(parents=True, exist_ok=True)
        (self.deploy_dir / INTENT_FILE).touch()  # this machine serves the local target from now on
        variables = self.variables(built.bento_tag)
        with Transaction(self.log) as undo:
            undo.on_failure(f"put back what served before {built.bento_tag}", lambda _: self._put_back(terraform, previous, variables))
            try:
                self._serve(terraform, variables)
                self._smoke_test(built)
            except HeartgateError as failure:
                raise DeployFailed(f"deploy of {built.bento_tag} failed: {failure}") from failure
        return self._record(built, variables)

    def verify(self, built: BentoBuild) -> Deployment:
        """Smoke-test the server Terraform records where it serves (a run that changes serve.port
        moves it only when it deploys), and record it as the deployment that passed."""
        url = self._recorded(self.terraform()).get("url", self.url)
        self._smoke_test(built, url)
        previous = self.current()
        if previous is not None and previous.bento_tag == built.bento_tag:
            variables = previous.variables
        else:  # applied, killed before its record was written: the config's settings, at its port
            variables = self.variables(built.bento_tag) | {"port": port_of(url)}
        return self._record(built, variables, url)

    def _serve(self, terraform: Terraform, variables: dict[str, Any]) -> None:
        """Apply `variables`, first stopping strays and marking a dead server for replacement;
        then check that the server Terraform started is the one that holds the port."""
        recorded = self._recorded(terraform)
        self._stop_strays(include_server=not recorded)
        dead = bool(recorded) and (pid_in(self.pidfile, SERVER_MARKER) is None or answering_version(recorded["url"]) is None)
        if dead:
            self.log(f"the recorded server does not answer at {recorded['url']}: replacing it")
        terraform.apply(variables, replace=(SERVER,) if dead else ())
        pid, strays, foreign = self._listening()
        if pid is None or strays or foreign:
            holders = ", ".join(map(str, strays + foreign)) or "nobody"
            raise DeployFailed(f"after the apply, port {self.config.serve.port} is held by {holders}, not by the server Terraform started")

    def _stop_strays(self, include_server: bool, port: int | None = None) -> None:
        """Stop heartgate's processes that hold the port outside the recorded server (and that
        server too, when Terraform's state does not record it); refuse anyone else's."""
        pid, strays, foreign = self._listening(port)
        if foreign:
            raise DeployFailed(f"{self._foreign(foreign[0], port)}: stop it, or set serve.port")
        for stray in ([pid] if include_server and pid else []) + strays:
            self.log(f"stopping pid {stray}: it serves outside Terraform's state (left by a killed server or an interrupted deploy)")
            stop_tree(stray)

    def _smoke_test(self, built: BentoBuild, url: str | None = None) -> None:
        url = url or self.url
        status, body = post_json(f"{url}/predict", smoke_payload(model_dir(built.model_tag)))
        check_answer(url, status, body, built.registry_version)
        self.log(f"smoke test passed: {url} serves version {built.registry_version} and labels both known beats right")

    def _record(self, built: BentoBuild, variables: dict[str, Any], url: str | None = None) -> Deployment:
        deployment = self.deployment(built, url or self.url, variables, state_serial=state_serial(self.work_dir / "terraform.tfstate"))
        self.record(deployment)
        return deployment

    def _put_back(self, terraform: Terraform, previous: Deployment | None, variables: dict[str, Any]) -> str:
        if previous is None:
            terraform.destroy(variables)
            self._stop_strays(include_server=True)
            return "rolled back: nothing was deployed before, so nothing is serving"
        return f"rolled back: {self.restore(previous, terraform)}"

    def restore(self, deployment: Deployment, terraform: Terraform | None = None) -> str:
        """Put an earlier deployment back, and check that it answers as its version (a record
        written before a variable existed gets today's value for it)."""
        self._serve(terraform or self.terraform(), self.variables(deployment.bento_tag) | deployment.variables)
        answering = answering_version(deployment.url)
        if answering != deployment.registry_version:
            raise DeployFailed(f"{deployment.bento_tag} was applied again but {deployment.url} answers as {answering or 'nothing'}")
        self.record(deployment)
        return self.serving_again(deployment)

    def serving_again(self, deployment: Deployment) -> str:
        return f"{deployment.bento_tag} (version {deployment.registry_version}) is serving again"

    def roll_back(self, built: BentoBuild) -> Deployment:
        return self.apply(built)

    def undeploy(self) -> Deployment | None:
        """Destroy the server Terraform records and any stray one; succeed only once nothing answers."""
        terraform = self.terraform()
        deployed = self.current()
        recorded = self._recorded(terraform)
        port = port_of(recorded.get("url", self.url))
        if recorded:
            terraform.destroy(deployed.variables if deployed else self.placeholder_variables())
        self._stop_strays(include_server=True, port=port)
        self.forget()
        (self.deploy_dir / INTENT_FILE).unlink(missing_ok=True)
        still = listeners(port)
        if still:
            raise DeployFailed(f"undeploy finished but {self._foreign(still[0], port)}")
        return deployed


def port_of(url: str) -> int:
    return int(url.rpartition(":")[2].partition("/")[0])

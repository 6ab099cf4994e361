"""A thin typed driver for the Terraform CLI (`terraform -chdir=ROOT ... -json`); see
docs/decisions.md for why not python-terraform or tftest.

Every command's output is streamed, one message per line, to the caller's logger; a failing
command raises `TerraformError` with Terraform's own error text. The CLI config (provider mirror,
no checkpoint calls), the working data dir and the state all live under heartgate's state dir, so
`terraform init` never reaches the network and nothing is written to $HOME or the repo.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heartgate.adapters.processes import command_line, environment_of, running_pids
from heartgate.core.errors import HeartgateError

Log = Callable[[str], None]


INIT_STAMP = "heartgate-init.sha256"  # in TF_DATA_DIR: the inputs of its last successful init


class TerraformError(HeartgateError):
    """A Terraform command failed; the message is Terraform's own error text."""


def cli_config(plugin_mirror: Path | None) -> str:
    """A project-local Terraform CLI config (TF_CLI_CONFIG_FILE)."""
    lines = ["disable_checkpoint = true"]
    if plugin_mirror is not None:
        lines += [
            "provider_installation {",
            f'  filesystem_mirror {{ path = "{plugin_mirror}" }}',
            "}",
        ]
    return "\n".join(lines) + "\n"


# One line per resource change as it starts (the crash tests kill on these), and the summary of an
# apply or destroy; init, plans, provisioner output (a whole bash script) and outputs stay quiet.
LOGGED_EVENTS = ("apply_start", "apply_errored", "provision_errored", "resource_drift", "diagnostic")


def worth_logging(event: Mapping[str, Any]) -> bool:
    kind = event.get("type")
    if kind == "change_summary":
        return event.get("changes", {}).get("operation") in ("apply", "destroy")
    if kind == "diagnostic":
        return event.get("@level") in ("error", "warning")
    return kind in LOGGED_EVENTS


def _diagnostic_text(event: dict[str, Any]) -> str:
    diagnostic = event.get("diagnostic", {})
    summary, detail = diagnostic.get("summary", ""), diagnostic.get("detail", "")
    text = f"{summary}: {detail}".strip(": ") if detail else summary or event.get("@message", "")
    return " ".join(text.split())  # Terraform wraps details over lines; heartgate's errors are one line


@dataclass
class Terraform:
    root: Path  # the root module (infra/terraform/envs/<target>)
    work_dir: Path  # under the state dir: CLI config, TF_DATA_DIR, var files
    binary: str = "terraform"
    plugin_mirror: Path | None = None
    log: Log = print
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        """TF_DATA_DIR: this state's `.terraform` (providers, backend, init stamp)."""
        return self.work_dir / "data"

    def _env(self) -> dict[str, str]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.work_dir / "terraformrc"
        config_file.write_text(cli_config(self.plugin_mirror))
        return {
            **os.environ,
            **self.extra_env,
            "TF_CLI_CONFIG_FILE": str(config_file),
            "TF_DATA_DIR": str(self.data_dir),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
        }

    def _run(self, *args: str, ok_codes: tuple[int, ...] = (0,)) -> int:
        """Run one command with -json output, streaming each message; raise on failure."""
        command = [self.binary, f"-chdir={self.root}", *args]
        errors: list[str] = []
        try:
            process = subprocess.Popen(command, env=self._env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        except FileNotFoundError:
            raise TerraformError(f"terraform executable not found: {self.binary}") from None
        assert process.stdout is not None
        quiet: collections.deque[str] = collections.deque(maxlen=5)  # what was not logged, for a failure's message
        for line in process.stdout:
            line = line.rstrip("\n")
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                quiet.append(line)  # init's banner, the odd plain line
                continue
            if event.get("type") == "diagnostic" and event.get("@level") == "error":
                errors.append(_diagnostic_text(event))
            message = event.get("@message")
            if message and worth_logging(event):
                self.log(f"terraform: {message}")
            elif message:
                quiet.append(message)
        code = process.wait()
        if code not in ok_codes:
            detail = "; ".join(errors) if errors else f"exit code {code}" + (f" ({quiet[-1]})" if quiet else "")
            raise TerraformError(f"terraform {args[0]} failed in {self.root.name}: {detail}")
        return code

    def _var_file(self, variables: Mapping[str, Any]) -> str:
        path = self.work_dir / "heartgate.auto.tfvars.json"
        path.write_text(json.dumps(dict(variables), indent=2, sort_keys=True))
        return f"-var-file={path}"

    def init(self, backend_config: Mapping[str, str] | None = None, backend: bool = True) -> None:
        """backend=False: providers and modules only (enough for `validate`).

        Skipped when this data dir was last initialized with exactly these inputs (`_init_inputs`):
        each init hashes the provider package again (about 1.6 s of CPU for hashicorp/aws), and
        every heartgate command that touches a target initializes it."""
        options = [f"-backend-config={key}={value}" for key, value in (backend_config or {}).items()]
        if not backend:
            options = ["-backend=false"]
        stamp, inputs = self.data_dir / INIT_STAMP, self._init_inputs(options)
        if stamp.is_file() and stamp.read_text() == inputs:
            return
        stamp.unlink(missing_ok=True)  # an init that fails half-way leaves no stamp behind
        self._run("init", "-json", "-no-color", "-input=false", "-reconfigure", *options)
        stamp.write_text(inputs)

    def _init_inputs(self, options: list[str]) -> str:
        """What `init` reads: the binary, the CLI config, its options, and every Terraform file of the
        root and of the modules beside it (a changed provider constraint, lock or module call)."""
        digest = hashlib.sha256(f"{self.binary}\0{cli_config(self.plugin_mirror)}\0{self.root}\0{options}".encode())
        for path in sorted(p for p in self.root.parent.parent.rglob("*") if p.suffix in (".tf", ".hcl") and ".terraform" not in p.parts):
            digest.update(f"\0{path}\0".encode() + path.read_bytes())
        return digest.hexdigest()

    def validate(self) -> None:
        self._run("validate", "-json", "-no-color")

    def apply(self, variables: Mapping[str, Any], replace: tuple[str, ...] = ()) -> None:
        """replace: resource addresses to destroy and create again even if Terraform sees no
        change (a server that died is still "created" in the state)."""
        replacing = [f"-replace={address}" for address in replace]
        self._run("apply", "-json", "-input=false", "-auto-approve", *replacing, self._var_file(variables))

    def state_list(self) -> list[str]:
        """The resource addresses in the state (empty when nothing is deployed)."""
        return self._capture("state", "list", empty_if="No state file was found").split()

    def force_unlock(self, lock_id: str) -> None:
        """Remove a state lock whose holder is gone (the caller must know it is)."""
        self._capture("force-unlock", "-force", lock_id)

    def plan_has_changes(self, variables: Mapping[str, Any]) -> bool:
        """`plan -detailed-exitcode`: False when the infrastructure already matches."""
        return self._run("plan", "-json", "-input=false", "-detailed-exitcode", self._var_file(variables), ok_codes=(0, 2)) == 2

    def destroy(self, variables: Mapping[str, Any]) -> None:
        self._run("destroy", "-json", "-input=false", "-auto-approve", self._var_file(variables))

    def outputs(self) -> dict[str, Any]:
        return {name: value["value"] for name, value in json.loads(self._capture("output", "-json") or "{}").items()}

    def _capture(self, *args: str, empty_if: str | None = None) -> str:
        """Run a short command that prints what it reads; its stdout ("" when it fails saying
        `empty_if`), or TerraformError."""
        result = subprocess.run([self.binary, f"-chdir={self.root}", *args], env=self._env() | {"NO_COLOR": "1"}, capture_output=True, text=True)
        if result.returncode != 0 and empty_if and empty_if in result.stderr:
            return ""
        if result.returncode != 0:
            raise TerraformError(f"terraform {args[0]} failed in {self.root.name}: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
        return result.stdout


def state_serial(state_file: Path) -> int | None:
    """The serial of a local state file: it counts the state's writes."""
    try:
        return int(json.loads(state_file.read_text())["serial"])
    except (FileNotFoundError, KeyError, ValueError):
        return None


def terraform_running(terraform: Terraform) -> bool:
    """True while a Terraform process on this machine works on this root (-chdir=ROOT) with this
    state's data dir: another state dir's apply of the same root (another stack, or a test beside
    this one) is not ours. A process whose environment cannot be read counts as ours."""
    for pid in running_pids():
        command = command_line(pid)
        if "terraform" in command and f"-chdir={terraform.root}" in command:
            environment = environment_of(pid)  # {}: not readable (another user's), so it may be ours
            if not environment or environment.get("TF_DATA_DIR") == str(terraform.data_dir):
                return True
    return False

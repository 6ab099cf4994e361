import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heartgate.adapters.processes import command_line
from heartgate.adapters.terraform import Terraform, TerraformError, _diagnostic_text, cli_config, terraform_running
from heartgate.core.config import PROJECT_ROOT

TERRAFORM_DIR = PROJECT_ROOT / "infra" / "terraform"


def test_cli_config_uses_the_mirror_and_never_calls_home():
    text = cli_config(Path("/opt/tf-plugins"))
    assert "disable_checkpoint = true" in text
    assert 'filesystem_mirror { path = "/opt/tf-plugins" }' in text
    assert "provider_installation" not in cli_config(None)


def test_diagnostics_become_one_line():
    event = {"diagnostic": {"summary": "Invalid value", "detail": "port must be a number"}}
    assert _diagnostic_text(event) == "Invalid value: port must be a number"
    assert _diagnostic_text({"diagnostic": {"summary": "Boom"}}) == "Boom"
    wrapped = {
        "diagnostic": {"summary": "local-exec provisioner error", "detail": "Error running command:\nexit status 1.\nOutput: port 3000\nalready answers\n"}
    }
    assert _diagnostic_text(wrapped) == "local-exec provisioner error: Error running command: exit status 1. Output: port 3000 already answers"


@pytest.mark.integration
def test_terraform_code_is_formatted():
    env = {**os.environ, "CHECKPOINT_DISABLE": "1"}  # or Terraform writes ~/.terraform.d/checkpoint_signature
    fmt = subprocess.run(["terraform", "fmt", "-check", "-recursive", str(TERRAFORM_DIR)], capture_output=True, text=True, env=env)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.integration
@pytest.mark.parametrize("target", ["local", "aws"])
def test_each_root_validates(tmp_path, target):
    """The aws root's provider comes from the filesystem mirror: no network."""
    terraform = Terraform(root=TERRAFORM_DIR / "envs" / target, work_dir=tmp_path, plugin_mirror=Path("/opt/tf-plugins"), log=lambda _: None)
    terraform.init(backend=False)
    terraform.validate()


@pytest.mark.integration
def test_a_failing_command_raises_with_terraforms_own_text(tmp_path):
    terraform = Terraform(root=TERRAFORM_DIR / "envs" / "local", work_dir=tmp_path, log=lambda _: None)
    terraform.init({"path": str(tmp_path / "terraform.tfstate")})
    with pytest.raises(TerraformError, match=r"terraform plan failed in local: .*port"):
        terraform.plan_has_changes({"bento_tag": "x:v1", "port": "not-a-number", "bentoml_bin": "b", "bentoml_home": "h", "run_dir": "r", "python_bin": "p"})


def test_only_resource_changes_the_summary_and_problems_are_logged():
    from heartgate.adapters.terraform import worth_logging

    logged = [
        {"type": "apply_start", "@message": "module.service.terraform_data.server: Creating..."},
        {"type": "change_summary", "@message": "Apply complete! Resources: 1 added", "changes": {"operation": "apply"}},
        {"type": "change_summary", "@message": "Destroy complete!", "changes": {"operation": "destroy"}},
        {"type": "diagnostic", "@level": "error", "@message": "Error: boom"},
        {"type": "apply_errored", "@message": "x: Creation errored"},
    ]
    quiet = [
        {"type": "version", "@message": "Terraform 1.11.4"},
        {"type": "log", "@message": "Initializing the backend..."},
        {"type": "planned_change", "@message": "x: Plan to create"},
        {"type": "change_summary", "@message": "Plan: 1 to add", "changes": {"operation": "plan"}},
        {"type": "provision_progress", "@message": 'x: (local-exec): Executing: ["/bin/bash" "-c" "set -euo ..."]'},
        {"type": "apply_complete", "@message": "x: Creation complete after 2s"},
        {"type": "outputs", "@message": "Outputs: 2"},
    ]
    assert all(worth_logging(event) for event in logged)
    assert not any(worth_logging(event) for event in quiet)


def _counting_terraform(tmp_path: Path, exit_code: int = 0) -> tuple[Terraform, Path]:
    """A Terraform whose binary only records its arguments (one line per command)."""
    calls = tmp_path / "calls"
    binary = tmp_path / "terraform"
    binary.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nmkdir -p "$TF_DATA_DIR"\nexit {exit_code}\n')
    binary.chmod(0o755)
    root = tmp_path / "infra" / "envs" / "aws"
    (tmp_path / "infra" / "modules" / "m").mkdir(parents=True)
    (tmp_path / "infra" / "modules" / "m" / "main.tf").write_text("# module\n")
    root.mkdir(parents=True)
    (root / "main.tf").write_text("# root\n")
    return Terraform(root=root, work_dir=tmp_path / "work", binary=str(binary), log=lambda _: None), calls


def inits(calls: Path) -> int:
    return sum(line.split()[1] == "init" for line in calls.read_text().splitlines()) if calls.exists() else 0


def test_init_runs_again_only_when_what_it_reads_changed(tmp_path):
    terraform, calls = _counting_terraform(tmp_path)
    terraform.init({"bucket": "a"})
    terraform.init({"bucket": "a"})
    assert inits(calls) == 1  # the same inputs: the data dir is already initialized
    terraform.init({"bucket": "b"})
    assert inits(calls) == 2  # another backend
    (terraform.root.parent.parent / "modules" / "m" / "main.tf").write_text('terraform { required_providers { aws = { version = "6.0" } } }\n')
    terraform.init({"bucket": "b"})
    assert inits(calls) == 3  # a module changed
    (terraform.root / ".terraform.lock.hcl").write_text("# lock\n")
    terraform.init({"bucket": "b"})
    terraform.init(backend=False)
    assert inits(calls) == 5


def test_a_failed_init_is_run_again(tmp_path):
    terraform, calls = _counting_terraform(tmp_path, exit_code=1)
    for _ in range(2):
        with pytest.raises(TerraformError, match="terraform init failed"):
            terraform.init({"bucket": "a"})
    assert inits(calls) == 2


def test_a_terraform_of_another_state_dir_on_the_same_root_is_not_ours(tmp_path):
    """A stale state lock is released only when no Terraform of *this* state runs here: another
    state dir applying the same root (another stack, a test beside this one) does not count."""
    ours = Terraform(root=PROJECT_ROOT / "infra/terraform/envs/aws", work_dir=tmp_path / "ours")
    theirs = Terraform(root=ours.root, work_dir=tmp_path / "theirs")
    pretend = [sys.executable, "-c", "import time; time.sleep(60)", "terraform", f"-chdir={ours.root}", "apply"]

    def running_with(data_dir: Path) -> bool:
        process = subprocess.Popen(pretend, env={**os.environ, "TF_DATA_DIR": str(data_dir)})
        deadline = time.monotonic() + 10
        while "-chdir" not in command_line(process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)  # /proc/PID/cmdline reads empty for a moment after the exec
        try:
            return terraform_running(ours)
        finally:
            process.kill()
            process.wait()

    assert not terraform_running(ours)
    assert running_with(ours.data_dir)
    assert not running_with(theirs.data_dir)

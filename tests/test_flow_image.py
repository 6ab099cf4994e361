"""The flow-runner image for Docker/Kubernetes work pools, tested up to the edge of these machines:
its build context has what it copies, and without a Docker engine `make flow-image` stops in one
line. (Building and running it needs a Docker engine: none here.)"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from heartgate.core.config import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "docker" / "Dockerfile.flow"


def test_everything_the_image_copies_is_in_the_repository():
    sources = [part for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY ") for part in line.split()[1:-1]]
    assert {"requirements.lock", "scripts/install_lock.sh", "heartgate/", "flows/", "tasks/", "service/"} <= set(sources)
    assert "scripts/install_lock.sh /opt/venv requirements.lock" in DOCKERFILE.read_text()  # the lock, installed as make venv does
    assert [source for source in sources if not (PROJECT_ROOT / source).exists()] == []


def test_the_image_has_what_the_pull_step_and_terraform_apply_need():
    text = DOCKERFILE.read_text()
    assert re.search(r"apt-get install .*\bgit\b", text)  # prefect.yaml's git_clone pull step
    assert "/opt/tf-plugins/registry.terraform.io/hashicorp/aws" in text  # deploy.plugin_mirror's default
    assert "AWS_SECRET" not in text and "AUTH_STRING" not in text  # credentials come from the work pool


def test_without_a_docker_engine_make_flow_image_stops_in_one_line():
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        pytest.skip("a Docker engine is running here")
    result = subprocess.run(["make", "--no-print-directory", "flow-image"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        "heartgate: error: no Docker engine is running here: the flow-runner image (docker/Dockerfile.flow) is built where one is"
    )

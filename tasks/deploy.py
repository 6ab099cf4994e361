"""terraform-apply: deploy the bento with Terraform, smoke-test it, and roll back on failure.

Nothing half-deployed: the exact variables of the last deployment that passed its smoke test are
kept (`<state>/deploy/<target>/deployed.json`). If the apply or the smoke test fails, Terraform
applies those again, so the previous model is serving, and the step fails with the reason.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from pydantic import BaseModel, ConfigDict

from heartgate.config import PROJECT_ROOT, HeartgateConfig
from heartgate.errors import HeartgateError
from heartgate.state import StatePaths
from heartgate.terraform import Terraform, state_serial
from service.model import ServedModel
from tasks.build_bento import BentoBuild
from tasks.pull_data import DataVersion
from tasks.split_data import SplitArrays, SplitVersion, load_split_arrays

SMOKE_TIMEOUT_S = 10
Log = Callable[[str], None]


class Deployment(BaseModel):
    """What is deployed on a target: enough to put it back exactly."""

    model_config = ConfigDict(frozen=True)

    target: str
    url: str
    bento_tag: str
    registry_version: str
    variables: dict[str, Any]
    state_serial: int | None = None
    # aws: the published function version behind the `live` alias, and the one before it
    live_version: str | None = None
    previous_live_version: str | None = None
    previous_registry_version: str | None = None


class SmokeTestFailed(HeartgateError):
    """The deployed service did not answer the smoke test correctly."""


class DeployFailed(HeartgateError):
    """The deploy failed and the previous deployment was put back."""


# --- pure helpers --------------------------------------------------------------------------------


def pick_smoke_beats(errors: np.ndarray, abnormal: np.ndarray) -> tuple[int, int]:
    """The clearest cases of the test split for this model: the normal beat with the lowest error
    and the abnormal beat with the highest. A correctly served model labels both right."""
    normal_rows, abnormal_rows = np.flatnonzero(~abnormal), np.flatnonzero(abnormal)
    return int(normal_rows[np.argmin(errors[normal_rows])]), int(abnormal_rows[np.argmax(errors[abnormal_rows])])


def smoke_problems(status: int, body: dict[str, Any], expected_version: str) -> list[str]:
    """What is wrong with the answer to [known-normal, known-abnormal]; empty when all is right."""
    if status != 200:
        return [f"/predict answered HTTP {status}: {body.get('error', body)}"]
    problems = []
    if str(body.get("model_version")) != expected_version:
        problems.append(f"served model_version {body.get('model_version')!r}, expected {expected_version!r}")
    labels = [prediction.get("anomaly") for prediction in body.get("predictions", [])]
    if labels != [False, True]:
        problems.append(f"known-normal and known-abnormal beats came back as {labels}, expected [False, True]")
    return problems


# --- I/O -----------------------------------------------------------------------------------------


def post_json(url: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=SMOKE_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, OSError) as exc:
        raise SmokeTestFailed(f"no answer from {url}: {getattr(exc, 'reason', exc)}") from None


def smoke_payload(model_dir: Path, arrays: SplitArrays) -> dict[str, Any]:
    """The /predict body of every smoke test: this model's clearest normal and abnormal test beats."""
    errors = ServedModel.load(model_dir).errors(arrays.test)
    normal, abnormal = pick_smoke_beats(errors, arrays.test_abnormal)
    return {"beats": arrays.test[[normal, abnormal]].astype(float).tolist()}


def smoke_test(url: str, model_dir: Path, arrays: SplitArrays, expected_version: str, log: Log) -> None:
    """Real HTTP: a known-normal and a known-abnormal test beat must come back labelled right,
    from the promoted version."""
    status, body = post_json(f"{url}/predict", smoke_payload(model_dir, arrays))
    problems = smoke_problems(status, body, expected_version)
    if problems:
        raise SmokeTestFailed(f"smoke test of {url} failed: {'; '.join(problems)}")
    log(f"smoke test passed: {url} serves version {expected_version} and labels both known beats right")


def _deploy_dir(config: HeartgateConfig) -> Path:
    return StatePaths(config.state_root).root / "deploy" / config.deploy.target


def backend_config(config: HeartgateConfig, work_dir: Path) -> dict[str, str]:
    if config.deploy.target == "local":
        return {"path": str(work_dir / "terraform.tfstate")}
    aws = config.deploy.aws
    backend = {"bucket": aws.state_bucket, "key": aws.state_key, "region": aws.region, "use_lockfile": "true"}
    return backend | ({"use_path_style": "true"} if aws.s3_path_style else {})


def terraform_for(config: HeartgateConfig, log: Log) -> Terraform:
    work_dir = StatePaths(config.state_root).root / "terraform" / config.deploy.target
    terraform = Terraform(
        root=PROJECT_ROOT / "infra" / "terraform" / "envs" / config.deploy.target,
        work_dir=work_dir,
        binary=config.deploy.terraform_binary,
        plugin_mirror=config.deploy.plugin_mirror,
        log=log,
    )
    terraform.init(backend_config(config, work_dir))
    return terraform


def write_deployment(config: HeartgateConfig, deployment: Deployment) -> None:
    directory = _deploy_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / ".deployed.json.partial"
    partial.write_text(deployment.model_dump_json(indent=2))
    partial.replace(directory / "deployed.json")


def serve_environment(config: HeartgateConfig) -> dict[str, str]:
    return {
        "HEARTGATE_SERVE__MAX_ROWS": str(config.serve.max_rows),
        "HEARTGATE_SERVE__MAX_BODY_BYTES": str(config.serve.max_body_bytes),
    }


def local_variables(config: HeartgateConfig, bento_tag: str) -> dict[str, Any]:
    paths = StatePaths(config.state_root)
    return {
        "bento_tag": bento_tag,
        "port": config.serve.port,
        "bentoml_bin": str(Path(sys.executable).with_name("bentoml")),  # this venv's, not one on PATH
        "bentoml_home": str(paths.root / "bentoml"),
        "run_dir": str(_deploy_dir(config)),
        "environment": serve_environment(config),
    }


def read_deployment(config: HeartgateConfig) -> Deployment | None:
    record = _deploy_dir(config) / "deployed.json"
    return Deployment.model_validate_json(record.read_text()) if record.exists() else None


def deploy_bento(
    config: HeartgateConfig, built: BentoBuild, model_dir: Path, arrays: SplitArrays, log: Log
) -> Deployment:
    """Apply, smoke-test, record. On failure put the previous deployment back, then raise."""
    terraform = terraform_for(config, log)
    previous = read_deployment(config)
    variables = local_variables(config, built.bento_tag)
    try:
        terraform.apply(variables)
        url = terraform.outputs()["url"]
        smoke_test(url, model_dir, arrays, built.registry_version, log)
    except HeartgateError as failure:
        log(f"deploy of {built.bento_tag} failed ({failure}); rolling back")
        if previous is not None:
            terraform.apply(previous.variables)
            back = f"{previous.bento_tag} (version {previous.registry_version}) is serving again"
        else:
            terraform.destroy(variables)
            back = "nothing was deployed before, so nothing is serving"
        raise DeployFailed(f"deploy of {built.bento_tag} failed: {failure}; rolled back: {back}") from failure

    deployment = Deployment(
        target=config.deploy.target,
        url=url,
        bento_tag=built.bento_tag,
        registry_version=built.registry_version,
        variables=variables,
        state_serial=state_serial(terraform.work_dir / "terraform.tfstate"),
    )
    write_deployment(config, deployment)
    return deployment


def undeploy(config: HeartgateConfig, log: Log) -> Deployment | None:
    """Destroy what Terraform deployed on the target; returns what was there."""
    deployed = read_deployment(config)
    if deployed is None:
        return None
    terraform_for(config, log).destroy(deployed.variables)
    (_deploy_dir(config) / "deployed.json").unlink()
    return deployed


def answering_version(url: str) -> str | None:
    """The model_version the service at `url` reports, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/metadata", timeout=SMOKE_TIMEOUT_S) as response:
            return str(json.loads(response.read())["model_version"])
    except (OSError, ValueError, KeyError):
        return None


def bento_model_dir(model_tag: str) -> Path:
    import bentoml

    return Path(bentoml.models.get(model_tag).path)


@task(name="terraform-apply")
def terraform_apply(config: HeartgateConfig, built: BentoBuild, data: DataVersion, split: SplitVersion) -> Deployment:
    logger = get_run_logger()
    arrays = load_split_arrays(data, split, config.split.seed)
    if config.deploy.target == "aws":
        from tasks.deploy_aws import deploy_lambda

        deployment = deploy_lambda(config, built, bento_model_dir(built.model_tag), arrays, logger.info)
    else:
        deployment = deploy_bento(config, built, bento_model_dir(built.model_tag), arrays, logger.info)
    logger.info("deployed %s to %s at %s", deployment.bento_tag, deployment.target, deployment.url)
    return deployment

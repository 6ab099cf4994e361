"""terraform-apply to AWS Lambda, blue/green.

1. Apply with the new zip package and `live_version` unchanged: Lambda publishes a new version;
   API Gateway still invokes the `live` alias, so users keep getting the old version.
2. Smoke-test the published version: its code sha256 must equal the package's, and its handler,
   run with its deployed environment on API Gateway v2 events, must label a known-normal and a
   known-abnormal beat right and report the promoted registry version.
3. Apply again with `live_version` = the new version. A failure before this leaves `live` where it
   was: nothing half-deployed. `heartgate rollback --target aws` moves it back by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from heartgate.config import HeartgateConfig
from heartgate.errors import HeartgateError
from heartgate.state import StatePaths
from tasks.build_bento import BentoBuild
from tasks.deploy import (
    Deployment,
    DeployFailed,
    Log,
    SmokeTestFailed,
    post_json,
    read_deployment,
    serve_environment,
    smoke_payload,
    smoke_problems,
    terraform_for,
    write_deployment,
)
from tasks.package_lambda import LambdaPackage, build_lambda_package, fetch_runtime_wheels
from tasks.split_data import SplitArrays

# Runs the packaged handler in a clean interpreter whose only packages are the zip's.
_INVOKE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from service.lambda_handler import handler
print(json.dumps(handler(json.loads(sys.stdin.read()))))
"""


class DockerEngineMissing(HeartgateError):
    """The container-image artifact needs a Docker engine."""


def require_docker_engine() -> None:
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        result = None
    if result is None or result.returncode != 0:
        why = (result.stderr.strip().splitlines() or ["no output"])[-1] if result else "docker is not installed"
        raise DockerEngineMissing(
            f"deploy.aws.artifact is 'image' but no Docker engine is running ({why}); "
            "the zip package (deploy.aws.artifact: zip, the default) needs no Docker"
        )
    raise HeartgateError("container-image deploys are not implemented yet; use deploy.aws.artifact: zip")


def api_gateway_event(method: str, path: str, body: str | None = None, content_type: str = "application/json") -> dict[str, Any]:
    """A minimal API Gateway v2 (payload 2.0) event, as the HTTP API sends it."""
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": content_type},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"}},
        "body": body,
        "isBase64Encoded": False,
    }


def invoke_packaged_handler(package: Path, event: dict[str, Any], environment: dict[str, str]) -> dict[str, Any]:
    """Unpack the zip and call its handler in a fresh interpreter (isolated from this venv)."""
    with tempfile.TemporaryDirectory() as unpacked:
        with zipfile.ZipFile(package) as archive:
            archive.extractall(unpacked)
        result = subprocess.run(
            [sys.executable, "-I", "-c", _INVOKE, unpacked], input=json.dumps(event),
            env={"PATH": "/usr/bin:/bin", **environment}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    if result.returncode != 0:
        raise SmokeTestFailed(f"the packaged handler crashed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(result.stdout)


def smoke_test_lambda(
    config: HeartgateConfig,
    outputs: dict[str, Any],
    package: LambdaPackage,
    model_dir: Path,
    arrays: SplitArrays,
    expected_version: str,
    log: Log,
) -> None:
    import boto3

    published = str(outputs["published_version"])
    function = boto3.client("lambda", region_name=config.deploy.aws.region).get_function(
        FunctionName=outputs["function_name"], Qualifier=published
    )["Configuration"]
    if function["CodeSha256"] != package.sha256_base64:
        raise SmokeTestFailed(f"function version {published} runs code {function['CodeSha256']}, not the package {package.sha256_base64}")
    payload = smoke_payload(model_dir, arrays)  # the package was built from this model dir
    if config.deploy.aws.smoke == "http":
        status, answer = post_json(f"{str(outputs['url']).rstrip('/')}/predict", payload)
    else:
        environment = (function.get("Environment") or {}).get("Variables") or {}
        event = api_gateway_event("POST", "/predict", json.dumps(payload))
        response = invoke_packaged_handler(package.path, event, environment)
        status, answer = response["statusCode"], json.loads(response["body"])
    problems = smoke_problems(status, answer, expected_version)
    if problems:
        raise SmokeTestFailed(f"smoke test of function version {published} failed: {'; '.join(problems)}")
    log(f"smoke test passed: function version {published} serves registry version {expected_version}")


def lambda_variables(config: HeartgateConfig, built: BentoBuild, package: LambdaPackage, live_version: str | None) -> dict[str, Any]:
    return {
        "region": config.deploy.aws.region,
        "name": config.deploy.aws.function_name,
        "package_file": str(package.path),
        "package_sha256": package.sha256_base64,
        "live_version": live_version,
        "environment": serve_environment(config),
        "function_tags": {"heartgate-registry-version": built.registry_version, "heartgate-bento": built.bento_tag.replace(":", "-")},
    }


def deploy_lambda(config: HeartgateConfig, built: BentoBuild, model_dir: Path, arrays: SplitArrays, log: Log) -> Deployment:
    if config.deploy.aws.artifact == "image":
        require_docker_engine()
    paths = StatePaths(config.state_root)
    wheels = fetch_runtime_wheels(paths.downloads / "lambda-wheels")
    package = build_lambda_package(model_dir, wheels, paths.root / "deploy" / "aws" / "packages" / f"heartgate-v{built.registry_version}.zip")
    log(f"Lambda zip package: {package.size_bytes / 2**20:.1f} MiB, {package.unzipped_bytes / 2**20:.1f} MiB unzipped (limit 250 MiB)")

    terraform = terraform_for(config, log)
    previous = read_deployment(config)
    variables = lambda_variables(config, built, package, previous.live_version if previous else None)
    try:
        terraform.apply(variables)
        outputs = terraform.outputs()
        smoke_test_lambda(config, outputs, package, model_dir, arrays, built.registry_version, log)
    except HeartgateError as failure:
        if previous is None:
            terraform.destroy(variables)
            back = "nothing was deployed before, so the stack was removed"
        else:
            back = f"`live` stays on function version {previous.live_version} (registry version {previous.registry_version})"
        raise DeployFailed(f"deploy of {built.bento_tag} to aws failed: {failure}; {back}") from failure

    published = str(outputs["published_version"])
    terraform.apply(variables | {"live_version": published})
    deployment = Deployment(
        target="aws", url=str(outputs["url"]), bento_tag=built.bento_tag, registry_version=built.registry_version,
        variables=variables | {"live_version": published}, live_version=published,
        previous_live_version=previous.live_version if previous else None,
        previous_registry_version=previous.registry_version if previous else None,
    )  # fmt: skip
    write_deployment(config, deployment)
    log(f"`live` -> function version {published} (registry version {built.registry_version})")
    return deployment


def rollback_lambda(config: HeartgateConfig, log: Log) -> Deployment:
    """Move `live` back to the function version before the current one."""
    current = read_deployment(config)
    if current is None or current.previous_live_version is None:
        raise HeartgateError("nothing to roll back to on aws: no earlier function version was live")
    variables = current.variables | {"live_version": current.previous_live_version}
    terraform_for(config, log).apply(variables)
    rolled = Deployment(
        target="aws", url=current.url, bento_tag=f"heartgate:v{current.previous_registry_version}",
        registry_version=str(current.previous_registry_version), variables=variables,
        live_version=current.previous_live_version,
    )  # fmt: skip
    write_deployment(config, rolled)
    log(f"`live` -> function version {rolled.live_version} (registry version {rolled.registry_version})")
    return rolled

"""The AWS target: Lambda behind an API Gateway v2 HTTP API (Terraform root `envs/aws`), blue/green.
Its config section is `deploy.aws` (`AwsSettings`); the zip it deploys is built by `package.py`.

1. Apply with the new zip package and `live_version` unchanged: Lambda publishes a new version;
   API Gateway still invokes the `live` alias, so users keep getting the old version.
2. Smoke-test the published version: its code sha256 must equal the package's, and its handler,
   run with its deployed environment on API Gateway v2 events, must label a known-normal and a
   known-abnormal beat right and report the promoted registry version.
3. Apply again with `live_version` = the new version. A failure before this leaves `live` where it
   was: nothing half-deployed. `heartgate rollback --target aws` moves it back by hand.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from heartgate.adapters.dependencies import Dependency, s3_dependency
from heartgate.adapters.locks import locks_are_shared
from heartgate.adapters.secrets import API_KEY, AWS, as_set, bearer_header
from heartgate.adapters.state import StatePaths
from heartgate.adapters.terraform import Terraform, terraform_running
from heartgate.adapters.transaction import Transaction
from heartgate.core.contracts import BentoBuild, Deployment, ServingState
from heartgate.core.errors import ConfigError, HeartgateError
from heartgate.serving.bento import bento_src
from heartgate.serving.served_model import BENTO_NAME
from heartgate.serving.smoke import SmokeTestFailed, check_answer, post_json, smoke_payload
from heartgate.serving.targets.aws.package import (
    HANDLER_MODULE,
    LambdaPackage,
    build_lambda_package,
    fetch_runtime_wheels,
)
from heartgate.serving.targets.base import DeployFailed, DeployTarget, RollbackError, TargetSettings, model_dir

# Runs the packaged handler in a clean interpreter whose only packages are the zip's.
_INVOKE = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
handler = importlib.import_module(sys.argv[2]).handler
print(json.dumps(handler(json.loads(sys.stdin.read()))))
"""


REGISTRY_VERSION_VARIABLE = "HEARTGATE_REGISTRY_VERSION"
API_KEY_SECRET_VARIABLE = "HEARTGATE_API_KEY_SECRET"  # the function reads its key from this secret (service/lambda_handler.py)


class AwsSettings(TargetSettings):
    """`deploy.aws`: the AWS Lambda target. Credentials come from the standard AWS chain, never from here."""

    region: str = "us-east-1"
    function_name: str = "heartgate"
    state_bucket: str = Field(default="heartgate-terraform-state", description="S3 bucket of the Terraform state (it must exist).")
    state_key: str = "heartgate/aws/terraform.tfstate"
    package_bucket: str | None = Field(
        default=None,
        description="S3 bucket for the Lambda zip packages, named by sha256 (default: state_bucket): every machine deploys from S3.",
    )
    s3_path_style: bool = Field(default=False, description="Path-style S3 URLs for the state (S3 emulators such as moto).")
    artifact: Literal["zip", "image"] = Field(default="zip", description="zip needs no Docker; image needs a Docker engine.")
    api_key_secret: str = Field(
        default="heartgate/api-key",
        description="Secrets Manager secret (name or ARN) whose value is the API key (serve.api_key): the function "
        "reads it at cold start, heartgate reads it for the smoke test; neither writes it down.",
    )
    smoke: Literal["handler", "http"] = Field(
        default="handler",
        description=(
            "handler: run the deployed package's handler (code sha256 checked against AWS) with API Gateway v2 events, "
            "for emulators that cannot run Lambda code; http: call the deployed endpoint (real AWS)."
        ),
    )


class UploadedPackage(BaseModel):
    """A zip package and where it lies in S3 (its key is its sha256: uploads are idempotent)."""

    model_config = ConfigDict(frozen=True)

    built: LambdaPackage
    bucket: str
    key: str


class LambdaDeployment(Deployment):
    live_version: str | None = None  # the published function version behind the `live` alias
    previous_live_version: str | None = None  # ... and the one before it, for rollback
    previous_registry_version: str | None = None


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
            f"deploy.aws.artifact is 'image' but no Docker engine is running ({why}); the zip package (deploy.aws.artifact: zip, the default) needs no Docker"
        )
    raise HeartgateError("container-image deploys are not implemented yet; use deploy.aws.artifact: zip")


def api_gateway_event(
    method: str, path: str, body: str | bytes | None = None, content_type: str = "application/json", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A minimal API Gateway v2 (payload 2.0) event, as the HTTP API sends it (a body that is not
    UTF-8 text arrives base64-encoded)."""
    binary = isinstance(body, bytes)
    if binary:
        try:
            body, binary = body.decode(), False
        except UnicodeDecodeError:
            body = base64.b64encode(body).decode()
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": content_type, **(headers or {})},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"}},
        "body": body,
        "isBase64Encoded": binary,
    }


def invoke_packaged_handler(package: Path, event: dict[str, Any], environment: dict[str, str]) -> dict[str, Any]:
    """Unpack the zip and call its handler in a fresh interpreter (isolated from this venv)."""
    with tempfile.TemporaryDirectory() as unpacked:
        with zipfile.ZipFile(package) as archive:
            archive.extractall(unpacked)
        result = subprocess.run(
            [sys.executable, "-I", "-c", _INVOKE, unpacked, HANDLER_MODULE],
            input=json.dumps(event),
            env={"PATH": "/usr/bin:/bin", **environment},
            capture_output=True,
            text=True,
            timeout=120,
        )
    if result.returncode != 0:
        raise SmokeTestFailed(f"the packaged handler crashed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(result.stdout)


class AwsLambdaTarget(DeployTarget):
    """What is deployed is read from shared state only (the Terraform remote state in S3, whose
    `deployment` output holds the last apply's variables, and the function version behind `live`,
    whose environment names the registry version it serves), so every machine with the same config
    gets the same answer, and none keeps a record of its own. The package is uploaded to S3 by its
    sha256, so any machine can apply, roll back or destroy without the file."""

    name = "aws"
    record_type = LambdaDeployment
    settings_type = AwsSettings
    settings: AwsSettings

    @classmethod
    def worker_credentials(cls, environ: Mapping[str, str]) -> dict[str, str]:
        return as_set(environ, *AWS)  # the worker applies Terraform and calls Lambda, S3 and Secrets Manager

    def dependencies(self, s3_endpoint: str | None) -> list[Dependency]:
        bucket = f"s3://{self.settings.state_bucket}"
        return [s3_dependency("the Terraform state bucket", bucket, self.settings.region, s3_endpoint)]

    def backend_config(self) -> dict[str, str]:
        aws = self.settings
        backend = {"bucket": aws.state_bucket, "key": aws.state_key, "region": aws.region, "use_lockfile": "true"}
        return backend | ({"use_path_style": "true"} if aws.s3_path_style else {})

    def _lambda(self) -> Any:  # noqa: ANN401 - a boto3 client
        import boto3

        return boto3.client("lambda", region_name=self.settings.region)

    def require_api_key(self) -> None:
        self._api_key_secret_arn()

    def _api_key_secret_arn(self) -> str:
        """The ARN of the secret holding the API key ("" when serve.api_key turns it off); one
        line when it does not exist. heartgate never creates it: the team owns the key."""
        if not self.api_key_required():
            return ""
        import boto3
        from botocore.exceptions import ClientError

        secret = self.settings.api_key_secret
        try:
            return boto3.client("secretsmanager", region_name=self.settings.region).describe_secret(SecretId=secret)["ARN"]
        except ClientError as error:
            raise ConfigError(
                f"serve.api_key is required on the aws target but the secret {secret!r} cannot be read "
                f"({error.response['Error'].get('Code', 'error')}): create it in Secrets Manager with the key as its value, "
                "or set deploy.aws.api_key_secret (serve.api_key=off: no key)"
            ) from None

    def _api_key(self, secret_arn: str) -> str | None:
        if not secret_arn:
            return None
        import boto3

        return boto3.client("secretsmanager", region_name=self.settings.region).get_secret_value(SecretId=secret_arn)["SecretString"]

    def variables(self, built: BentoBuild, package: UploadedPackage, live_version: str | None, previous_live_version: str | None) -> dict[str, Any]:
        secret_arn = self._api_key_secret_arn()
        key_source = {API_KEY_SECRET_VARIABLE: secret_arn} if secret_arn else {}
        return {
            "region": self.settings.region,
            "name": self.settings.function_name,
            "package_s3_bucket": package.bucket,
            "package_s3_key": package.key,
            "package_sha256": package.built.sha256_base64,
            "live_version": live_version,
            "previous_live_version": previous_live_version,
            # Published versions keep their environment: this names what each one serves.
            "environment": self.serve_environment() | {REGISTRY_VERSION_VARIABLE: built.registry_version} | key_source,
            "api_key_secret_arn": secret_arn,
            "function_tags": {"heartgate-registry-version": built.registry_version, "heartgate-bento": built.bento_tag.replace(":", "-")},
        }

    def package(self, built: BentoBuild) -> UploadedPackage:
        import boto3

        if self.settings.artifact == "image":
            require_docker_engine()
        paths = StatePaths(self.config.state_root)
        wheels = fetch_runtime_wheels(paths.downloads / "lambda-wheels")
        out = self.deploy_dir / "packages" / f"heartgate-v{built.registry_version}.zip"
        package = build_lambda_package(model_dir(built.model_tag), bento_src(built.bento_tag), wheels, out)
        self.log(f"Lambda zip package: {package.size_bytes / 2**20:.1f} MiB, {package.unzipped_bytes / 2**20:.1f} MiB unzipped (limit 250 MiB)")
        aws = self.settings
        uploaded = UploadedPackage(built=package, bucket=aws.package_bucket or aws.state_bucket, key=f"heartgate/packages/{package.sha256_hex}.zip")
        boto3.client("s3", region_name=aws.region).upload_file(str(package.path), uploaded.bucket, uploaded.key)
        self.log(f"uploaded to s3://{uploaded.bucket}/{uploaded.key}")
        return uploaded

    def apply(self, built: BentoBuild) -> Deployment:
        package = self.package(built)
        terraform = self.terraform()
        self.release_stale_lock(terraform)
        previous = self.current(terraform)
        live, before_live = (previous.live_version, previous.previous_live_version) if previous else (None, None)
        variables = self.variables(built, package, live, before_live)
        with Transaction(self.log) as undo:
            undo.on_failure("keep `live` where it was", lambda _: self._put_back(terraform, previous, variables))
            try:
                terraform.apply(variables)
                outputs = terraform.outputs()
                self.smoke_test(outputs, package.built, built)
            except HeartgateError as failure:
                raise DeployFailed(f"deploy of {built.bento_tag} to aws failed: {failure}") from failure

        published = str(outputs["published_version"])
        terraform.apply(variables | {"live_version": published, "previous_live_version": previous.live_version if previous else None})
        self.log(f"`live` -> function version {published} (registry version {built.registry_version})")
        return self.current(terraform)

    def _put_back(self, terraform: Terraform, previous: LambdaDeployment | None, variables: dict[str, Any]) -> str:
        if previous is None:  # the shared state says nothing was serving: a first deploy leaves nothing behind
            terraform.destroy(variables)
            return "nothing was deployed before, so the stack was removed"
        # `live` moves only after the smoke test passed: it still points at the previous version.
        return f"`live` stays on function version {previous.live_version} (registry version {previous.registry_version})"

    def smoke_test(self, outputs: dict[str, Any], package: LambdaPackage, built: BentoBuild) -> None:
        published = str(outputs["published_version"])
        function = self._lambda().get_function(FunctionName=outputs["function_name"], Qualifier=published)["Configuration"]
        if function["CodeSha256"] != package.sha256_base64:
            raise SmokeTestFailed(f"function version {published} runs code {function['CodeSha256']}, not the package {package.sha256_base64}")
        payload = smoke_payload(model_dir(built.model_tag))  # the package was built from this model dir
        environment = dict((function.get("Environment") or {}).get("Variables") or {})
        key = self._api_key(environment.pop(API_KEY_SECRET_VARIABLE, ""))
        headers = bearer_header(key)
        if self.settings.smoke == "http":
            status, answer = post_json(f"{str(outputs['url']).rstrip('/')}/predict", payload, headers)
        else:
            # The function reads the key from the secret at cold start; the handler run here gets it
            # in its environment (a child process's, never a file), as that read would give it.
            event = api_gateway_event("POST", "/predict", json.dumps(payload), headers=headers)
            response = invoke_packaged_handler(package.path, event, environment | ({API_KEY: key} if key else {}))
            status, answer = response["statusCode"], json.loads(response["body"])
        check_answer(f"function version {published}", status, answer, built.registry_version)
        self.log(f"smoke test passed: function version {published} serves registry version {built.registry_version}")

    def serving_again(self, deployment: Deployment) -> str:
        return f"`live` is on function version {deployment.variables['live_version']} again"

    def current(self, terraform: Terraform | None = None) -> LambdaDeployment | None:
        """What `live` serves, read now from the Terraform remote state and Lambda."""
        outputs = (terraform or self.terraform()).outputs()
        if "deployment" not in outputs:
            return None
        live, previous = str(outputs["live_version"]), outputs["deployment"]["previous_live_version"]
        serves = self._serves(live)
        return LambdaDeployment(
            target=self.name,
            url=str(outputs["url"]),
            bento_tag=f"{BENTO_NAME}:v{serves}",
            registry_version=serves,
            variables=outputs["deployment"] | {"live_version": live},
            live_version=live,
            previous_live_version=previous,
            previous_registry_version=self._serves(previous) if previous else None,
        )

    def _serves(self, function_version: str) -> str:
        """The registry version a published function version serves (from its own environment)."""
        function = self._lambda().get_function_configuration(FunctionName=self.settings.function_name, Qualifier=function_version)
        return ((function.get("Environment") or {}).get("Variables") or {}).get(REGISTRY_VERSION_VARIABLE, "unknown")

    def record(self, deployment: Deployment) -> None:
        """Nothing to write: the Terraform remote state is the record."""

    def roll_back(self, built: BentoBuild) -> Deployment:
        """Move `live` back to the function version before the current one, if it serves `built`."""
        version = built.registry_version
        terraform = self.terraform()
        self.release_stale_lock(terraform)
        current = self.current(terraform)
        if current is None or current.previous_live_version is None:
            raise RollbackError("nothing to roll back to on aws: no earlier function version was live")
        if current.previous_registry_version != version:
            raise RollbackError(f"the function version before `live` serves registry version {current.previous_registry_version}, not @previous {version}")
        terraform.apply(current.variables | {"live_version": current.previous_live_version, "previous_live_version": None})
        rolled = self.current(terraform)
        self.log(f"`live` -> function version {rolled.live_version} (registry version {rolled.registry_version})")
        try:
            return self.verify(built)  # smoke-tested, like every deploy
        except HeartgateError as failure:
            raise DeployFailed(f"rollback to registry version {version} on aws failed: {failure}") from failure

    def undeploy(self) -> Deployment | None:
        self.release_stale_lock(self.terraform())
        removed = super().undeploy()
        left = self.terraform().state_list()
        if left:
            raise DeployFailed(f"terraform destroy finished but the state still holds {', '.join(left)}")
        return removed

    def placeholder_variables(self) -> dict[str, Any]:
        aws = self.settings
        return {
            "region": aws.region,
            "name": aws.function_name,
            "package_s3_bucket": aws.package_bucket or aws.state_bucket,
            "package_s3_key": "none",
            "package_sha256": "",
            "live_version": None,
            "previous_live_version": None,
            "environment": {},
            "api_key_secret_arn": "",
            "function_tags": {},
        }

    def observe(self) -> ServingState:
        """The function version the Terraform state puts behind `live` (`deployed`) against the
        one `live` really points at (`answering`: each names the registry version it serves in its
        own environment), the state's lock, and a state an interrupted apply left half-written."""
        terraform = self.terraform()
        lock = self.state_lock()
        problems = [f"the Terraform state is locked by {lock['Who']} since {lock['Created']} ({lock['Operation']})"] if lock else []
        outputs = terraform.outputs()
        if "deployment" not in outputs:
            resources = terraform.state_list()
            if resources:
                problems.append(f"the Terraform state holds {len(resources)} resources but no finished apply (one was interrupted)")
            return ServingState(target=self.name, problems=tuple(problems))
        recorded = str(outputs["live_version"])
        alias = self._lambda().get_alias(FunctionName=outputs["function_name"], Name="live")["FunctionVersion"]
        if alias != recorded:
            problems.append(f"`live` is on function version {alias}, the Terraform state says {recorded} (an apply was interrupted)")
        function = self._lambda().get_function_configuration(FunctionName=outputs["function_name"], Qualifier=alias)
        if function.get("State", "Active") != "Active":
            problems.append(f"function version {alias} behind `live` is {function.get('State')}")
        url = str(outputs["url"])
        return ServingState(target=self.name, deployed=self._serves(recorded), answering=self._serves(alias), url=url, problems=tuple(problems))

    def verify(self, built: BentoBuild) -> Deployment:
        """Smoke-test the function version behind `live` with the package it should run."""
        package = self.package(built)
        terraform = self.terraform()
        outputs = terraform.outputs()
        self.smoke_test(outputs | {"published_version": outputs["live_version"]}, package.built, built)
        return self.current(terraform)

    def state_lock(self) -> dict[str, Any] | None:
        """The Terraform state's lock file in S3 (use_lockfile), if one is held."""
        import boto3
        from botocore.exceptions import ClientError

        aws = self.settings
        try:
            body = boto3.client("s3", region_name=aws.region).get_object(Bucket=aws.state_bucket, Key=f"{aws.state_key}.tflock")["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return json.loads(body)

    def release_stale_lock(self, terraform: Terraform) -> None:
        """A state lock left by a Terraform that was killed blocks every later apply. The caller
        holds heartgate's deploy lock, so no heartgate process can be applying: the lock is stale
        if that deploy lock is shared by every machine (a Prefect server), or if its holder ran
        on this machine and no Terraform for this root runs here now. Anything else is refused in
        one line (someone may be running Terraform by hand)."""
        lock = self.state_lock()
        if lock is None:
            return
        holder_host = str(lock.get("Who", "")).rpartition("@")[2]
        here = holder_host == socket.gethostname() and not terraform_running(terraform)
        if not (locks_are_shared() or here):
            raise DeployFailed(
                f"the Terraform state is locked by {lock['Who']} since {lock['Created']} ({lock['Operation']}), "
                f"which heartgate cannot check from here; if no Terraform runs there, `terraform force-unlock {lock['ID']}`"
            )
        terraform.force_unlock(lock["ID"])
        self.log(f"released a stale Terraform state lock ({lock['Operation']} by {lock['Who']} since {lock['Created']}: its process is gone)")

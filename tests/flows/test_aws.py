"""train-and-deploy --target aws against emulated AWS (moto, server mode, 127.0.0.1 only): real
Terraform with the hashicorp/aws provider and an S3 backend with lockfile locking. moto cannot run
Lambda code, so the handler of the deployed zip runs in-process on API Gateway v2 events."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from heartgate.adapters.registry import PRODUCTION_ALIAS
from heartgate.adapters.state import StatePaths
from heartgate.adapters.terraform import Terraform, TerraformError
from heartgate.core.config import PROJECT_ROOT, load_config
from heartgate.serving.proof import PUBLIC_KEY_VARIABLE
from heartgate.serving.served_model import SMOKE_KEY
from heartgate.serving.targets import target_for
from heartgate.serving.targets.aws.target import api_gateway_event
from tests.conftest import api_key_secret, clean_environment
from tests.service.cases import BAD_REQUESTS, BEAT, MAX_BODY, MAX_ROWS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SENTINEL = "hgsentinel" + secrets.token_hex(12)
API_KEY = f"apikey-{SENTINEL}"  # it must never land anywhere either
AWS_FLAGS = ("--target", "aws", "--set", "deploy.aws.s3_path_style=true")


@pytest.fixture(scope="module")
def cloud(moto_server, tmp_path_factory):
    import boto3

    env = clean_environment("AWS_")
    env |= {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "AKIATESTSENTINELUSER",
        "AWS_SECRET_ACCESS_KEY": SENTINEL,
        "AWS_DEFAULT_REGION": "us-east-1",
        "HEARTGATE_RELEASE_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),  # machine A and B promote with one key
    }
    clients = {
        name: boto3.client(name, endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
        for name in ("s3", "lambda", "apigatewayv2", "iam", "logs")
    }
    clients["s3"].create_bucket(Bucket="heartgate-terraform-state")
    secret_arn = api_key_secret(moto_server, API_KEY)  # serve.api_key=auto: the AWS target requires one
    state = tmp_path_factory.mktemp("aws") / "state"
    outputs: list[str] = []

    def heartgate(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "heartgate.cli", *args, "--state-dir", str(state), *AWS_FLAGS],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        outputs.append(result.stdout + result.stderr)
        return result

    first = heartgate("run", "--auto-approve", "--set", "train.epochs=5")
    assert first.returncode == 0, first.stderr[-3000:]
    config = load_config(overrides={"state_dir": str(state), "deploy": {"target": "aws", "aws": {"s3_path_style": True}}})
    with pytest.MonkeyPatch.context() as patch:  # this process reads the shared state too (target.current())
        for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            patch.setenv(key, env[key])
        yield {
            "state": state,
            "env": env,
            "aws": clients,
            "heartgate": heartgate,
            "first": first,
            "config": config,
            "outputs": outputs,
            "secret_arn": secret_arn,
        }


def live(cloud) -> str:
    return cloud["aws"]["lambda"].get_alias(FunctionName="heartgate", Name="live")["FunctionVersion"]


def aliases(cloud) -> dict[str, str]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=StatePaths(cloud["state"]).mlflow_tracking_uri)
    return {k: str(v) for k, v in client.get_registered_model("heartgate-ecg-autoencoder").aliases.items()}


def live_package(cloud) -> Path:
    """The zip `live` runs, fetched from S3 by the key in the Terraform state (no machine keeps it)."""
    variables = target_for(cloud["config"]).current().variables
    path = cloud["state"].parent / "live-package" / variables["package_s3_key"]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        cloud["aws"]["s3"].download_file(variables["package_s3_bucket"], variables["package_s3_key"], str(path))
    return path


def test_the_stack_is_deployed_as_declared(cloud):
    deployed = target_for(cloud["config"]).current()
    package = live_package(cloud)
    assert deployed.variables["package_s3_key"] == f"heartgate/packages/{hashlib.sha256(package.read_bytes()).hexdigest()}.zip"
    assert (deployed.registry_version, deployed.bento_tag) == ("1", "heartgate:v1")
    assert deployed.live_version == live(cloud) == "1"
    function = cloud["aws"]["lambda"].get_function(FunctionName="heartgate", Qualifier="1")["Configuration"]
    assert function["CodeSha256"] == base64.b64encode(hashlib.sha256(package.read_bytes()).digest()).decode()
    assert function["Runtime"] == "python3.11" and function["Handler"] == "service.lambda_handler.handler"
    api = cloud["aws"]["apigatewayv2"]
    (http_api,) = api.get_apis()["Items"]
    routes = {r["RouteKey"] for r in api.get_routes(ApiId=http_api["ApiId"])["Items"]}
    assert routes == {"POST /predict", "GET /metadata", "GET /livez", "GET /readyz"}
    (integration,) = api.get_integrations(ApiId=http_api["ApiId"])["Items"]
    assert (integration["IntegrationType"], integration["PayloadFormatVersion"]) == ("AWS_PROXY", "2.0")
    assert ":function:heartgate:live/" in integration["IntegrationUri"]
    assert [s["StageName"] for s in api.get_stages(ApiId=http_api["ApiId"])["Items"]] == ["$default"]
    attached = cloud["aws"]["iam"].list_attached_role_policies(RoleName="heartgate-lambda")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AWSLambdaBasicExecutionRole"]
    (group,) = cloud["aws"]["logs"].describe_log_groups(logGroupNamePrefix="/aws/lambda/heartgate")["logGroups"]
    assert group["retentionInDays"] == 30


def test_a_second_plan_is_empty(cloud):
    deployed = target_for(cloud["config"]).current()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in cloud["env"].items():
            patch.setenv(key, value)
        assert target_for(cloud["config"], log=lambda _: None).terraform().plan_has_changes(deployed.variables) is False


def test_the_package_is_small_and_self_contained(cloud):
    package = live_package(cloud)
    with zipfile.ZipFile(package) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
        names = set(archive.namelist())
    print(f"Lambda zip: {package.stat().st_size / 2**20:.1f} MiB, {unzipped / 2**20:.1f} MiB unzipped")
    assert unzipped < 80 * 2**20  # 127 MiB before what the handler never loads was left out
    assert {"service/lambda_handler.py", "service/schema.py", "model/scorer.onnx", "model/metadata.json"} <= names
    assert not [n for n in names if n.startswith(("tensorflow/", "bentoml/", "keras/", "pydantic/"))]


def test_the_package_scores_the_whole_test_split_as_onnx_runtime_does(cloud):
    """What is left in the package is enough: every beat of the test split, through the packaged
    handler in a fresh interpreter, gets the error ONNX Runtime gives here (within 1e-6)."""
    from heartgate.ml.splits import arrays_for_lineage
    from heartgate.serving.scorer import OnnxScorer

    deployed = target_for(cloud["config"]).current()
    model_dir = StatePaths(cloud["state"]).root / "bentoml" / "models" / "heartgate-ecg" / f"v{deployed.registry_version}"
    lineage = json.loads((model_dir / "metadata.json").read_text())["lineage"]
    test = arrays_for_lineage(cloud["config"], lineage["data_md5"], lineage["split_md5"]).test
    events = [api_gateway_event("POST", "/predict", json.dumps({"beats": test[i : i + MAX_ROWS].tolist()})) for i in range(0, len(test), MAX_ROWS)]
    answers = run_handler(cloud, events)
    assert {status for status, _ in answers} == {200}
    served = np.array([p["error"] for _, body in answers for p in body["predictions"]])
    np.testing.assert_allclose(served, OnnxScorer(model_dir / "scorer.onnx").errors(test), rtol=0, atol=1e-6)


_RUN_EVENTS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from service.lambda_handler import handler
print(json.dumps([handler(event) for event in json.loads(sys.stdin.read())]))
"""


def function_environment(cloud) -> dict[str, str]:
    return cloud["aws"]["lambda"].get_function_configuration(FunctionName="heartgate", Qualifier=live(cloud))["Environment"]["Variables"]


def unpacked_live_package(cloud) -> Path:
    unpacked = cloud["state"].parent / "unpacked"
    if not unpacked.exists():
        with zipfile.ZipFile(live_package(cloud)) as archive:
            archive.extractall(unpacked)
    return unpacked


def cold_start(cloud, unpacked: Path, events: list[dict]) -> subprocess.CompletedProcess:
    """A fresh container: the package's handler in a fresh interpreter, with the function's release key."""
    limits = {"HEARTGATE_SERVE__MAX_ROWS": str(MAX_ROWS), "HEARTGATE_SERVE__MAX_BODY_BYTES": str(MAX_BODY)}
    release_key = {PUBLIC_KEY_VARIABLE: function_environment(cloud)[PUBLIC_KEY_VARIABLE]}
    return subprocess.run(
        [sys.executable, "-I", "-c", _RUN_EVENTS, str(unpacked)],
        input=json.dumps(events),
        env={"PATH": "/usr/bin:/bin", **limits, **release_key},
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_handler(cloud, events: list[dict]) -> list[dict]:
    result = cold_start(cloud, unpacked_live_package(cloud), events)
    assert result.returncode == 0, result.stderr[-2000:]
    return [(r["statusCode"], json.loads(r["body"])) for r in json.loads(result.stdout)]


def test_a_package_whose_model_or_code_was_swapped_does_not_serve_at_cold_start(cloud, tmp_path):
    """The package checks its own release record when a container starts: a swapped ONNX file or
    handler module answers no request."""
    events = [api_gateway_event("POST", "/predict", json.dumps({"beats": [BEAT]}))]
    for swapped, message in (("model/scorer.onnx", "ONNX model is not the one"), ("service/schema.py", "serving code is not the one")):
        copy = tmp_path / swapped.replace("/", "-")
        shutil.copytree(unpacked_live_package(cloud), copy)
        with (copy / swapped).open("ab") as appended:
            appended.write(b"\n")
        refused = cold_start(cloud, copy, events)
        assert refused.returncode != 0 and f"ReleaseNotVerified: version 1's {message}" in refused.stderr, refused.stderr[-2000:]


def test_the_deployed_handler_serves_the_same_api(cloud):
    (predict, metadata, ready, missing) = run_handler(
        cloud,
        [
            api_gateway_event("POST", "/predict", json.dumps({"beats": [BEAT, BEAT]})),
            api_gateway_event("GET", "/metadata"),
            api_gateway_event("GET", "/readyz"),
            api_gateway_event("GET", "/nope"),
        ],
    )
    assert predict[0] == 200 and predict[1]["model_version"] == "1" and len(predict[1]["predictions"]) == 2
    packaged = json.loads((StatePaths(cloud["state"]).root / "bentoml" / "models" / "heartgate-ecg" / "v1" / "metadata.json").read_text())
    assert len(packaged.pop(SMOKE_KEY)["beats"]) == 2  # shipped for the smoke test, not served
    assert metadata == (200, packaged)
    assert ready[0] == 200 and missing == (404, {"error": "no route GET /nope"})


def test_every_bad_input_gets_the_same_4xx_as_the_bento_service(cloud):
    events = []
    for payload, content_type, _, _ in BAD_REQUESTS:
        body = payload if isinstance(payload, bytes) else json.dumps(payload)
        events.append(api_gateway_event("POST", "/predict", body, content_type))
    for (status, body), (_, _, expected_status, message) in zip(run_handler(cloud, events), BAD_REQUESTS, strict=True):
        assert status == expected_status and message in body["error"], (status, body, message)


def test_the_function_reads_its_key_from_the_secret_and_requires_it(cloud, monkeypatch):
    """The function's environment names the secret, not the key; its role may read that secret;
    the handler (here in this process, against moto) reads it once and answers 401 without it."""
    import service.lambda_handler as lambda_handler

    function = cloud["aws"]["lambda"].get_function_configuration(FunctionName="heartgate", Qualifier=live(cloud))
    assert function["Environment"]["Variables"]["HEARTGATE_API_KEY_SECRET"] == cloud["secret_arn"]
    assert API_KEY not in json.dumps(function)
    policies = cloud["aws"]["iam"].list_role_policies(RoleName="heartgate-lambda")["PolicyNames"]
    document = cloud["aws"]["iam"].get_role_policy(RoleName="heartgate-lambda", PolicyName=policies[0])["PolicyDocument"]
    assert json.dumps(document).count("secretsmanager:GetSecretValue") == 1 and cloud["secret_arn"] in json.dumps(document)

    model_dir = StatePaths(cloud["state"]).root / "bentoml" / "models" / "heartgate-ecg" / f"v{target_for(cloud['config']).current().registry_version}"
    monkeypatch.setenv("HEARTGATE_MODEL_DIR", str(model_dir))
    monkeypatch.setenv(PUBLIC_KEY_VARIABLE, function["Environment"]["Variables"][PUBLIC_KEY_VARIABLE])
    monkeypatch.setenv("HEARTGATE_API_KEY_SECRET", cloud["secret_arn"])
    monkeypatch.setattr(lambda_handler, "_loaded", {})  # a fresh container
    body = json.dumps({"beats": [BEAT]})
    refused = lambda_handler.handler(api_gateway_event("POST", "/predict", body))
    assert (refused["statusCode"], json.loads(refused["body"])["error"]) == (401, "missing or wrong API key: send the header Authorization: Bearer <key>")
    assert lambda_handler.handler(api_gateway_event("GET", "/metadata"))["statusCode"] == 401
    assert lambda_handler.handler(api_gateway_event("GET", "/readyz"))["statusCode"] == 200
    answered = lambda_handler.handler(api_gateway_event("POST", "/predict", body, headers={"authorization": f"Bearer {API_KEY}"}))
    assert answered["statusCode"] == 200 and len(json.loads(answered["body"])["predictions"]) == 1


def test_a_run_without_the_key_secret_stops_before_training(cloud):
    import mlflow

    registry = mlflow.MlflowClient(tracking_uri=StatePaths(cloud["state"]).mlflow_tracking_uri)
    before = (live(cloud), len(registry.search_model_versions("name = 'heartgate-ecg-autoencoder'")))
    stopped = cloud["heartgate"]("run", "--auto-approve", "--set", "deploy.aws.api_key_secret=team/missing-key")
    assert stopped.returncode == 1
    assert stopped.stderr.strip().splitlines()[-1] == (
        "heartgate: error: serve.api_key is required on the aws target but the secret 'team/missing-key' cannot be read "
        "(ResourceNotFoundException): create it in Secrets Manager with the key as its value, or set deploy.aws.api_key_secret "
        "(serve.api_key=off: no key)"
    )
    assert (live(cloud), len(registry.search_model_versions("name = 'heartgate-ecg-autoencoder'"))) == before  # nothing trained


def test_a_better_candidate_publishes_version_2_and_moves_live(cloud):
    result = cloud["heartgate"]("run", "--auto-approve", "--set", "train.epochs=20")
    assert result.returncode == 0, result.stderr[-3000:]
    assert live(cloud) == "2"
    assert target_for(cloud["config"]).current().previous_live_version == "1"
    assert aliases(cloud)[PRODUCTION_ALIAS] == "2"


def test_a_failed_smoke_test_leaves_live_on_the_old_version(cloud):
    # The 100-epoch candidate passes the gate; its function rejects the 2-beat smoke request.
    result = cloud["heartgate"]("run", "--auto-approve", "--set", "serve.max_rows=1")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "deploy of heartgate:v3 to aws failed: smoke test of function version 3 failed: /predict answered HTTP 413" in last
    assert last.endswith("`live` stays on function version 2 (registry version 2)")
    assert live(cloud) == "2"
    assert aliases(cloud)[PRODUCTION_ALIAS] == "2"


def test_rollback_moves_live_back(cloud):
    result = cloud["heartgate"]("rollback")
    assert result.returncode == 0, result.stderr[-3000:]
    assert live(cloud) == "1"
    assert aliases(cloud)[PRODUCTION_ALIAS] == "1"


def test_status_reads_the_live_alias_from_aws(cloud):
    result = cloud["heartgate"]("status")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("aws: desired version 1 (@production); actual version 1 deployed at https://")
    assert "answering as version 1\n" in result.stdout and "@production: version 1" in result.stdout


def stack_resources(cloud) -> tuple:
    """What a destroy would remove: the function, the HTTP API, the role, the log group."""
    aws = cloud["aws"]
    return (
        aws["lambda"].get_function(FunctionName="heartgate")["Configuration"]["FunctionName"],
        [api["Name"] for api in aws["apigatewayv2"].get_apis()["Items"]],
        aws["iam"].get_role(RoleName="heartgate-lambda")["Role"]["RoleName"],
        [group["logGroupName"] for group in aws["logs"].describe_log_groups(logGroupNamePrefix="/aws/lambda/heartgate")["logGroups"]],
    )


@pytest.fixture(scope="module")
def machine_b(cloud, reference_csv_gz):
    """`heartgate` on machine B: a state dir of its own (no file of A's), the same registry and the
    same Terraform state in S3, the same beats."""
    state = cloud["state"].parent / "machine-b"
    shared = ("--tracking-uri", StatePaths(cloud["state"]).mlflow_tracking_uri, "--state-dir", str(state), *AWS_FLAGS)
    data = ("--set", f"data.source={reference_csv_gz}", "--set", "data.sha256=null")

    def heartgate_b(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "heartgate.cli", *args, *shared, *(data if args[0] == "run" else ())]
        result = subprocess.run(command, env=cloud["env"], capture_output=True, text=True, timeout=900)
        cloud["outputs"].append(result.stdout + result.stderr)
        return result

    heartgate_b.state = state
    return heartgate_b


def test_a_failing_deploy_from_another_machine_leaves_the_stack_serving(cloud, machine_b):
    """B's candidate passes the gate but its deploy fails the smoke test: `live` stays on A's
    version, every resource stays, and B's status names A's version."""
    serving = stack_resources(cloud)
    failed = machine_b("run", "--auto-approve", "--set", "train.epochs=20", "--set", "serve.max_rows=1")
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "answered HTTP 413" in failed.stderr and "`live` stays on function version 1 (registry version 1)" in failed.stderr
    assert live(cloud) == "1" and stack_resources(cloud) == serving
    assert aliases(cloud)[PRODUCTION_ALIAS] == "1"
    status = machine_b("status")
    assert status.returncode == 0, status.stderr[-3000:]
    assert status.stdout.startswith("aws: desired version 1 (@production); actual version 1 deployed at https://")
    assert not (machine_b.state / "deploy" / "aws" / "deployed.json").exists()


def test_the_state_lock_blocks_a_concurrent_apply(cloud, tmp_path):
    variables = target_for(cloud["config"]).current().variables
    errors: list[Exception] = []

    def apply(work_dir: Path) -> None:
        terraform = Terraform(
            root=PROJECT_ROOT / "infra" / "terraform" / "envs" / "aws",
            work_dir=work_dir,
            plugin_mirror=Path("/opt/tf-plugins"),
            log=lambda _: None,
            extra_env=cloud["env"],
        )
        try:
            terraform.init(target_for(cloud["config"]).backend_config())
            terraform.apply(variables)
        except TerraformError as exc:
            errors.append(exc)

    first = threading.Thread(target=apply, args=(tmp_path / "a",))
    first.start()
    threading.Event().wait(1.0)
    apply(tmp_path / "b")
    first.join()
    assert len(errors) == 1, errors
    assert "Error acquiring the state lock" in str(errors[0])
    assert live(cloud) == "1"


def test_a_package_swapped_in_s3_and_put_behind_live_outside_heartgate_is_replaced(cloud, tmp_path):
    """Attack: the live package in S3 is replaced by one with another model, published as a new
    function version and put behind `live` with the AWS API. status says so; reconcile uploads
    the verified package again, publishes it and puts it behind `live`."""
    aws = cloud["aws"]
    verified = aws["lambda"].get_function_configuration(FunctionName="heartgate", Qualifier=live(cloud))["CodeSha256"]
    bucket = target_for(cloud["config"]).current().variables["package_s3_bucket"]
    key = f"heartgate/packages/{base64.b64decode(verified).hex()}.zip"  # packages are stored by their sha256: the one `live` runs
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(live_package(cloud)) as original, zipfile.ZipFile(tampered, "w") as out:
        for item in original.infolist():
            data = original.read(item)
            out.writestr(item, data + b"\n" if item.filename == "model/scorer.onnx" else data)
    aws["s3"].upload_file(str(tampered), bucket, key)
    aws["lambda"].update_function_code(FunctionName="heartgate", S3Bucket=bucket, S3Key=key)
    forged = aws["lambda"].publish_version(FunctionName="heartgate")["Version"]
    aws["lambda"].update_alias(FunctionName="heartgate", Name="live", FunctionVersion=forged)

    status = cloud["heartgate"]("status")
    assert status.returncode == 1 and "aws is out of sync" in status.stderr, status.stdout + status.stderr[-2000:]
    reconciled = cloud["heartgate"]("reconcile")
    assert reconciled.returncode == 0, reconciled.stderr[-3000:]
    assert live(cloud) != forged
    assert aws["lambda"].get_function_configuration(FunctionName="heartgate", Qualifier=live(cloud))["CodeSha256"] == verified
    assert hashlib.sha256(aws["s3"].get_object(Bucket=bucket, Key=key)["Body"].read()).digest() == base64.b64decode(verified)
    assert cloud["heartgate"]("status").returncode == 0


def test_the_image_artifact_stops_at_the_missing_docker_engine():
    from heartgate.serving.targets.aws.target import DockerEngineMissing, require_docker_engine

    if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        pytest.skip("a Docker engine is running here")
    with pytest.raises(DockerEngineMissing) as raised:
        require_docker_engine()
    assert "no Docker engine is running" in str(raised.value)
    assert "the zip package (deploy.aws.artifact: zip, the default) needs no Docker" in str(raised.value)
    assert (PROJECT_ROOT / "docker" / "Dockerfile.lambda").is_file()


def test_undeploy_from_another_machine_removes_what_the_first_deployed(cloud, machine_b):
    removed = machine_b("undeploy")
    assert removed.returncode == 0, removed.stderr[-3000:]
    assert removed.stdout.startswith("stopped serving version 1 at https://")
    assert cloud["aws"]["lambda"].list_functions()["Functions"] == [] and cloud["aws"]["apigatewayv2"].get_apis()["Items"] == []
    for machine in (machine_b, cloud["heartgate"]):  # the same answer from both machines
        status = machine("status")
        assert status.returncode == 0, status.stdout + status.stderr  # desired nothing, nothing deployed: in sync
        assert status.stdout.startswith("aws: desired nothing (undeployed at "), status.stdout
        assert "by heartgate undeploy); actual nothing deployed\n" in status.stdout


def test_the_secret_never_lands_anywhere(cloud):
    """Everything the runs wrote or printed: the state dir (MLflow, Prefect, DVC, Terraform var
    files and data dir, packages), the CLI output, and the Terraform state in S3."""
    leaks = [str(path) for path in cloud["state"].rglob("*") if path.is_file() and SENTINEL.encode() in path.read_bytes()]
    leaks += [f"output of run {i}" for i, text in enumerate(cloud["outputs"]) if SENTINEL in text]
    s3 = cloud["aws"]["s3"]
    for item in s3.list_objects_v2(Bucket="heartgate-terraform-state").get("Contents", []):
        if SENTINEL.encode() in s3.get_object(Bucket="heartgate-terraform-state", Key=item["Key"])["Body"].read():
            leaks.append(f"s3://heartgate-terraform-state/{item['Key']}")
    assert len(cloud["outputs"]) >= 4
    assert leaks == []

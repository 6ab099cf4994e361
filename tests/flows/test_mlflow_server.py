"""heartgate against an MLflow tracking server on PostgreSQL with its artifacts in S3 (moto), all
on loopback: the team's registry. The run's client holds no AWS credentials (artifacts are
proxied by the server); versions are rows in PostgreSQL, artifacts are keys in the bucket, no
SQLite store appears, and a second machine (another state dir) reads and rebuilds from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from heartgate.adapters.postgres import PostgresCluster
from heartgate.adapters.signing import public_key_text, release_key
from heartgate.adapters.state import MLFLOW_SERVER_ENVIRONMENT, StatePaths
from tests.conftest import clean_environment, free_port, wait_until_answering

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "heartgate-mlflow"
MODEL = "heartgate-ecg-autoencoder"


@pytest.fixture(scope="module")
def postgres():
    # Not under pytest's tmp dir: its root is closed to other users, and the cluster runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="heartgate-pg-"))
    root.chmod(0o755)
    cluster = PostgresCluster(host="127.0.0.1", port=free_port(), data_dir=root / "cluster")
    cluster.start()
    cluster.create_database("mlflow")
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres, moto_server, tmp_path_factory):
    import boto3

    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=moto_server, **{k.lower(): v for k, v in keys.items() if k != "AWS_DEFAULT_REGION"}, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    port = free_port()
    home = tmp_path_factory.mktemp("mlflow-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))} | keys
    env |= MLFLOW_SERVER_ENVIRONMENT | {"MLFLOW_S3_ENDPOINT_URL": moto_server, "MLFLOW_DISABLE_TELEMETRY": "true", "TMPDIR": str(home)}
    store = ["--backend-store-uri", postgres.url("mlflow"), "--artifacts-destination", f"s3://{BUCKET}/artifacts"]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", *store, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=home,
        stdout=(home / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_answering(f"{url}/health", server, "MLflow server", timeout=180)
    yield {"url": url, "s3": s3}
    os.killpg(server.pid, 15)
    server.wait(timeout=30)


def heartgate(*args: str, state: Path, tracking_uri: str) -> subprocess.CompletedProcess:
    # No AWS credentials and no MLflow settings: the client reaches artifacts only through the server.
    env = clean_environment("AWS_")
    return subprocess.run(
        [sys.executable, "-m", "heartgate.cli", *args, "--state-dir", str(state), "--tracking-uri", tracking_uri],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def run(mlflow_server, tmp_path_factory, undeploy_at_teardown, reference_csv_gz):
    state = tmp_path_factory.mktemp("team") / "machine-a"
    undeploy_at_teardown(state)
    result = heartgate(
        "run",
        "--auto-approve",
        "--set",
        "train.epochs=2",
        "--set",
        f"serve.port={free_port()}",
        "--set",
        f"data.source={reference_csv_gz}",
        "--set",
        "data.sha256=null",
        state=state,
        tracking_uri=mlflow_server["url"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return state


def test_versions_and_aliases_are_rows_in_postgresql(run, postgres):
    import psycopg

    with psycopg.connect(postgres.url("mlflow")) as connection:
        versions = connection.execute("SELECT version FROM model_versions WHERE name = %s", (MODEL,)).fetchall()
        aliases = dict(connection.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (MODEL,)).fetchall())
    assert versions == [(1,)]
    assert aliases == {"candidate": 1, "production": 1}


def test_artifacts_are_keys_in_the_bucket_and_no_sqlite_store_exists(run, mlflow_server):
    keys = [item["Key"] for item in mlflow_server["s3"].list_objects_v2(Bucket=BUCKET)["Contents"]]
    for suffix in ("/onnx/scorer.onnx", "/plots/error_histogram.png", "/plots/roc_pr_curves.png", "/smoke/beats.json", "/MLmodel"):
        assert any(key.endswith(suffix) for key in keys), suffix
    assert list(run.rglob("mlflow.db")) == []


def test_another_machine_reads_the_lineage_and_rebuilds_the_bento_from_the_server(run, mlflow_server, tmp_path):
    other = tmp_path / "machine-b"
    trusted = public_key_text(release_key({}, StatePaths(run).release_key))  # machine B holds only the public half
    lineage = heartgate("lineage", "production", state=other, tracking_uri=mlflow_server["url"])
    assert lineage.returncode == 0, lineage.stderr[-2000:]
    assert '"production"' in lineage.stdout and '"data_md5"' in lineage.stdout
    rebuilt = heartgate("build-bento", "1", "--set", f"release.public_key={trusted}", state=other, tracking_uri=mlflow_server["url"])
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert rebuilt.stdout.startswith("bento heartgate:v1 (model heartgate-ecg:v1, onnx sha256 ")
    assert (other / "cache" / "run-artifacts").is_dir() and list(other.rglob("mlflow.db")) == []

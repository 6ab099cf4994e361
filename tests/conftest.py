"""Shared fixtures. Unit tests use synthetic beats; only integration tests touch ECG5000."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from heartgate.adapters.state import StatePaths, activate
from heartgate.core.ecg import HEADER

REFERENCE_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg5000.csv.gz"
REFERENCE_CSV_SHA256 = "acafb7357792d6d26e3be26f25aceda37faa46c0fce4bb7551ca4b3f26fa834d"
TRAIN_CACHE = "PYTEST_HEARTGATE_TRAIN_CACHE"  # set it to keep trained models across sessions
TRAIN_CACHE_SETTING = "HEARTGATE_TRAIN__CACHE_DIR"
MADE_TRAIN_CACHE = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    # Point this process's Prefect/MLflow/DVC/TensorFlow files at a scratch state dir before any
    # of them is imported, as the CLI does: the tests never write to $HOME either. pytest-xdist's
    # workers inherit the controller's environment (its TMPDIR, inside a dir closed to other
    # users): each worker's state dir and temporary files go beside the controller's instead, where
    # the `postgres` user can reach a cluster.
    tempfile.tempdir = os.environ.setdefault("PYTEST_HEARTGATE_TMPDIR", tempfile.gettempdir())
    activate(StatePaths(Path(tempfile.mkdtemp(prefix="heartgate-tests-"))))
    # One training cache for the session, the workers' too (they inherit this variable): each
    # configuration trains once, and every later run of it reuses the model (heartgate.ml.training_cache).
    if TRAIN_CACHE not in os.environ:
        os.environ[TRAIN_CACHE] = tempfile.mkdtemp(prefix="heartgate-train-cache-")
        config.stash[MADE_TRAIN_CACHE] = Path(os.environ[TRAIN_CACHE])


# The integration scopes in the order two xdist workers take them (`make test` runs
# `--dist loadscope --no-loadscope-reorder`): the longest first, and the ones that mostly wait (a
# schedule, a worker's poll) beside a long one that computes, so that neither core idles at the
# end. Seconds on 2 cores, 2026-12-04: crash TestAws 440, approval 370, aws 360, crash TestLocal
# 270, reviewer_ui 260, team_stack 240 (0.7 of a core busy), deploy 145, watchdog 140 (0.4).
FIRST = (
    "tests/flows/test_crash_consistency.py::TestAws",
    "tests/flows/test_watchdog.py",
    "tests/flows/test_team_stack.py",
    "tests/flows/test_approval.py",
    "tests/flows/test_aws.py",
    "tests/flows/test_crash_consistency.py::TestLocal",
    "tests/flows/test_reviewer_ui.py",
    "tests/flows/test_deploy.py",
    "tests/flows/test_train_and_deploy.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, scope in enumerate(FIRST) if item.nodeid.startswith(f"{scope}::")), len(FIRST))

    items.sort(key=rank)  # stable: the tests of a scope keep their order, and so do the others


def pytest_unconfigure(config: pytest.Config) -> None:
    if MADE_TRAIN_CACHE in config.stash:  # the process that made it (the controller), not a worker
        shutil.rmtree(config.stash[MADE_TRAIN_CACHE], ignore_errors=True)


def synthetic_rows(per_label: dict[int, int], seed: int = 0) -> list[str]:
    """Random beats in canonical CSV rows (not ECG data): normal beats are a sine, abnormal noisy."""
    rng = np.random.default_rng(seed)
    rows = []
    t = np.linspace(0, 2 * np.pi, 140)
    for label, count in per_label.items():
        for _ in range(count):
            beat = np.sin(t) + rng.normal(0, 0.05 if label == 1 else 0.6, 140)
            split = "train" if rng.random() < 0.2 else "test"
            rows.append(",".join([split, str(label), *(f"{v:.8g}" for v in beat)]))
    return sorted(rows, key=lambda row: not row.startswith("train,"))  # UCR TRAIN rows come first


def synthetic_csv(per_label: dict[int, int] | None = None, seed: int = 0) -> str:
    rows = synthetic_rows(per_label or {1: 120, 2: 60, 3: 10, 4: 10}, seed)
    return HEADER + "\n" + "\n".join(rows) + "\n"


@pytest.fixture
def synthetic_csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "synthetic.csv"
    path.write_text(synthetic_csv())
    return path


@pytest.fixture(scope="session")
def reference_csv_gz() -> Path:
    if not REFERENCE_DATA.exists():
        pytest.skip(f"reference copy not found at {REFERENCE_DATA}")
    return REFERENCE_DATA


def wait_until_answering(url: str, server: subprocess.Popen, what: str, timeout: float = 60) -> None:
    """Poll `url` until it answers; fail the test if `server` exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"{what} did not start")
            time.sleep(0.2)


def clean_environment(*prefixes: str, train_cache: bool = True) -> dict[str, str]:
    """This process's environment without heartgate's, Prefect's and MLflow's settings (and any
    `prefixes`): a `heartgate` started with it sees only its own flags, and the session's training
    cache unless `train_cache` is False (a test of training itself, or one that needs it to take time)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTGATE_", "PREFECT_", "MLFLOW_", *prefixes))}
    return clean | ({TRAIN_CACHE_SETTING: os.environ[TRAIN_CACHE]} if train_cache else {})


def local_flags(state: Path, port: int, reference_csv: Path) -> tuple[str, ...]:
    """A state dir serving on `port` with one server worker (these tests time nothing, and each worker
    is a process importing onnxruntime), reading the reference beats (no download)."""
    settings = {"serve.port": port, "serve.workers": 1, "data.source": reference_csv, "data.sha256": "null"}
    return ("--state-dir", str(state), *(arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")))


CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by .ci/run; never a browser download
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_context(playwright, *origins: str, **options):
    """Headless Chromium whose pages may reach only `origins` (loopback servers); every other
    request is aborted. Returns (browser, context)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    context = browser.new_context(**options)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(origins) else route.abort())
    return browser, context


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_key_secret(moto_endpoint: str, value: str, name: str = "heartgate/api-key") -> str:
    """The team's API key in (emulated) Secrets Manager, where the AWS target reads it; its ARN."""
    import boto3

    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    try:
        return client.create_secret(Name=name, SecretString=value)["ARN"]
    except client.exceptions.ResourceExistsException:  # the moto server is the session's: another module made it
        return client.put_secret_value(SecretId=name, SecretString=value)["ARN"]


@pytest.fixture(scope="session")
def moto_server():
    """Emulated AWS (moto, server mode) on loopback; yields its endpoint URL."""
    port = free_port()
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_until_answering(f"{endpoint}/moto-api/", server, "moto server")
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def aws(moto_server, monkeypatch):
    """Point boto3 (and DVC's S3 remote) at moto with dummy credentials."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import boto3

    return boto3.client("s3")


@pytest.fixture(scope="module")
def undeploy_at_teardown():
    """Collect state dirs whose local deployment (a bento server) must be stopped afterwards."""
    states: list[Path] = []
    yield states.append
    for state in states:
        subprocess.run(
            [sys.executable, "-m", "heartgate.cli", "undeploy", "--state-dir", str(state)],
            capture_output=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """A Prefect server (SQLite) on loopback for the module; yields its API URL."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "TMPDIR": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=(home / "server.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api"
    wait_until_answering(f"{api}/health", server, "Prefect server", timeout=120)
    yield api
    server.terminate()
    server.wait(timeout=30)


class WebhookReceiver:
    """A loopback endpoint that records every JSON body POSTed to it."""

    def __init__(self) -> None:
        received: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/heartgate"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def messages_about(self, run_name: str, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not [m for m in self.received if run_name in m["subject"]]:
            time.sleep(0.5)
        time.sleep(2)  # a second message, if one were coming, would be here by now
        return [m for m in self.received if run_name in m["subject"]]


def signed_release(onnx: Path, version: str, threshold: float, key_file: Path) -> tuple[str, str]:
    """A release record signed for a model built outside a run (this checkout's serving code):
    its JSON, and the public key that verifies it (what a deploy sets for the served process)."""
    from heartgate.adapters.signing import public_key_text, release_key
    from heartgate.core.config import PROJECT_ROOT
    from heartgate.release.record import ReleaseRecord, sign
    from heartgate.serving.packaging import served_files
    from heartgate.serving.proof import files_sha256, sha256_file

    files = served_files()
    record = ReleaseRecord(
        model_name="test",
        version=version,
        onnx_sha256=sha256_file(onnx),
        threshold=threshold,
        serving_code_sha256=files_sha256(files, PROJECT_ROOT),
        serving_files=tuple(files),
        data_md5="synthetic",
        split_md5="synthetic",
        gate={},
        approver="test",
        approved_at="2026-12-04T00:00:00+00:00",
        git_commit="test",
    )
    key = release_key({}, key_file)
    return sign(record, key).to_json(), public_key_text(key)


def register_outside_heartgate(state: Path, like: str, model_name: str = "heartgate-ecg-autoencoder") -> str:
    """A version registered with MLflow's own client, from an existing run's model: it passed no
    gate and no person approved it, so it has no release record (what a gate-refused version is)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=StatePaths(state).mlflow_tracking_uri)
    model = client.get_model_version(model_name, like)
    tags = {key: value for key, value in model.tags.items() if key != "release.record"}
    return str(client.create_model_version(model_name, model.source, run_id=model.run_id, tags=tags).version)

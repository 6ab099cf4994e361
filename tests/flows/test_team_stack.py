"""The team set-up on one machine, all real: `heartgate up --profile server` starts a private
PostgreSQL 15 cluster, the Prefect server on it (API auth), the MLflow server on it (basic auth,
artifacts in moto's S3), two process workers with state dirs of their own, and the deployments
from prefect.yaml, whose pull step clones the code from a local bare git repository. The DVC
remote and the task results live in the same S3 bucket. Runs are launched through the API, as the
UI's Run button does, and answered with `heartgate approve`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from heartgate.adapters.registry import PRODUCTION_ALIAS
from heartgate.adapters.signing import public_key_text, release_key
from heartgate.core.config import PROJECT_ROOT
from tests.conftest import clean_environment, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "heartgate-team"
MODEL = "heartgate-ecg-autoencoder"
RELEASE_KEY = base64.b64encode(hashlib.sha256(b"release-sentinel-4e0b").digest()).decode()  # the team's Ed25519 key (32 bytes)
CREDENTIALS = {
    "PREFECT_API_AUTH_STRING": "hg-team:prefect-sentinel-7f3a",
    "MLFLOW_TRACKING_USERNAME": "hg-admin",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-sentinel-91c2",
    "HEARTGATE_RELEASE_KEY": RELEASE_KEY,
}


def bare_repository(root: Path) -> tuple[str, str]:
    """This working tree (tracked and untracked, not ignored) committed into a bare repository:
    the team's git server. Returns its URL and the commit on `main`."""
    listed = (
        subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    )
    work = root / "checkout"
    for name in filter(None, listed):
        if (PROJECT_ROOT / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, work / name)
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "team checkout"]):
        subprocess.run([*git, *args], cwd=work, check=True)
    bare = root / "heartgate.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True, check=True).stdout.strip()
    return bare.as_uri(), commit


@pytest.fixture(scope="module")
def team(moto_server, reference_csv_gz):
    import boto3

    # Not under pytest's tmp dir: its root is closed to other users, and PostgreSQL runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="heartgate-team-"))
    root.chmod(0o755)
    aws = {"AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "aws-sentinel-55d1", "AWS_DEFAULT_REGION": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="aws-sentinel-55d1", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    repository, commit = bare_repository(root)
    ports = {"prefect_port": free_port(), "mlflow_port": free_port(), "postgres_port": free_port()}
    config = {
        "mlflow": {"tracking_uri": f"http://127.0.0.1:{ports['mlflow_port']}"},
        "data": {"source": str(reference_csv_gz), "sha256": None, "remote": f"s3://{BUCKET}/dvc"},
        "train": {"epochs": 2},
        "approval": {"allow_auto_approve": True, "poll_interval_s": 1},  # the test's config allows it
        "dependencies": {"wait_s": 30},  # two runs, two servers and PostgreSQL on two cores: slow answers are not outages here
        "deploy": {"target": "local"},
        "serve": {"port": free_port()},
        "release": {"public_key": public_key_text(release_key({"HEARTGATE_RELEASE_KEY": RELEASE_KEY}, None))},  # only the public half
        "stack": {
            **ports,
            "artifacts_destination": f"s3://{BUCKET}/mlflow-artifacts",
            "results_storage": f"s3://{BUCKET}/prefect-results",
            "git_repository": repository,
            "git_ref": "main",
            "watchdog_interval_s": 3600,  # quiet here: tests/flows/test_watchdog.py runs it
        },
    }
    config_file = root / "team.yaml"
    config_file.write_text(yaml.safe_dump(config))
    base = clean_environment("AWS_")
    env = base | aws | CREDENTIALS
    cli = ["--profile", "server", "--config", str(config_file)]
    up = heartgate(env, "up", *cli, "--state-dir", str(root / "state"))
    assert up.returncode == 0, up.stderr[-3000:]
    api = re.search(r"PREFECT_API_URL=(\S+)", up.stdout).group(1)
    with pytest.MonkeyPatch.context() as patch:  # this process reads the registry as a team member, for the module only
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            patch.setenv(name, CREDENTIALS[name])
        yield {
            "root": root,
            "state": root / "state",
            "env": env | {"PREFECT_API_URL": api},
            "cli": cli,
            "api": api,
            "s3": s3,
            "commit": commit,
            "mlflow": config["mlflow"]["tracking_uri"],
            "postgres_port": ports["postgres_port"],
        }
    for worker in (root / "state" / "workers").glob("*"):
        heartgate(env, "undeploy", *cli, "--state-dir", str(worker))
    down = heartgate(env, "down", *cli, "--state-dir", str(root / "state"))
    assert down.returncode == 0 and "postgres" in down.stdout, down.stdout + down.stderr
    shutil.rmtree(root, ignore_errors=True)


def heartgate(env: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "heartgate.cli", *args], env=env, capture_output=True, text=True, timeout=timeout)


class Api:
    """The Prefect API as the test process sees it (with the auth string, as the UI's user)."""

    def __init__(self, team) -> None:
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

        self.settings = temporary_settings(updates={PREFECT_API_URL: team["api"], PREFECT_API_AUTH_STRING: CREDENTIALS["PREFECT_API_AUTH_STRING"]})

    def __enter__(self):
        from prefect import get_client

        self.settings.__enter__()
        self.client = get_client(sync_client=True).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.client.__exit__(*exc)
        self.settings.__exit__(*exc)

    def launch(self, deployment: str = "train-and-deploy/manual", **options):
        from prefect.deployments import run_deployment

        return run_deployment(deployment, timeout=0, **options).id

    def approve(self, run_id, reviewer: str) -> None:
        """What the Resume form of a paused run posts."""
        from prefect.flow_runs import resume_flow_run

        resume_flow_run(run_id, run_input={"approve": True, "reviewer": reviewer, "comment": ""})

    def wait(self, run_id, until=lambda state: state.is_final(), timeout: float = 420):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.client.read_flow_run(run_id).state
            if state and until(state):
                return state
            time.sleep(1)
        raise AssertionError(f"flow run {run_id} still {state.name if state else None} after {timeout}s")


def registry(team):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=team["mlflow"])


def versions(team) -> dict[str, dict[str, str]]:
    return {v.version: v.tags for v in registry(team).search_model_versions(f"name = '{MODEL}'")}


@pytest.fixture(scope="module")
def race(team):
    """Two manual runs launched at once through the API: two workers, one production."""
    with Api(team) as api:
        runs = [api.launch() for _ in range(2)]
        for run_id in runs:  # both pass the gate (nothing in production yet) and wait for a person
            waiting = api.wait(run_id, until=lambda state: state.is_paused() or state.is_final())
            assert waiting.name == "Suspended", f"{waiting.name}: {waiting.message}"
            api.approve(run_id, reviewer="alice")
        states = [api.wait(run_id) for run_id in runs]
        workers = {api.client.read_flow_run(run_id).work_queue_name for run_id in runs}
    return states, workers


def test_two_runs_at_once_make_exactly_one_production(team, race):
    states, _ = race
    winners = [s for s in states if s.is_completed() and s.message.startswith("promoted version")]
    assert len(winners) == 1, [s.message for s in states]
    (loser,) = [s for s in states if s not in winners]
    assert "\n" not in loser.message and "Traceback" not in loser.message  # the one-line reason
    winner_version = re.match(r"promoted version (\d+)", winners[0].message).group(1)
    tags = versions(team)
    assert registry(team).get_model_version_by_alias(MODEL, PRODUCTION_ALIAS).version == winner_version
    (other,) = [v for v in tags if v != winner_version]
    assert tags[other]["rejected"]  # the race loser (promotion conflict) or a candidate no better (gate)
    assert tags[winner_version]["git_commit"] == team["commit"]  # the workers ran the cloned code
    # Signed by the worker with the team's key; checked from another machine that holds only the public half.
    reader = {name: value for name, value in team["env"].items() if name != "HEARTGATE_RELEASE_KEY"}
    verified = heartgate(reader, "verify", winner_version, *team["cli"], "--state-dir", str(team["root"] / "reader"))
    assert verified.returncode == 0, verified.stderr[-2000:]
    assert verified.stdout.startswith(f"version {winner_version}: release record verified (key ") and "approved by alice at " in verified.stdout


def test_versions_are_rows_in_postgres_and_artifacts_are_keys_in_s3(team, race):
    import psycopg

    with psycopg.connect(f"postgresql://heartgate@127.0.0.1:{team['postgres_port']}/mlflow") as connection:
        rows = connection.execute("SELECT version FROM model_versions WHERE name = %s ORDER BY version", (MODEL,)).fetchall()
    assert [str(row[0]) for row in rows] == sorted(versions(team), key=int)
    keys = [obj["Key"] for page in team["s3"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET) for obj in page.get("Contents", [])]
    assert any(key.startswith("mlflow-artifacts/") and key.endswith("onnx/scorer.onnx") for key in keys)
    assert any(key.startswith("mlflow-artifacts/") and key.endswith(".png") for key in keys)  # the plots
    assert any(key.startswith("dvc/files/md5/") for key in keys)  # the data versions
    assert any(key.startswith("prefect-results/") for key in keys)  # the persisted task results
    assert not list(team["root"].rglob("mlflow.db"))  # no worker fell back to SQLite


def test_a_deployment_without_the_server_settings_refuses_in_one_line(team, race):
    before = set(versions(team))
    with Api(team) as api:
        run_id = api.launch(job_variables={"env": {"HEARTGATE_MLFLOW__TRACKING_URI": ""}})  # the setting withdrawn
        state = api.wait(run_id)
    assert state.is_failed()
    assert state.message.startswith("flow run of deployment manual on ") and "(set mlflow.tracking_uri)" in state.message
    assert "\n" not in state.message
    assert set(versions(team)) == before


def test_a_suspended_run_survives_killing_every_worker(team, race):
    with Api(team) as api:
        # 40 epochs beat 2 on both metrics: it passes the gate. The local target serves on the machine of
        # whichever worker resumes it, which may already serve the race's winner: a port of its own.
        run_id = api.launch(parameters={"choices": {"epochs": 40, "overrides": {"serve.port": free_port()}}})
        suspended = api.wait(run_id, until=lambda state: state.is_paused() or state.is_final())
        assert suspended.name == "Suspended", suspended.message
        before = set(versions(team))
        for pidfile in (team["state"] / "stack").glob("worker-*.pid"):
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)
        time.sleep(2)
        assert api.client.read_flow_run(run_id).state.is_paused()  # nothing held it; nothing lost it
        restart = heartgate(team["env"], "up", *team["cli"], "--state-dir", str(team["state"]))  # new workers
        assert restart.returncode == 0, restart.stderr[-2000:]
        answer = heartgate(team["env"], "approve", str(run_id), "--reviewer", "alice", *team["cli"], "--state-dir", str(team["root"] / "cli"))
        assert answer.returncode == 0, answer.stderr
        final = api.wait(run_id)
    assert final.is_completed() and final.message.startswith("promoted version"), final.message
    assert "(approved by alice) and deployed" in final.message
    assert set(versions(team)) == before  # the resumed run reused its results: no second training, no new version


def test_a_run_whose_worker_dies_with_it_ends_crashed(team):
    """The worker and its run killed with -9 (its machine gone, say): nobody is left to report it;
    the server's heartbeat automation (`heartgate up` creates it) ends the run CRASHED."""
    from heartgate.adapters.processes import descendants

    with Api(team) as api:
        run_id = api.launch(parameters={"choices": {"epochs": 400}})
        api.wait(run_id, until=lambda state: state.is_running())
        time.sleep(5)  # past its first heartbeat
        run_pid = int(api.client.read_flow_run(run_id).infrastructure_pid.rpartition(":")[2])  # the process worker records the pid
        doomed = [run_pid, *descendants(run_pid)]
        for pidfile in (team["state"] / "stack").glob("worker-*.pid"):
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        final = api.wait(run_id, timeout=300)
    print(f"run whose worker died ended {final.name} after {time.monotonic() - started:.0f}s")
    assert final.is_crashed() and final.message == "no heartbeat for 90s: its process, worker or machine is gone", final


def test_both_servers_refuse_a_call_without_the_credential(team):
    import urllib.error
    import urllib.request

    for url, method in ((f"{team['api']}/deployments/filter", "POST"), (f"{team['mlflow']}/api/2.0/mlflow/registered-models/search", "GET")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None), timeout=10)
        assert refused.value.code == 401, url


def test_no_credential_is_written_anywhere(team, race):
    secret_names = ("PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_PASSWORD", "HEARTGATE_RELEASE_KEY")  # the user name is not a secret (MLflow logs it)
    sentinels = [CREDENTIALS[name].encode() for name in secret_names] + [b"aws-sentinel-55d1"]
    leaked = [
        str(path)
        for path in team["state"].rglob("*")  # everything heartgate and its servers wrote
        if path.is_file() and not path.is_symlink() and any(secret in path.read_bytes() for secret in sentinels)
    ]
    assert leaked == []

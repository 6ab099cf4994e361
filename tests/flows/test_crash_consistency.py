"""Fault injection: a `heartgate run` is killed (SIGKILL to its whole process group, Prefect's
temporary server and Terraform included) at each point where a crash could leave production
inconsistent, then `heartgate reconcile` runs, and production must be served, healthy,
smoke-tested, with no orphan (server, or resource outside Terraform's state), no stale lock, the
killed run CRASHED and the repair in the lineage. On the local target and on AWS (moto).

The kill points are found in the run's own log (the marker lines it prints as it goes). Each test
starts from version 1 (5 epochs) in production; the killed run trains a 20-epoch candidate, which
beats it on both precision and recall (reused from the session's training cache, except where the
kill lands in the training), and a test that ends with the candidate in production
rolls it back (`heartgate rollback`, checked too) for the next."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from heartgate.adapters.processes import pid_in, running_commands
from heartgate.adapters.state import StatePaths
from tests.conftest import TRAIN_CACHE_SETTING, api_key_secret, clean_environment, free_port, local_flags

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "heartgate-ecg-autoencoder"
SECRET = "hg-crash-test-secret-value"
LOG_MAX_BYTES = 4096
CANDIDATE = ("--set", "train.epochs=20")
IN_TRAINING = "training"  # the one kill point inside the training
# (kill point, marker in the run's log, seconds to wait after the marker, does @production move?
# None: either, as the kill lands between the release record and the two alias moves, or after them)
LOCAL_KILL_POINTS = [
    (IN_TRAINING, r"Task run 'split-data-\w+' - Finished", 3.0, False),
    ("after-register", r"registered heartgate-ecg-autoencoder version \d+ as @candidate", 0.0, False),
    ("after-release-record", r"release record of version \d+ signed", 0.0, None),
    ("after-promote", r"@production -> version \d+", 0.0, True),
    ("apply-create", r"terraform_data.server: Creating\.\.\.", 0.7, True),
    ("apply-destroy", r"terraform_data.server: Destroying\.\.\.", 0.0, True),
    ("before-smoke-test", r"terraform: Apply complete!", 0.0, True),
]
# AWS deploys blue/green: publish a version (the first apply), smoke-test it, move `live` (the second).
AWS_KILL_POINTS = [
    *LOCAL_KILL_POINTS[:2],  # training, after register: nothing touched AWS yet; reconcile smoke-tests what serves
    ("after-promote", LOCAL_KILL_POINTS[3][1], 0.0, True),
    ("apply-publish", r"aws_lambda_function.this: Modifying\.\.\.", 0.3, True),
    ("before-smoke-test", r"terraform: Apply complete!", 0.0, True),
    ("apply-move-live", r"aws_lambda_alias.live: Modifying\.\.\.", 0.0, True),
]
POINT = ("point", "marker", "delay", "moves")
AWS = (
    "--target",
    "aws",
    "--set",
    "deploy.aws.s3_path_style=true",
    "--set",
    "deploy.aws.function_name=hgcrash",
    "--set",
    "deploy.aws.state_key=crash/terraform.tfstate",
)


class Site:
    """One state dir with version 1 in production on `target`, and the commands run on it."""

    def __init__(self, target: str, state: Path, env: dict[str, str], flags: tuple[str, ...]) -> None:
        self.target, self.state, self.env, self.flags = target, state, env, flags
        first = self.heartgate("run", "--auto-approve", "--set", "train.epochs=5")
        assert first.returncode == 0, first.stderr[-3000:]

    def heartgate(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "heartgate.cli", *args, *self.flags]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)

    def killed_run(self, marker: str, delay: float, trains: bool) -> str:
        """Start `heartgate run` on a candidate, SIGKILL its process group `delay` s after the
        first log line matching `marker`; returns the log up to then. `trains`: the run trains
        for real (the kill lands in the training), not from the session's training cache."""
        command = [sys.executable, "-m", "heartgate.cli", "run", "--auto-approve", *CANDIDATE, *self.flags]
        env = {k: v for k, v in self.env.items() if not (trains and k == TRAIN_CACHE_SETTING)}
        run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        seen, deadline = [], time.monotonic() + 600
        for line in run.stdout:
            seen.append(line)
            if re.search(marker, line) or time.monotonic() > deadline:
                break
        time.sleep(delay)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        log = "".join(seen)
        assert re.search(marker, log), f"the run ended before {marker!r}:\n{log[-3000:]}"
        return log


@pytest.fixture(scope="module")
def local(tmp_path_factory, undeploy_at_teardown, reference_csv_gz):
    state = tmp_path_factory.mktemp("crash") / "state"
    undeploy_at_teardown(state)
    port = free_port()
    env = clean_environment() | {"AWS_ACCESS_KEY_ID": "AKIAHEARTGATETEST", "AWS_SECRET_ACCESS_KEY": SECRET}  # the run has them; the server must not
    flags = (*local_flags(state, port, reference_csv_gz), "--set", f"serve.log_max_bytes={LOG_MAX_BYTES}", "--set", "serve.log_backups=2")
    site = Site("local", state, env, flags)
    site.port, site.url = port, f"http://127.0.0.1:{port}"
    return site


@pytest.fixture(scope="module")
def aws(tmp_path_factory, moto_server, reference_csv_gz):
    import boto3

    state = tmp_path_factory.mktemp("crash-aws") / "state"
    env = clean_environment("AWS_") | {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_SECRET_ACCESS_KEY": "b",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    site_aws = {
        name: boto3.client(name, endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
        for name in ("s3", "lambda", "apigatewayv2")
    }
    site_aws["s3"].create_bucket(Bucket="heartgate-terraform-state")
    api_key_secret(moto_server, "crash-site-key")  # the AWS target requires an API key by default
    flags = ("--state-dir", str(state), *AWS, "--set", f"data.source={reference_csv_gz}", "--set", "data.sha256=null")
    site = Site("aws", state, env, flags)
    site.clients = site_aws
    yield site
    site.heartgate("undeploy")


def served_version(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/metadata", timeout=5) as response:
            return json.loads(response.read())["model_version"]
    except OSError:
        return None


def registry(state: Path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=StatePaths(state).mlflow_tracking_uri)


def production(state: Path) -> str:
    return str(registry(state).get_registered_model(MODEL).aliases["production"])


def newest(state: Path) -> str:
    return str(max(int(v.version) for v in registry(state).search_model_versions(f"name='{MODEL}'")))


def servers_on(port: int) -> list[str]:
    return [command for command in running_commands() if "bentoml serve" in command and f"--port {port}" in command]


def flow_run_states(state: Path) -> dict[str, str]:
    """name -> state type, read from the Prefect database every run of this state dir shares."""
    with sqlite3.connect(StatePaths(state).prefect_home / "prefect.db") as db:
        return dict(db.execute("select name, state_type from flow_run").fetchall())


def assert_no_stale_lock(site: Site) -> None:
    for lock in (StatePaths(site.state).root / "locks").glob("*.lock"):
        with lock.open() as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if anybody still holds it
    if site.target == "local":
        assert not list((StatePaths(site.state).terraform / "local").glob(".terraform.tfstate.lock.info"))
    else:
        keys = [item["Key"] for item in site.clients["s3"].list_objects_v2(Bucket="heartgate-terraform-state", Prefix="crash/").get("Contents", [])]
        assert keys == ["crash/terraform.tfstate"], keys  # no .tflock left


def assert_served(site: Site, version: str) -> None:
    """Serving `version`, and nothing beside it: no second server, no resource outside the state."""
    if site.target == "local":
        assert served_version(site.url) == version
        bentoml = Path(sys.executable).with_name("bentoml")
        assert servers_on(site.port) == [f"{sys.executable} {bentoml} serve heartgate:v{version} --host 127.0.0.1 --port {site.port}"]
        assert pid_in(StatePaths(site.state).deploy / "local" / "server.pid", "bentoml") is not None
        return
    lam = site.clients["lambda"]
    live = lam.get_alias(FunctionName="hgcrash", Name="live")["FunctionVersion"]
    environment = lam.get_function_configuration(FunctionName="hgcrash", Qualifier=live)["Environment"]["Variables"]
    assert environment["HEARTGATE_REGISTRY_VERSION"] == version
    assert [f["FunctionName"] for f in lam.list_functions()["Functions"] if f["FunctionName"].startswith("hgcrash")] == ["hgcrash"]
    assert [a["Name"] for a in site.clients["apigatewayv2"].get_apis()["Items"]].count("hgcrash") == 1


def reconcile_after_a_kill(site: Site, point: str, marker: str, delay: float, moves: bool) -> None:
    """Kill a run at `point`, reconcile, and check what serves; back to the starting version after."""
    target = site.target
    before = production(site.state)
    log = site.killed_run(marker, delay, trains=point == IN_TRAINING)
    killed = re.search(r"Beginning flow run '([\w-]+)'", log).group(1)
    if moves is None:  # between the record and the aliases: either, but nothing half-moved
        wanted = production(site.state)
        assert wanted in (before, newest(site.state))
        if wanted != before:  # both aliases moved, @previous first
            assert str(registry(site.state).get_registered_model(MODEL).aliases["previous"]) == before
    else:
        wanted = newest(site.state) if moves else before
    assert production(site.state) == wanted  # the kill left @production where the run had put it

    reconciled = site.heartgate("reconcile")
    assert reconciled.returncode == 0, reconciled.stderr[-3000:]
    print(f"{target} killed at {point}: {reconciled.stdout.strip()}")
    assert production(site.state) == wanted
    assert_served(site, wanted)
    status = site.heartgate("status")
    assert status.returncode == 0, status.stdout + status.stderr[-2000:]
    assert f"{target}: desired version {wanted} (@production); actual version {wanted} deployed at " in status.stdout
    assert f"answering as version {wanted}\n" in status.stdout
    assert_no_stale_lock(site)
    assert flow_run_states(site.state)[killed] == "CRASHED"
    if moves:  # the repair is in the lineage of the version now served
        assert f"reconciled.{target}" in registry(site.state).get_model_version(MODEL, wanted).tags

    if production(site.state) != before:  # back to version 1 for the next kill point: rollback checks what serves
        rolled = site.heartgate("rollback")
        assert rolled.returncode == 0, rolled.stderr[-3000:]
        assert production(site.state) == before
        assert_served(site, before)


def server_processes(state: Path) -> list[int]:
    from heartgate.adapters.processes import descendants

    pid = pid_in(StatePaths(state).deploy / "local" / "server.pid", "bentoml")
    assert pid is not None
    return [pid, *descendants(pid)]


# One class per target: `make test` (--dist loadscope) runs the two sites side by side, each on one worker.
class TestLocal:
    @pytest.mark.parametrize(POINT, LOCAL_KILL_POINTS, ids=[p[0] for p in LOCAL_KILL_POINTS])
    def test_reconcile_after_a_kill(self, local, point, marker, delay, moves):
        reconcile_after_a_kill(local, point, marker, delay, moves)

    def test_the_server_starts_without_the_runs_environment(self, local):
        for pid in server_processes(local.state):
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert SECRET.encode() not in environ and b"AWS_ACCESS_KEY_ID" not in environ, pid
            assert b"HEARTGATE_SERVE__MAX_ROWS=" in environ  # what it does need

    def test_the_server_log_has_one_line_per_request_and_rotates(self, local):
        log = StatePaths(local.state).deploy / "local" / "server.log"
        requests = 80  # about 300 bytes each: several rotations of 4 KiB
        for _ in range(requests):
            request = urllib.request.Request(f"{local.url}/predict", data=b"{}", headers={"content-type": "application/json"})
            try:
                urllib.request.urlopen(request, timeout=5)
            except urllib.error.HTTPError as exc:
                assert exc.code == 422
        time.sleep(0.5)  # the log writer flushes each line
        files = sorted(log.parent.glob("server.log*"))
        assert [f.name for f in files] == ["server.log", "server.log.1", "server.log.2"]
        assert all(f.stat().st_size <= LOG_MAX_BYTES for f in files)
        lines = [line for f in files for line in f.read_text().splitlines() if "path=/predict" in line]
        assert 0 < len(lines) <= requests and all("status=422" in line for line in lines)
        assert len(lines) * 200 < 3 * LOG_MAX_BYTES <= requests * 200  # what is kept is bounded, not what was sent


class TestAws:
    @pytest.mark.parametrize(POINT, AWS_KILL_POINTS, ids=[p[0] for p in AWS_KILL_POINTS])
    def test_reconcile_after_a_kill(self, aws, point, marker, delay, moves):
        reconcile_after_a_kill(aws, point, marker, delay, moves)

"""Fault injection on the local target: a `heartgate run` is killed (SIGKILL to its whole process
group, Prefect's temporary server and Terraform included) at each point where a crash could leave
production inconsistent, then `heartgate reconcile` runs, and production must be served,
healthy, smoke-tested, with no orphan server, no stale lock, the killed run CRASHED and the repair
in the lineage.

The kill points are found in the run's own log (the marker lines it prints as it goes). Each test
starts from version 1 (5 epochs) in production; the killed run trains a 20-epoch candidate, which
beats it on both precision and recall, and a test that ends with the candidate in production
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

from heartgate.processes import pid_in, running_commands
from heartgate.state import StatePaths
from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "heartgate-ecg-autoencoder"
SECRET = "hg-crash-test-secret-value"
LOG_MAX_BYTES = 4096
CANDIDATE = ("--set", "train.epochs=20")
# (kill point, marker in the run's log, seconds to wait after the marker, does @production move?)
KILL_POINTS = [
    ("training", r"Task run 'split-data-\w+' - Finished", 3.0, False),
    ("after-register", r"registered heartgate-ecg-autoencoder version \d+ as @candidate", 0.0, False),
    ("after-promote", r"@production -> version \d+", 0.0, True),
    ("apply-create", r"terraform_data.server: Creating\.\.\.", 0.7, True),
    ("apply-destroy", r"terraform_data.server: Destroying\.\.\.", 0.0, True),
    ("before-smoke-test", r"terraform: Apply complete!", 0.0, True),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory, undeploy_at_teardown, reference_csv_gz):
    state = tmp_path_factory.mktemp("crash") / "state"
    undeploy_at_teardown(state)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTGATE_", "PREFECT_", "MLFLOW_"))}
    env |= {"AWS_ACCESS_KEY_ID": "AKIAHEARTGATETEST", "AWS_SECRET_ACCESS_KEY": SECRET}  # the run has them; the server must not
    flags = ("--state-dir", str(state), "--set", f"serve.port={port}", "--set", f"data.source={reference_csv_gz}", "--set", "data.sha256=null",
             "--set", f"serve.log_max_bytes={LOG_MAX_BYTES}", "--set", "serve.log_backups=2")  # fmt: skip

    def heartgate(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "heartgate.cli", *args, *flags], env=env, capture_output=True, text=True, timeout=timeout)

    def killed_run(marker: str, delay: float) -> str:
        """Start `heartgate run` on a candidate, SIGKILL its process group `delay` s after the
        first log line matching `marker`; returns the log up to then."""
        command = [sys.executable, "-m", "heartgate.cli", "run", "--auto-approve", *CANDIDATE, *flags]
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

    first = heartgate("run", "--auto-approve", "--set", "train.epochs=5")
    assert first.returncode == 0, first.stderr[-3000:]
    return {"state": state, "port": port, "url": f"http://127.0.0.1:{port}", "heartgate": heartgate, "killed_run": killed_run}


def served_version(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/metadata", timeout=5) as response:
            return json.loads(response.read())["model_version"]
    except OSError:
        return None


def registry(state: Path):  # noqa: ANN201 - an MlflowClient on the site's store
    import mlflow

    return mlflow.MlflowClient(tracking_uri=StatePaths(state).mlflow_tracking_uri)


def production(state: Path) -> str:
    return str(registry(state).get_registered_model(MODEL).aliases["production"])


def servers_on(port: int) -> list[str]:
    return [command for command in running_commands() if "bentoml serve" in command and f"--port {port}" in command]


def flow_run_states(state: Path) -> dict[str, str]:
    """name -> state type, read from the Prefect database every run of this state dir shares."""
    with sqlite3.connect(StatePaths(state).prefect_home / "prefect.db") as db:
        return dict(db.execute("select name, state_type from flow_run").fetchall())


def assert_no_stale_lock(state: Path) -> None:
    for lock in (StatePaths(state).root / "locks").glob("*.lock"):
        with lock.open() as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if anybody still holds it
    assert not list((StatePaths(state).terraform / "local").glob(".terraform.tfstate.lock.info"))


@pytest.mark.parametrize(("point", "marker", "delay", "moves"), KILL_POINTS, ids=[point[0] for point in KILL_POINTS])
def test_reconcile_after_a_kill(site, point, marker, delay, moves):
    state, url = site["state"], site["url"]
    before = production(state)
    log = site["killed_run"](marker, delay)
    killed = re.search(r"Beginning flow run '([\w-]+)'", log).group(1)
    wanted = str(int(max(registry(state).search_model_versions(f"name='{MODEL}'"), key=lambda v: int(v.version)).version)) if moves else before
    assert production(state) == wanted  # the kill left @production where the run had put it

    reconciled = site["heartgate"]("reconcile")
    assert reconciled.returncode == 0, reconciled.stderr[-3000:]
    assert served_version(url) == wanted == production(state)
    status = site["heartgate"]("status")
    assert status.returncode == 0, status.stdout + status.stderr[-2000:]
    assert f"desired version {wanted} (@production); actual version {wanted} deployed at {url}, answering as version {wanted}" in status.stdout
    assert servers_on(site["port"]) == [f"{sys.executable} {Path(sys.executable).with_name('bentoml')} serve heartgate:v{wanted} --host 127.0.0.1 --port {site['port']}"]
    assert pid_in(StatePaths(state).deploy / "local" / "server.pid", "bentoml") is not None
    assert_no_stale_lock(state)
    assert flow_run_states(state)[killed] == "CRASHED"
    tags = registry(state).get_model_version(MODEL, wanted).tags
    if moves:  # the repair is in the lineage of the version now served
        assert "reconciled.local" in tags, tags
        assert reconciled.stdout.startswith(("local: redeployed version", "local: serves version")), reconciled.stdout

    if production(state) != before:  # back to version 1 for the next kill point: rollback checks what serves
        rolled = site["heartgate"]("rollback")
        assert rolled.returncode == 0, rolled.stderr[-3000:]
        assert served_version(url) == before == production(state)


def server_processes(state: Path) -> list[int]:
    from heartgate.processes import descendants

    pid = pid_in(StatePaths(state).deploy / "local" / "server.pid", "bentoml")
    assert pid is not None
    return [pid, *descendants(pid)]


def test_the_server_starts_without_the_runs_environment(site):
    for pid in server_processes(site["state"]):
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert SECRET.encode() not in environ and b"AWS_ACCESS_KEY_ID" not in environ, pid
        assert b"HEARTGATE_SERVE__MAX_ROWS=" in environ  # what it does need


def test_the_server_log_has_one_line_per_request_and_rotates(site):
    log = StatePaths(site["state"]).deploy / "local" / "server.log"
    requests = 80  # about 300 bytes each: several rotations of 4 KiB
    for _ in range(requests):
        request = urllib.request.Request(f"{site['url']}/predict", data=b"{}", headers={"content-type": "application/json"})
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

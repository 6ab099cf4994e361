"""The watchdog: `heartgate up` deploys the `reconcile/watchdog` deployment from prefect.yaml on
a schedule; a model server killed with -9 (its workers, which keep the port, included or not) is
serving again, smoke-tested, without a person, and `heartgate status` says so only once it is; a
version moved into production outside heartgate is refused within one period, with an alert."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from heartgate.adapters.processes import pid_in
from heartgate.adapters.state import StatePaths
from tests.conftest import WebhookReceiver, clean_environment, free_port, local_flags, register_outside_heartgate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Long enough that `heartgate status` (a process start, ~10 s on a busy machine) fits between a
# watchdog run that just ended and the next one.
INTERVAL_S = 30


@pytest.fixture(scope="module")
def stack(tmp_path_factory, undeploy_at_teardown, reference_csv_gz):
    state = tmp_path_factory.mktemp("watchdog") / "state"
    undeploy_at_teardown(state)
    port = free_port()
    webhook = WebhookReceiver()  # the approval channel, which reconcile's alerts take too
    env, flags = clean_environment(), (*local_flags(state, port, reference_csv_gz), "--set", f"approval.notify.webhook_url={webhook.url}")
    stack_flags = (
        "--set",
        f"stack.prefect_port={free_port()}",
        "--set",
        f"stack.mlflow_port={free_port()}",
        "--set",
        f"stack.watchdog_interval_s={INTERVAL_S}",
    )

    def heartgate(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "heartgate.cli", *args, *flags], env=env, capture_output=True, text=True, timeout=300)

    first = heartgate("run", "--auto-approve", "--set", "train.epochs=2")
    assert first.returncode == 0, first.stderr[-3000:]
    up = heartgate("up", *stack_flags)
    assert up.returncode == 0, up.stderr[-3000:]
    api = re.search(r"PREFECT_API_URL=(\S+)", up.stdout).group(1)
    yield {"state": state, "url": f"http://127.0.0.1:{port}", "heartgate": heartgate, "api": api, "webhook": webhook}
    webhook.server.shutdown()
    down = heartgate("down", *stack_flags)
    assert down.returncode == 0, down.stdout + down.stderr


def served_version(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/metadata", timeout=2) as response:
            return json.loads(response.read())["model_version"]
    except OSError:
        return None


def test_the_watchdog_is_deployed_on_its_schedule(stack):
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: stack["api"]}), get_client(sync_client=True) as client:
        watchdog = client.read_deployment_by_name("reconcile/watchdog")
    (schedule,) = watchdog.schedules
    assert schedule.schedule.interval.total_seconds() == INTERVAL_S and schedule.active
    assert watchdog.global_concurrency_limit.limit == 1
    assert watchdog.concurrency_options.collision_strategy.value == "CANCEL_NEW"


def wait_for_a_watchdog_run_to_end(api: str) -> None:
    """Until a watchdog run ends after this call: the next one is then most of a period away."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, FlowRunFilter
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def last_ended(client) -> object:
        watchdog = client.read_deployment_by_name("reconcile/watchdog")
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id={"any_": [watchdog.id]}),
            flow_run_filter=FlowRunFilter(state={"type": {"any_": ["COMPLETED"]}}),
            sort=FlowRunSort.END_TIME_DESC,
            limit=1,
        )
        return runs[0].id if runs else None

    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        before, deadline = last_ended(client), time.monotonic() + INTERVAL_S + 90
        while last_ended(client) == before:
            assert time.monotonic() < deadline, "no watchdog run ended"
            time.sleep(0.5)


def test_a_killed_server_is_back_within_one_period_and_status_tells_the_truth_meanwhile(stack):
    pidfile = StatePaths(stack["state"]).deploy / "local" / "server.pid"
    killed = pid_in(pidfile, "bentoml")
    wait_for_a_watchdog_run_to_end(stack["api"])  # or it could repair the server before `status` looks
    os.kill(killed, signal.SIGKILL)  # the server only: its workers may keep the port
    down = stack["heartgate"]("status")
    assert down.returncode == 1, down.stdout
    assert down.stderr.startswith("heartgate: error: local is out of sync: desired version 1 (@production), actual version 1 deployed")
    assert "the server of heartgate:v1 is gone" in down.stderr

    started = time.monotonic()
    while time.monotonic() - started < INTERVAL_S + 60:  # one period, plus a worker's start of the run
        if pid_in(pidfile, "bentoml") not in (None, killed) and stack["heartgate"]("status").returncode == 0:
            break
        time.sleep(2)
    back_after = time.monotonic() - started
    assert stack["heartgate"]("status").returncode == 0, f"not back after {back_after:.0f}s"
    assert served_version(stack["url"]) == "1"
    print(f"killed server back, in sync, after {back_after:.0f}s (watchdog every {INTERVAL_S}s)")


def test_a_version_moved_into_production_outside_heartgate_is_refused_within_one_period(stack):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=StatePaths(stack["state"]).mlflow_tracking_uri)
    forged = register_outside_heartgate(stack["state"], "1")
    wait_for_a_watchdog_run_to_end(stack["api"])
    client.set_registered_model_alias("heartgate-ecg-autoencoder", "production", forged)
    started = time.monotonic()
    while time.monotonic() - started < INTERVAL_S + 60 and str(client.get_registered_model("heartgate-ecg-autoencoder").aliases["production"]) != "1":
        time.sleep(1)
    refused_after = time.monotonic() - started
    assert str(client.get_registered_model("heartgate-ecg-autoencoder").aliases["production"]) == "1", f"@production not back after {refused_after:.0f}s"
    alerts = stack["webhook"].messages_about(f"refused @production version {forged}")
    assert len(alerts) == 1 and "local serves version 1, and @production is back on it" in alerts[0]["text"]
    assert served_version(stack["url"]) == "1"
    assert "not served, its release does not verify" in client.get_model_version("heartgate-ecg-autoencoder", forged).tags["rejected"]
    status = stack["heartgate"]("status")
    assert status.returncode == 1 and f"a release was refused, version {forged} at " in status.stderr
    print(f"forged @production refused, back on version 1, alert sent, after {refused_after:.0f}s (watchdog every {INTERVAL_S}s)")

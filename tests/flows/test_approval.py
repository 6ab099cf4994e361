"""Promotion with a person in the loop, against a real Prefect server on loopback.

One embedded stack (`heartgate up`: server, work pool, deployments from prefect.yaml, worker) for
the module. Runs start as `heartgate run` processes pointed at it; answers come from separate
`heartgate approve/reject` processes, through Prefect's resume API, as a reviewer's would.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heartgate.adapters.processes import command_line, descendants, pid_in
from heartgate.adapters.registry import CANDIDATE_ALIAS, PREVIOUS_ALIAS, PRODUCTION_ALIAS
from heartgate.adapters.state import StatePaths
from heartgate.core.config import PROJECT_ROOT
from tests.conftest import clean_environment, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "heartgate-ecg-autoencoder"
FAST = ("--set", "approval.poll_interval_s=1")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, undeploy_at_teardown):
    root = tmp_path_factory.mktemp("stack")
    ports = (
        "--set",
        f"stack.prefect_port={free_port()}",
        "--set",
        f"stack.mlflow_port={free_port()}",
        "--set",
        f"serve.port={free_port()}",  # handed to the flows the worker runs
        "--set",
        "stack.watchdog_interval_s=3600",  # quiet here: tests/flows/test_watchdog.py runs it
    )
    state = root / "stack-state"
    undeploy_at_teardown(state)
    base_env = clean_environment()
    up = subprocess.run(
        [sys.executable, "-m", "heartgate.cli", "up", "--state-dir", str(state), *ports],
        env=base_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert up.returncode == 0, up.stderr[-3000:]
    api = re.search(r"PREFECT_API_URL=(\S+)", up.stdout).group(1)
    yield {
        "root": root,
        "state": state,
        "api": api,
        "env": base_env | {"PREFECT_API_URL": api},
        "ports": ports,
        "undeploy": undeploy_at_teardown,
    }
    down = subprocess.run(
        [sys.executable, "-m", "heartgate.cli", "down", "--state-dir", str(state), *ports],
        env=base_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert down.returncode == 0 and "prefect-server" in down.stdout, down.stdout + down.stderr


def heartgate(stack, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "heartgate.cli", *args], env=stack["env"], capture_output=True, text=True, timeout=timeout)


SERVE_PORTS: dict[Path, int] = {}


class FlowProcess:
    """`heartgate run` in the background, read as a user reads its terminal. Each state dir
    serves on a port of its own and is undeployed when the module ends."""

    def __init__(self, stack, state: Path, *args: str) -> None:
        if state not in SERVE_PORTS:
            SERVE_PORTS[state] = free_port()
            stack["undeploy"](state)
        port = ("--set", f"serve.port={SERVE_PORTS[state]}")
        self.log = state.parent / f"{state.name}-{time.monotonic_ns()}.log"
        self.out = self.log.with_suffix(".out")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "heartgate.cli", "run", "--state-dir", str(state), *FAST, *port, *args],
            env=stack["env"] | {"PYTHONUNBUFFERED": "1"},
            stdout=self.out.open("w"),
            stderr=self.log.open("w"),
        )

    def waiting_run_id(self, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"heartgate approve ([0-9a-f-]{36}) --reviewer", self.log.read_text())
            if found:
                return found.group(1)
            assert self.process.poll() is None, f"run ended without pausing:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.5)
        raise AssertionError("run did not pause for approval")

    def finish(self, timeout: float = 240) -> tuple[int, str, str]:
        returncode = self.process.wait(timeout=timeout)
        return returncode, self.out.read_text(), self.log.read_text()


def registry(state: Path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=StatePaths(state).mlflow_tracking_uri)


def aliases(state: Path) -> dict[str, str]:
    return {k: str(v) for k, v in registry(state).get_registered_model(MODEL).aliases.items()}


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_deployments_come_from_prefect_yaml_with_the_nightly_schedule(stack):
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: stack["api"]}), get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("train-and-deploy/nightly")
        manual = client.read_deployment_by_name("train-and-deploy/manual")
    (schedule,) = nightly.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == ("0 2 * * *", "UTC", True)
    assert manual.schedules == []
    assert nightly.work_pool_name == manual.work_pool_name == "heartgate"
    # The team's settings travel as parameters (none on the embedded default); auto_approve never does.
    assert nightly.parameters == manual.parameters == {"profile": "", "config_file": ""}
    assert nightly.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}}]
    assert nightly.job_variables["env"]["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] == "local-file-system/heartgate-results"


def test_the_stack_mlflow_server_runs_no_job_consumers(stack):
    # MLflow starts five job-runner processes by default; heartgate runs no MLflow jobs.
    mlflow = pid_in(StatePaths(stack["state"]).root / "stack" / "mlflow.pid", "mlflow")
    assert mlflow is not None
    commands = [command_line(pid) for pid in descendants(mlflow)]
    assert commands and not [command for command in commands if "huey" in command], commands


def test_run_pressed_in_the_ui_is_picked_up_by_the_worker_and_waits_for_a_person(stack):
    """What the UI's Run button does: a flow run of the manual deployment, executed by the worker,
    with the Run form's typed choices; it suspends until a person answers (no parameter skips that)."""
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: stack["api"]}), get_client(sync_client=True) as client:
        run = run_deployment("train-and-deploy/manual", parameters={"choices": {"epochs": 2}}, timeout=0)
        state = wait_for(client, run.id, lambda state: state.is_paused() or state.is_final())
        assert state.name == "Suspended", state.message
        resume_flow_run(run.id, run_input={"approve": True, "reviewer": "ui-user", "comment": "from the form"})
        state = wait_for(client, run.id, lambda state: state.is_final())
        assert state.is_completed() and state.message.startswith("promoted version 1 to @production (approved by ui-user)"), state.message
        assert "outcome:deployed" in client.read_flow_run(run.id).tags  # the outcome at a glance in the runs list
        try:  # not a parameter: refused by the server's schema check, or the run fails before any step
            skipper = run_deployment("train-and-deploy/manual", parameters={"auto_approve": True}, timeout=0)
        except Exception as refused:  # noqa: BLE001 - whichever Prefect raises, it must name the parameter
            assert "auto_approve" in str(refused)
        else:  # Prefect's engine refuses the parameter before the flow starts (SignatureMismatchError in the run's logs)
            ended = wait_for(client, skipper.id, lambda state: state.is_final())
            assert ended.is_crashed() or ended.is_failed(), ended.message
    assert aliases(stack["state"])[PRODUCTION_ALIAS] == "1"
    assert len(registry(stack["state"]).search_model_versions(f"name = '{MODEL}'")) == 1  # the refused run trained nothing
    version = registry(stack["state"]).get_model_version(MODEL, "1")
    assert version.tags["approval.reviewer"] == "ui-user"
    assert registry(stack["state"]).get_run(version.run_id).data.params["train.epochs"] == "2"  # the form's choice


def wait_for(client, run_id, until, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.read_flow_run(run_id).state
        if state and until(state):
            return state
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} still {state.name if state else None} after {timeout}s")


def test_a_worker_run_without_shared_settings_refuses_in_one_line(stack):
    """The same Run, but the deployment's environment withdraws the single-machine opt-in that
    `heartgate up` gives its worker: the run must not fall back to the worker's own registry."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    before = len(registry(stack["state"]).search_model_versions(f"name = '{MODEL}'"))
    with temporary_settings(updates={PREFECT_API_URL: stack["api"]}):
        run = run_deployment(
            "train-and-deploy/manual",
            parameters={"choices": {"epochs": 1}},
            job_variables={"env": {"HEARTGATE_STACK__ALLOW_LOCAL_STATE": "false"}},
            timeout=300,
        )
    assert run.state.is_failed()
    assert "flow run of deployment manual on " in run.state.message
    assert "(set mlflow.tracking_uri) and the local DVC remote " in run.state.message
    assert len(registry(stack["state"]).search_model_versions(f"name = '{MODEL}'")) == before  # nothing registered


@pytest.fixture(scope="module")
def approved(stack):
    """A run pauses; a second process approves it; production moves."""
    state = stack["root"] / "approve"
    run = FlowProcess(stack, state, "--set", "train.epochs=20")
    run_id = run.waiting_run_id()
    pending = heartgate(stack, "pending", "--state-dir", str(state))
    assert run_id in pending.stdout
    answer = heartgate(stack, "approve", run_id, "--reviewer", "alice", "--comment", "fine by me", "--state-dir", str(state))
    assert answer.returncode == 0, answer.stderr
    returncode, out, err = run.finish()
    assert returncode == 0, err[-3000:]
    return state, run_id, out


def test_approval_moves_production_and_records_the_reviewer(approved):
    state, _, out = approved
    assert "promoted version 1 to @production (approved by alice) and deployed heartgate:v1" in out
    assert aliases(state) == {CANDIDATE_ALIAS: "1", PRODUCTION_ALIAS: "1"}
    tags = registry(state).get_model_version(MODEL, "1").tags
    assert (tags["approval.decision"], tags["approval.reviewer"], tags["approval.comment"]) == ("approved", "alice", "fine by me")
    assert tags["gate.promotable"] == "true" and tags["gate.production_version"] == "none"


def test_a_run_answered_once_cannot_be_answered_again(stack, approved):
    state, run_id, _ = approved
    again = heartgate(stack, "reject", run_id, "--reviewer", "mallory", "--state-dir", str(state))
    assert again.returncode == 1
    assert "is not waiting for approval (state: Completed)" in last_line(again.stderr)


def test_a_worse_candidate_is_stopped_by_the_gate(stack, approved):
    state, _, _ = approved
    run = FlowProcess(stack, state, "--set", "train.epochs=1")
    returncode, out, err = run.finish()
    assert returncode == 0, err[-3000:]
    assert "not promoted: version 2 did not pass the gate; production unchanged" in out
    assert "heartgate approve" not in err  # never paused
    assert aliases(state) == {CANDIDATE_ALIAS: "2", PRODUCTION_ALIAS: "1"}
    tags = registry(state).get_model_version(MODEL, "2").tags
    assert tags["gate.promotable"] == "false" and tags["gate.production_version"] == "1"
    assert tags["rejected"].startswith("gate: ")


def test_a_better_candidate_keeps_the_old_one_as_previous(stack, approved):
    state, _, _ = approved
    run = FlowProcess(stack, state, "--auto-approve")  # 100 epochs beat the 20-epoch production on both metrics
    returncode, out, err = run.finish()
    assert returncode == 0, err[-3000:]
    assert "promoted version 3 to @production (approved by auto)" in out, out
    assert aliases(state) == {CANDIDATE_ALIAS: "3", PRODUCTION_ALIAS: "3", PREVIOUS_ALIAS: "1"}
    assert registry(state).get_model_version(MODEL, "3").tags["promoted_from"] == "1"


def test_rejection_keeps_production_and_records_why(stack):
    state = stack["root"] / "reject"
    run = FlowProcess(stack, state, "--set", "train.epochs=3")
    answer = heartgate(stack, "reject", run.waiting_run_id(), "--reviewer", "bob", "--comment", "odd ROC", "--state-dir", str(state))
    assert answer.returncode == 0, answer.stderr
    returncode, out, err = run.finish()
    assert returncode == 0, err[-3000:]
    assert "not promoted: version 1 rejected by bob; production unchanged" in out
    assert aliases(state) == {CANDIDATE_ALIAS: "1"}
    tags = registry(state).get_model_version(MODEL, "1").tags
    assert tags["approval.decision"] == "rejected" and tags["rejected"] == "rejected by bob: odd ROC"


def test_no_answer_in_time_means_not_approved(stack):
    state = stack["root"] / "timeout"
    run = FlowProcess(stack, state, "--set", "train.epochs=3", "--set", "approval.timeout_s=3")
    returncode, _, err = run.finish()
    assert returncode == 1
    assert last_line(err) == "heartgate: error: timed out: no approval for version 1 within 3s: not promoted, production unchanged"
    assert aliases(state) == {CANDIDATE_ALIAS: "1"}
    assert registry(state).get_model_version(MODEL, "1").tags["approval.decision"] == "timed_out"


def test_two_runs_approved_at_once_never_both_promote(stack):
    """Both candidates were gated against the same (empty) production; both are approved at the
    same moment. Exactly one promotes; the other stops with the reason and changes nothing."""
    state = stack["root"] / "race"
    first = FlowProcess(stack, state, "--set", "train.epochs=3")
    first_id = first.waiting_run_id()
    second = FlowProcess(stack, state, "--set", "train.epochs=4")
    second_id = second.waiting_run_id()
    approvals = [
        subprocess.Popen(
            [sys.executable, "-m", "heartgate.cli", "approve", run_id, "--reviewer", "carol", "--state-dir", str(state)],
            env=stack["env"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run_id in (first_id, second_id)
    ]
    assert all(p.wait(timeout=120) == 0 for p in approvals)
    results = [first.finish(), second.finish()]
    winners = [r for r in results if r[0] == 0]
    losers = [r for r in results if r[0] != 0]
    assert len(winners) == 1 and len(losers) == 1, [r[2][-1500:] for r in results]
    winner_version = re.search(r"promoted version (\d+) to @production", winners[0][1]).group(1)
    assert re.match(
        rf"heartgate: error: @production moved from none to version {winner_version} after the gate compared "
        r"version \d+ with it; not promoted",
        last_line(losers[0][2]),
    )
    assert aliases(state)[PRODUCTION_ALIAS] == winner_version
    assert PREVIOUS_ALIAS not in aliases(state)


def test_only_an_answer_from_the_configured_approvers_counts(stack):
    from prefect import get_client
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    state = stack["root"] / "approvers"
    only_alice = ("--set", "approval.approvers=[alice]")
    run = FlowProcess(stack, state, "--set", "train.epochs=3", *only_alice)
    run_id = run.waiting_run_id()
    refused = heartgate(stack, "approve", run_id, "--reviewer", "mallory", "--state-dir", str(state), *only_alice)
    assert refused.returncode == 1
    assert last_line(refused.stderr) == "heartgate: error: 'mallory' is not one of approval.approvers (alice): the run would ignore this answer"
    # The UI's form goes to Prefect directly: the run itself ignores the answer and waits on.
    with temporary_settings(updates={PREFECT_API_URL: stack["api"]}), get_client(sync_client=True) as client:
        resume_flow_run(run_id, run_input={"approve": True, "reviewer": "mallory", "comment": "let me in"})
        deadline = time.monotonic() + 60
        while "answer from 'mallory' ignored: not one of approval.approvers (alice); still waiting" not in run.log.read_text():
            assert time.monotonic() < deadline, run.log.read_text()[-2000:]
            time.sleep(0.5)
        while not client.read_flow_run(run_id).state.is_paused():
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert PRODUCTION_ALIAS not in aliases(state)
    answer = heartgate(stack, "approve", run_id, "--reviewer", "alice", "--state-dir", str(state), *only_alice)
    assert answer.returncode == 0, answer.stderr
    returncode, out, err = run.finish()
    assert returncode == 0, err[-3000:]
    assert "promoted version 1 to @production (approved by alice)" in out


def test_approve_refuses_a_run_whose_process_is_gone(stack, tmp_path):
    """kill -9 a `heartgate run` waiting for approval: approving it must not claim success (nothing
    would be promoted); the run ends CRASHED and `pending` no longer lists it."""
    flow = FlowProcess(stack, tmp_path / "dead", "--set", "train.epochs=1")
    run_id = flow.waiting_run_id()
    flow.process.kill()
    flow.process.wait(timeout=30)
    answer = heartgate(stack, "approve", run_id, "--reviewer", "dana")
    assert answer.returncode == 1
    lines = answer.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("heartgate: error: flow run ") and "cannot be answered: its process " in lines[0]
    assert lines[0].endswith("is gone; it is now CRASHED (start a new run)")
    assert run_id not in heartgate(stack, "pending").stdout

    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: stack["api"]}), get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).state.type.value == "CRASHED"

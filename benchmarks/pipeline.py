"""Wall time of each task and of the whole train-and-deploy flow on the embedded default.

Runs `heartgate run --auto-approve` three times in fresh processes (Python start and the TensorFlow import
included) against one local Prefect server, reads each task run's duration back from the Prefect
API, and prints the median of the three. The first run starts from an empty state dir (data
download, new MLflow database) and promotes its candidate; the next two train the same model
(training is deterministic), which is not better, so they stop at the gate. The figures of each
run are printed too.

    .venv/bin/python benchmarks/pipeline.py [--runs 3] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from heartgate.adapters.state import StatePaths, runtime_environment

STEPS = (
    "pull-data",
    "split-data",
    "train",
    "evaluate-and-pick-threshold",
    "register",
    "promotion-gate",
    "record-approval",
    "promote",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_prefect_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit(f"benchmark: error: the Prefect server did not become healthy (log: {log})")


def task_durations(flow_run_name_seen: set[str]) -> tuple[str, float, dict[str, float]]:
    """The newest flow run not seen before: its name, duration and each task's duration."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        flow_run = next(run for run in client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=10) if run.name not in flow_run_name_seen)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    per_task = {task.name.rsplit("-", 1)[0]: (task.end_time - task.start_time).total_seconds() for task in tasks if task.start_time and task.end_time}
    return flow_run.name, (flow_run.end_time - flow_run.start_time).total_seconds(), per_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the state dir afterwards")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="heartgate-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTGATE_", "PREFECT_"))}
    env |= runtime_environment(StatePaths(state))
    port = free_port()
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    StatePaths(state).tmp.mkdir(parents=True, exist_ok=True)
    os.environ.update(env)  # this process reads the same server

    server = start_prefect_server(env, port, state / "prefect-server.log")
    rows: list[dict[str, float]] = []
    seen: set[str] = set()
    try:
        for index in range(args.runs):
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "heartgate.cli", "run", "--auto-approve", "--state-dir", str(state)],
                env=env,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - started
            if result.returncode != 0:
                raise SystemExit(f"benchmark: error: run {index + 1} failed: {result.stderr.strip().splitlines()[-1]}")
            name, flow_seconds, per_task = task_durations(seen)
            seen.add(name)
            rows.append({**per_task, "flow": flow_seconds, "process": wall})
            print(
                f"run {index + 1} ({'cold' if index == 0 else 'warm'}): process {wall:.1f}s, flow {flow_seconds:.1f}s, "
                + ", ".join(f"{step} {per_task[step]:.2f}s" for step in STEPS if step in per_task),
                flush=True,
            )
    finally:
        subprocess.run([sys.executable, "-m", "heartgate.cli", "undeploy", "--state-dir", str(state)], env=env, capture_output=True)
        server.terminate()
        server.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)

    print_medians(rows)


def print_medians(rows: list[dict[str, float]]) -> None:
    print(f"\nmedian of {len(rows)} runs (2 cores); steps a run skipped count only where they ran:")
    rows = [row | {"up to register": sum(row[step] for step in STEPS[:5])} for row in rows]
    labels = {
        "up to register": "pull-data .. register (task time)",
        "flow": "whole flow (Prefect flow run)",
        "process": "whole `heartgate run` (incl. Python + TF import)",
    }
    for key in (*STEPS, "up to register", "flow", "process"):
        values = [row[key] for row in rows if key in row]
        if values:
            print(f"  {labels.get(key, key):<50} {statistics.median(values):6.2f} s  (n={len(values)})")


if __name__ == "__main__":
    main()

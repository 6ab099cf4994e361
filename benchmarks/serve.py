"""Throughput and latency (p50/p99) of the served model at batch sizes 1 and 64, side by side with
a seed-style service (BentoML + Keras `model.predict` per request), in one run on this machine,
and the levers measured one at a time (workers, the access log).

Trains and deploys a model with `heartgate run --auto-approve` into a scratch state dir (the real
local target, through Terraform), serves the same registry version seed-style, then drives each
with ApacheBench (`ab -k`, Debian's apache2-utils): CONCURRENCY keep-alive clients on loopback, a
fixed number of requests (bounded in count and time), after a warm-up. ab's percentiles are
checked against its throughput (Little's law: clients ≈ req/s × mean latency) before they are
printed; wrk's histogram failed that check here (docs/field notes).

    .venv/bin/python benchmarks/serve.py [--requests 5000] [--seed-requests 300]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from heartgate.adapters.state import StatePaths, runtime_environment
from heartgate.core.config import PROJECT_ROOT

CONCURRENCY = 8
MODEL = "heartgate-ecg-autoencoder"
BATCHES = (1, 64)
BENTOML = str(Path(sys.executable).with_name("bentoml"))


@dataclass(frozen=True)
class Measured:
    rps: float
    p50: float
    p99: float
    mean: float  # ms, over all requests (ab's "Time per request" across concurrent clients x CONCURRENCY)

    @property
    def clients_seen(self) -> float:
        """Little's law: busy clients = throughput x mean latency; should be close to CONCURRENCY."""
        return self.rps * self.mean / 1000


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/readyz", timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"benchmark: error: {url} did not become ready")


def ab(port: int, body_file: Path, requests: int, scratch: Path) -> Measured:
    percentiles = scratch / "percentiles.csv"
    load = ["-q", "-k", "-s", "30", "-c", str(CONCURRENCY), "-n", str(requests)]
    command = ["ab", *load, "-T", "application/json", "-p", str(body_file), "-e", str(percentiles), f"http://127.0.0.1:{port}/predict"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    out = result.stdout
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1)) if "Failed requests" in out else -1
    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    if result.returncode != 0 or failed != 0 or non_2xx:
        raise SystemExit(f"benchmark: error: ab against port {port}: {result.stderr.strip() or out[-500:]}")
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))
    mean = float(re.search(r"Time per request:\s+([\d.]+) \[ms\] \(mean\)", out).group(1))
    table = {int(float(row[0])): float(row[1]) for row in csv.reader(percentiles.read_text().splitlines()[1:])}
    return Measured(rps=rps, p50=table[50], p99=table[99], mean=mean)


def measure(name: str, port: int, bodies: dict[int, Path], requests: int, scratch: Path) -> dict[int, Measured]:
    results = {}
    for batch, body_file in bodies.items():
        ab(port, body_file, min(200, requests), scratch)  # warm-up
        result = results[batch] = ab(port, body_file, requests, scratch)
        check = "" if abs(result.clients_seen - CONCURRENCY) <= 1.5 else f"  (INCONSISTENT: {result.clients_seen:.1f} busy clients)"
        print(
            f"  {name:<34} batch {batch:>2}: {result.rps:8.1f} req/s  {result.rps * batch:9.0f} beats/s  "
            f"p50 {result.p50:6.2f} ms  p99 {result.p99:6.2f} ms{check}",
            flush=True,
        )
    return results


def start(command: list[str], env: dict[str, str], port: int, cwd: Path = PROJECT_ROOT) -> subprocess.Popen:
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_ready(f"http://127.0.0.1:{port}")
    return server


def stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def served_environment(paths: StatePaths) -> dict[str, str]:
    """What a bento server of this state dir needs: its runtime, and the key it checks its release with."""
    from heartgate.adapters.signing import public_key_text, release_key
    from heartgate.serving.proof import PUBLIC_KEY_VARIABLE

    return runtime_environment(paths) | {PUBLIC_KEY_VARIABLE: public_key_text(release_key({}, paths.release_key))}


def measure_levers(bento: str, env: dict[str, str], bodies: dict[int, Path], requests: int, scratch: Path) -> None:
    """The same bento, one setting changed from the defaults at a time."""
    for label, settings in (("1 worker", {"HEARTGATE_SERVE__WORKERS": "1"}), ("access log off", {"HEARTGATE_SERVE__ACCESS_LOG": "false"})):
        port = free_port()
        server = start([BENTOML, "serve", bento, "--host", "127.0.0.1", "--port", str(port)], env | settings, port)
        try:
            measure(f"heartgate, lever: {label}", port, bodies, requests, scratch)
        finally:
            stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per measurement (heartgate)")
    parser.add_argument("--seed-requests", type=int, default=300, help="requests per measurement (seed-style)")
    args = parser.parse_args()
    if shutil.which("ab") is None:
        raise SystemExit("benchmark: error: ab (ApacheBench) is not installed: apt-get install apache2-utils")

    state = Path(tempfile.mkdtemp(prefix="heartgate-serve-bench-"))
    paths = StatePaths(state)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTGATE_", "PREFECT_"))}
    port = free_port()
    cli = [sys.executable, "-m", "heartgate.cli"]
    servers: list[subprocess.Popen] = []
    try:
        print("training and deploying a model (heartgate run --auto-approve) ...", flush=True)
        run = subprocess.run([*cli, "run", "--auto-approve", "--state-dir", str(state), "--set", f"serve.port={port}"], env=env, capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"benchmark: error: {run.stderr.strip().splitlines()[-1]}")
        metadata = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata").read())

        from heartgate.core.config import load_config
        from heartgate.ml.splits import arrays_for_lineage

        lineage = metadata["lineage"]
        test = arrays_for_lineage(load_config(overrides={"state_dir": str(state)}), lineage["data_md5"], lineage["split_md5"]).test
        bodies = {}
        for batch in BATCHES:
            bodies[batch] = state / f"body-{batch}.json"
            bodies[batch].write_text(json.dumps({"beats": test[:batch].astype(float).tolist()}))
        print(f"\nmodel version {metadata['model_version']}; ab -k, {CONCURRENCY} concurrent keep-alive clients on loopback; {os.cpu_count()} cores")

        results = {"heartgate": measure("heartgate (deployed, defaults)", port, bodies, args.requests, state)}
        served_env = env | served_environment(paths)
        measure_levers(f"heartgate:v{metadata['model_version']}", served_env, bodies, args.requests, state)
        seed_port = free_port()
        seed_env = served_env | {
            "SEED_TRACKING_URI": paths.mlflow_tracking_uri,
            "SEED_MODEL_URI": f"models:/{MODEL}/{metadata['model_version']}",
            "SEED_THRESHOLD": str(metadata["threshold"]),
            "CUDA_VISIBLE_DEVICES": "",
        }
        servers.append(start([BENTOML, "serve", "benchmarks.seed_service:SeedStyle", "--host", "127.0.0.1", "--port", str(seed_port)], seed_env, seed_port))
        results["seed"] = measure("seed-style (BentoML + Keras)", seed_port, bodies, args.seed_requests, state)
        report(results)
    finally:
        for server in servers:
            stop(server)
        subprocess.run([*cli, "undeploy", "--state-dir", str(state)], env=env, capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


def report(results: dict[str, dict[int, Measured]]) -> None:
    ours, seed = results["heartgate"], results["seed"]
    print("\n| service | batch | req/s | beats/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|")
    for name, measured in (("heartgate", ours), ("seed-style", seed)):
        for batch, m in measured.items():
            print(f"| {name} | {batch} | {m.rps:,.0f} | {m.rps * batch:,.0f} | {m.p50:.2f} | {m.p99:.2f} |")
    speedup = ours[1].rps / seed[1].rps
    print(
        f"\nbatch 1: {speedup:.0f}x the seed-style service, p99 {ours[1].p99:.2f} ms "
        f"(goal >= 90x, p99 <= 10 ms: {'met' if speedup >= 90 and ours[1].p99 <= 10 else 'NOT met'})"
    )
    beats = ours[64].rps * 64
    print(f"batch 64: {beats:,.0f} beats/s (goal >= 100,000: {'met' if beats >= 100_000 else 'NOT met'})")


if __name__ == "__main__":
    main()

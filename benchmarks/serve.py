"""Latency (p50/p99) and throughput of the served model at batch sizes 1 and 64, side by side with
a seed-style service (BentoML + Keras `model.predict` per request), in one run on this machine.

Trains and deploys a model with `heartgate run --auto-approve` into a scratch state dir (the real
local target, through Terraform), serves the same registry version seed-style, then drives both
with the same load: CONCURRENCY keep-alive clients on loopback, a fixed number of requests each
(bounded in count and time), after a warm-up.

    .venv/bin/python benchmarks/serve.py [--requests 2000] [--seed-requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from heartgate.config import PROJECT_ROOT
from heartgate.state import StatePaths, runtime_environment

CONCURRENCY = 4
WARMUP = 50
MODEL = "heartgate-ecg-autoencoder"


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


def drive(port: int, body: bytes, total: int) -> tuple[list[float], float]:
    """`total` POST /predict requests from CONCURRENCY clients; latencies in ms, and wall seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = total // CONCURRENCY

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(per_client):
            started = time.perf_counter()
            connection.request("POST", "/predict", body, {"content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"benchmark: error: HTTP {response.status} from port {port}")
            mine.append((time.perf_counter() - started) * 1000)
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started


def measure(name: str, port: int, beats: list[list[float]], requests: int) -> dict[str, float]:
    body = json.dumps({"beats": beats}).encode()
    drive(port, body, min(WARMUP, requests))
    latencies, wall = drive(port, body, requests)
    latencies.sort()
    result = {
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "rps": len(latencies) / wall,
    }
    print(f"  {name:<22} batch {len(beats):>2}: p50 {result['p50']:7.2f} ms  p99 {result['p99']:7.2f} ms  "
          f"{result['rps']:8.1f} req/s  ({result['rps'] * len(beats):8.0f} beats/s, n={len(latencies)})", flush=True)  # fmt: skip
    return result


def start_seed_service(env: dict[str, str], paths: StatePaths, metadata: dict, port: int) -> subprocess.Popen:
    """The seed-style reference (BentoML + Keras per request) on the same registry version."""
    seed_env = env | {
        "SEED_TRACKING_URI": paths.mlflow_tracking_uri,
        "SEED_MODEL_URI": f"models:/{MODEL}/{metadata['model_version']}",
        "SEED_THRESHOLD": str(metadata["threshold"]),
        "CUDA_VISIBLE_DEVICES": "",
    }  # fmt: skip
    seed = subprocess.Popen(
        [str(Path(sys.executable).with_name("bentoml")), "serve", "benchmarks.seed_service:SeedStyle",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT, env=seed_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}")
    return seed


def report(results: dict) -> None:
    print()
    for batch in (1, 64):
        ours, theirs = results[("heartgate", batch)], results[("seed", batch)]
        print(f"batch {batch:>2}: throughput {ours['rps'] / theirs['rps']:6.1f}x the seed-style service; "
              f"p99 {ours['p99']:.2f} ms vs {theirs['p99']:.2f} ms")  # fmt: skip
    ok = results[("heartgate", 1)]["rps"] >= 10 * results[("seed", 1)]["rps"] and results[("heartgate", 1)]["p99"] < 10
    print(f"target (batch 1: >= 10x throughput and p99 < 10 ms): {'met' if ok else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement (heartgate)")
    parser.add_argument("--seed-requests", type=int, default=300, help="requests per measurement (seed-style)")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="heartgate-serve-bench-"))
    paths = StatePaths(state)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTGATE_", "PREFECT_"))}
    port, seed_port = free_port(), free_port()
    cli = [sys.executable, "-m", "heartgate.cli"]
    seed = None
    try:
        print("training and deploying a model (heartgate run --auto-approve) ...", flush=True)
        run = subprocess.run([*cli, "run", "--auto-approve", "--state-dir", str(state), "--set", f"serve.port={port}"],
                             env=env, capture_output=True, text=True)  # fmt: skip
        if run.returncode != 0:
            raise SystemExit(f"benchmark: error: {run.stderr.strip().splitlines()[-1]}")
        metadata = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata").read())

        seed = start_seed_service(env | runtime_environment(paths), paths, metadata, seed_port)

        from heartgate.config import load_config
        from heartgate.splits import arrays_for_lineage

        lineage = metadata["lineage"]
        test = arrays_for_lineage(load_config(overrides={"state_dir": str(state)}), lineage["data_md5"], lineage["split_md5"]).test
        print(f"\nmodel version {metadata['model_version']}; {CONCURRENCY} concurrent keep-alive clients on loopback; 2 cores")
        results = {}
        for batch in (1, 64):
            beats = test[:batch].astype(float).tolist()
            results[("heartgate", batch)] = measure("heartgate (ONNX)", port, beats, args.requests)
            results[("seed", batch)] = measure("seed-style (Keras)", seed_port, beats, args.seed_requests)
        report(results)
    finally:
        if seed is not None:
            seed.send_signal(signal.SIGTERM)
            seed.wait(timeout=30)
        subprocess.run([*cli, "undeploy", "--state-dir", str(state)], env=env, capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The embedded stack: a local Prefect server with its UI, a process work pool and a worker, the
deployments from prefect.yaml, and the MLflow UI. All on loopback, all state under the state dir.

Each service runs detached in its own session, logs to `<state>/stack/<name>.log` and is found
again through `<state>/stack/<name>.pid`, so `heartgate down` works from any later shell.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from heartgate.config import ENV_NESTING, ENV_PREFIX, PROJECT_ROOT, HeartgateConfig
from heartgate.errors import HeartgateError
from heartgate.state import StatePaths, runtime_environment

START_TIMEOUT_S = 120
STOP_ORDER = ("worker", "mlflow", "prefect-server")  # the worker before the server it talks to


class StackError(HeartgateError):
    """A service of the embedded stack did not start or stop."""


@dataclass(frozen=True)
class StackUrls:
    prefect_ui: str
    prefect_api: str
    mlflow_ui: str | None


def urls(config: HeartgateConfig) -> StackUrls:
    host, stack = config.stack.host, config.stack
    prefect = f"http://{host}:{stack.prefect_port}"
    mlflow = f"http://{host}:{stack.mlflow_port}" if config.mlflow.tracking_uri is None else None
    return StackUrls(prefect_ui=prefect, prefect_api=f"{prefect}/api", mlflow_ui=mlflow)


def _stack_dir(config: HeartgateConfig) -> Path:
    return StatePaths(config.state_root).root / "stack"


def _pid(config: HeartgateConfig, name: str) -> int | None:
    pidfile = _stack_dir(config) / f"{name}.pid"
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pidfile.unlink(missing_ok=True)
        return None
    return pid


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _spawn(config: HeartgateConfig, name: str, command: list[str], env: dict[str, str]) -> None:
    if _pid(config, name):
        return
    directory = _stack_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # survives this command; `heartgate down` stops it
        )  # fmt: skip
    (directory / f"{name}.pid").write_text(str(process.pid))


def _wait_healthy(config: HeartgateConfig, name: str, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _healthy(url):
            return
        if _pid(config, name) is None:
            break
        time.sleep(0.5)
    log = _stack_dir(config) / f"{name}.log"
    raise StackError(f"{name} did not become healthy at {url} (see {log})")


def override_variables(overrides: Mapping[str, Any]) -> dict[str, str]:
    """{"serve.port": 3100} -> {"HEARTGATE_SERVE__PORT": "3100"}: how the worker's flows see the
    overrides `heartgate up` was started with."""
    return {
        ENV_PREFIX + key.upper().replace(".", ENV_NESTING): yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        for key, value in overrides.items()
    }


def service_environment(config: HeartgateConfig, overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """What the server, the worker and the flows it runs need: the state dir, the API, and the
    config overrides the stack was started with."""
    return {
        **os.environ,
        **runtime_environment(StatePaths(config.state_root)),
        # One machine: the worker's runs may use this state dir's registry and DVC remote.
        "HEARTGATE_STACK__ALLOW_LOCAL_STATE": "true",
        **override_variables(overrides or {}),
        "PREFECT_API_URL": urls(config).prefect_api,
        "PREFECT_UI_API_URL": urls(config).prefect_api,
        "HEARTGATE_STATE_DIR": str(config.state_root),
        "HGSTACK_PROJECT_DIR": str(PROJECT_ROOT),
        "HGSTACK_WORK_POOL": config.stack.work_pool,
    }


def ensure_work_pool(name: str, api_url: str) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def deploy(env: dict[str, str]) -> None:
    """`prefect deploy --all` from prefect.yaml, exactly as a user would run it."""
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        raise StackError(f"prefect deploy failed: {lines[-1] if lines else 'no output'}")


def up(config: HeartgateConfig, overrides: Mapping[str, Any] | None = None) -> StackUrls:
    stack_urls = urls(config)
    env = service_environment(config, overrides)
    python = sys.executable
    _spawn(config, "prefect-server", [python, "-m", "prefect", "server", "start",
           "--host", config.stack.host, "--port", str(config.stack.prefect_port)], env)  # fmt: skip
    _wait_healthy(config, "prefect-server", f"{stack_urls.prefect_api}/health")

    ensure_work_pool(config.stack.work_pool, stack_urls.prefect_api)
    deploy(env)
    _spawn(config, "worker", [python, "-m", "prefect", "worker", "start", "--pool", config.stack.work_pool], env)

    if stack_urls.mlflow_ui:
        paths = StatePaths(config.state_root)
        _spawn(config, "mlflow", [python, "-m", "mlflow", "server",
               "--backend-store-uri", paths.mlflow_tracking_uri,
               "--default-artifact-root", paths.mlflow_artifacts.as_uri(),
               "--host", config.stack.host, "--port", str(config.stack.mlflow_port), "--workers", "1"], env)  # fmt: skip
        _wait_healthy(config, "mlflow", f"{stack_urls.mlflow_ui}/health")
    return stack_urls


def down(config: HeartgateConfig) -> list[str]:
    """Stop what `up` started, worker first. Returns the names of the services it stopped."""
    stopped = []
    for name in STOP_ORDER:
        pid = _pid(config, name)
        if pid is None:
            continue
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _pid(config, name) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid(config, name):
            os.killpg(pid, signal.SIGKILL)
        (_stack_dir(config) / f"{name}.pid").unlink(missing_ok=True)
        stopped.append(name)
    return stopped

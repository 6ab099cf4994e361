"""What `heartgate up` starts, in one of two profiles, and `heartgate down` stops.

embedded (the default): a Prefect server on SQLite with its UI, a process work pool and one
worker, the deployments from prefect.yaml, and the MLflow UI over the state dir's SQLite store.

server (configs/server.yaml): PostgreSQL (a private cluster under the state dir, or an existing
server by URL), the Prefect server on it with API auth, an MLflow tracking server on it with its
artifacts in S3 and basic auth, `stack.workers` process workers with a state dir each, and the
deployments, which carry the team config (parameters `profile` and `config_file`) and the shared
result storage (job variables). Credentials come from the environment only and each process gets
only those it needs (heartgate.adapters.secrets).

Each service runs detached in its own session, logs to `<state>/stack/<name>.log` and is found
again through `<state>/stack/<name>.pid`, so `heartgate down` works from any later shell.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from heartgate.adapters import secrets
from heartgate.adapters.postgres import PostgresCluster, PostgresServer
from heartgate.adapters.state import MLFLOW_SERVER_ENVIRONMENT, StatePaths, runtime_environment
from heartgate.core.config import ENV_NESTING, ENV_PREFIX, PROJECT_ROOT, HeartgateConfig
from heartgate.core.errors import HeartgateError
from heartgate.release.notify import ensure_approval_notification
from heartgate.serving.targets import worker_credentials

if TYPE_CHECKING:  # for the annotations only: the library is imported where it is used
    from prefect.client.orchestration import SyncPrefectClient

START_TIMEOUT_S = 120
RESULTS_BLOCK = "heartgate-results"
DATABASES = ("prefect", "mlflow", "mlflow_auth")
STOP_RANK = {"worker": 0, "mlflow": 1, "prefect-server": 2}  # workers before the servers they talk to


class StackError(HeartgateError):
    """A service of the stack did not start or stop."""


@dataclass(frozen=True)
class StackUrls:
    prefect_ui: str
    prefect_api: str
    mlflow_ui: str | None


def urls(config: HeartgateConfig) -> StackUrls:
    host, stack = config.stack.host, config.stack
    prefect = f"http://{host}:{stack.prefect_port}"
    started_here = config.mlflow.tracking_uri is None or stack.profile == "server"
    mlflow = f"http://{host}:{stack.mlflow_port}" if started_here else None
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
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives this command; `heartgate down` stops it
        )
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
    """The embedded profile's server and worker: the state dir, the API, and the config overrides
    the stack was started with (one machine: the worker's runs may use the state dir's registry)."""
    return {
        **prefect_client_environment(config, config.state_root),
        "HEARTGATE_STACK__ALLOW_LOCAL_STATE": "true",
        **override_variables(overrides or {}),
        "PREFECT_UI_API_URL": urls(config).prefect_api,
    }


def prefect_client_environment(config: HeartgateConfig, state_dir: Path) -> dict[str, str]:
    """A process that talks to the stack's Prefect API, with `state_dir` its own; no credentials."""
    return {
        **secrets.without_credentials(os.environ),
        **runtime_environment(StatePaths(state_dir)),
        "PREFECT_API_URL": urls(config).prefect_api,
        "HEARTGATE_STATE_DIR": str(state_dir),
    }


def ensure_work_pool(config: HeartgateConfig, env: Mapping[str, str]) -> str:
    """The process work pool, and the block the deployments' runs persist task results to (S3 on
    the server profile, the state dir on one machine). Returns the block's slug."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.filesystems import LocalFileSystem, RemoteFileSystem
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        temporary_settings,
    )

    storage = config.stack.results_storage
    local = StatePaths(config.state_root).prefect_home / "storage"
    block = RemoteFileSystem(basepath=storage) if storage else LocalFileSystem(basepath=str(local))
    settings = {PREFECT_API_URL: env["PREFECT_API_URL"], PREFECT_API_AUTH_STRING: env.get(secrets.PREFECT_AUTH)}
    with temporary_settings(updates=settings):
        with get_client(sync_client=True) as client:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_work_pool(WorkPoolCreate(name=config.stack.work_pool, type="process"))
            ensure_crash_detection(client)
            ensure_approval_notification(client, config)
        block.save(RESULTS_BLOCK, overwrite=True)
    return f"{block.get_block_type_slug()}/{RESULTS_BLOCK}"


CRASH_AUTOMATION = "heartgate: a run that stops beating is crashed"
HEARTBEAT_S = 30  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY of deployment runs (prefect.yaml)
# Every event after which a run may go quiet on purpose, or ends: a paused or suspended run waits
# without a process to beat; the others are final.
QUIET_OR_FINAL = ("Completed", "Failed", "Cancelled", "Crashed", "Paused", "Suspended")


def ensure_crash_detection(client: SyncPrefectClient) -> None:
    """The server's own zombie detection (Prefect's recipe): a run whose heartbeat stops for three
    periods, its worker or machine gone with it, is set CRASHED. It covers every host; heartgate's
    own check (heartgate.adapters.runs) covers a run in a terminal, which has no worker."""
    from datetime import timedelta

    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    if client.read_automations_by_name(CRASH_AUTOMATION):
        return
    heartbeat = "prefect.flow-run.heartbeat"
    trigger = EventTrigger(
        after={heartbeat},
        expect={heartbeat, *(f"prefect.flow-run.{state}" for state in QUIET_OR_FINAL)},
        match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=3 * HEARTBEAT_S),
    )
    message = f"no heartbeat for {3 * HEARTBEAT_S}s: its process, worker or machine is gone"
    client.create_automation(AutomationCore(name=CRASH_AUTOMATION, trigger=trigger, actions=[ChangeFlowRunState(state=StateType.CRASHED, message=message)]))


WATCHDOG_DEPLOYMENT = "watchdog"


def deploy_variables(config: HeartgateConfig, results_block: str, config_file: str | None) -> dict[str, str]:
    """What prefect.yaml's `{{ $HGSTACK_* }}` placeholders resolve to (once, at deploy time)."""
    if config_file and Path(config_file).resolve().is_relative_to(PROJECT_ROOT):
        config_file = str(Path(config_file).resolve().relative_to(PROJECT_ROOT))  # as every checkout has it
    return {
        "HGSTACK_WORK_POOL": config.stack.work_pool,
        "HGSTACK_PROFILE": "" if config.stack.profile == "embedded" else config.stack.profile,
        "HGSTACK_CONFIG_FILE": str(config_file or ""),
        "HGSTACK_RESULTS_BLOCK": results_block,
        "HGSTACK_GIT_REPOSITORY": config.stack.git_repository or "",
        "HGSTACK_GIT_REF": config.stack.git_ref,
    }


def prefect_file(config: HeartgateConfig) -> Path:
    """The prefect.yaml `heartgate up` deploys: a copy under the stack dir, with the watchdog's
    interval from `stack.watchdog_interval_s` and, on one machine without a repository to clone
    (no `stack.git_repository`), a pull step that is this checkout."""
    project = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    if not config.stack.git_repository:
        project["pull"] = [{"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}}]
    for deployment in project["deployments"]:
        if deployment["name"] == WATCHDOG_DEPLOYMENT:
            deployment["schedules"][0]["interval"] = config.stack.watchdog_interval_s
    local = _stack_dir(config) / "prefect.yaml"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(yaml.safe_dump(project, sort_keys=False))
    return local


def deploy(config: HeartgateConfig, env: dict[str, str]) -> None:
    """`prefect deploy --all`, exactly as a user would run it."""
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file(config))],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        raise StackError(f"prefect deploy failed: {lines[-1] if lines else 'no output'}")


def up(config: HeartgateConfig, overrides: Mapping[str, Any] | None = None, config_file: str | None = None) -> StackUrls:
    """Start the stack of `stack.profile`; if any part fails, stop what was started (nothing half-up)."""
    if config.stack.profile == "server" and overrides:
        raise StackError(
            "heartgate up --profile server takes its settings from the config files (--config), which the "
            f"deployments carry to every worker, not from --set ({', '.join(overrides)})"
        )
    try:
        if config.stack.profile == "server":
            return _up_server(config, config_file)
        return _up_embedded(config, overrides, config_file)
    except HeartgateError:
        down(config)
        raise


def _up_embedded(config: HeartgateConfig, overrides: Mapping[str, Any] | None, config_file: str | None) -> StackUrls:
    stack_urls = urls(config)
    env = service_environment(config, overrides)
    python = sys.executable
    _spawn(config, "prefect-server", [python, "-m", "prefect", "server", "start", "--host", config.stack.host, "--port", str(config.stack.prefect_port)], env)
    _wait_healthy(config, "prefect-server", f"{stack_urls.prefect_api}/health")

    results_block = ensure_work_pool(config, env)
    deploy(config, env | deploy_variables(config, results_block, config_file))
    worker_env = env | worker_credentials(os.environ) | secrets.as_set(os.environ, secrets.RELEASE_KEY)  # its runs promote and deploy
    _spawn(config, "worker", [python, "-m", "prefect", "worker", "start", "--pool", config.stack.work_pool], worker_env)

    if stack_urls.mlflow_ui:
        paths = StatePaths(config.state_root)
        store = ["--backend-store-uri", paths.mlflow_tracking_uri, "--default-artifact-root", paths.mlflow_artifacts.as_uri()]
        listen = ["--host", config.stack.host, "--port", str(config.stack.mlflow_port), "--workers", "1"]
        _spawn(config, "mlflow", [python, "-m", "mlflow", "server", *store, *listen], env | MLFLOW_SERVER_ENVIRONMENT)
        _wait_healthy(config, "mlflow", f"{stack_urls.mlflow_ui}/health")
    return stack_urls


def postgres_for(config: HeartgateConfig) -> PostgresServer:
    if config.stack.postgres_url:
        return PostgresServer.from_url(config.stack.postgres_url)
    root = StatePaths(config.state_root).root
    return PostgresCluster(host=config.stack.host, port=config.stack.postgres_port, data_dir=root / "postgres")


def _up_server(config: HeartgateConfig, config_file: str | None) -> StackUrls:
    credentials = secrets.Credentials.from_environment(os.environ)
    stack_urls, stack, python = urls(config), config.stack, sys.executable
    postgres = postgres_for(config)
    postgres.start()
    for database in DATABASES:
        postgres.create_database(database)

    base = prefect_client_environment(config, config.state_root)
    database = {"PREFECT_API_DATABASE_CONNECTION_URL": postgres.url("prefect", "postgresql+asyncpg")}
    _spawn(
        config,
        "prefect-server",
        [python, "-m", "prefect", "server", "start", "--host", stack.host, "--port", str(stack.prefect_port)],
        base | credentials.prefect_server() | database,
    )
    _start_mlflow_server(config, postgres, base | credentials.mlflow_server())
    _wait_healthy(config, "prefect-server", f"{stack_urls.prefect_api}/health")

    client_env = base | credentials.prefect_client()
    results_block = ensure_work_pool(config, client_env)
    deploy(config, client_env | deploy_variables(config, results_block, config_file))
    for index in range(stack.workers):
        worker_env = prefect_client_environment(config, config.state_root / "workers" / str(index)) | credentials.worker()
        _spawn(config, f"worker-{index}", [python, "-m", "prefect", "worker", "start", "--pool", stack.work_pool, "--name", f"heartgate-{index}"], worker_env)
    _wait_healthy(config, "mlflow", f"{stack_urls.mlflow_ui}/health")
    return stack_urls


def _mlflow_auth_config(config: HeartgateConfig, database_url: str) -> Path:
    """The basic-auth app's settings: where its users live, and no password (the admin's comes
    from the environment on first start)."""
    path = _stack_dir(config) / "mlflow-auth.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = {database_url}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 60\n"  # the PBKDF2 check once a minute per client, not on every request
    )
    return path


def _start_mlflow_server(config: HeartgateConfig, postgres: PostgresServer, env: dict[str, str]) -> None:
    if not config.stack.artifacts_destination:
        raise StackError("the server profile needs stack.artifacts_destination (e.g. s3://bucket/mlflow-artifacts)")
    env = env | MLFLOW_SERVER_ENVIRONMENT | {"MLFLOW_AUTH_CONFIG_PATH": str(_mlflow_auth_config(config, postgres.url("mlflow_auth")))}
    if env.get("AWS_ENDPOINT_URL"):  # an S3 emulator: boto3 finds it, MLflow's artifact repository asks for its own
        env["MLFLOW_S3_ENDPOINT_URL"] = env["AWS_ENDPOINT_URL"]
    store = ["--backend-store-uri", postgres.url("mlflow"), "--artifacts-destination", config.stack.artifacts_destination]
    listen = ["--host", config.stack.host, "--port", str(config.stack.mlflow_port), "--workers", "1"]
    _spawn(config, "mlflow", [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", *store, *listen], env)


def stop_service(config: HeartgateConfig, name: str) -> bool:
    """SIGTERM the service's process group (SIGKILL after 20 s). False when it was not running."""
    pid = _pid(config, name)
    if pid is None:
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while _pid(config, name) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _pid(config, name):
        os.killpg(pid, signal.SIGKILL)
    (_stack_dir(config) / f"{name}.pid").unlink(missing_ok=True)
    return True


def down(config: HeartgateConfig) -> list[str]:
    """Stop what `up` started, workers first, the private PostgreSQL cluster last. Returns the
    names of the services it stopped."""
    running = sorted(path.stem for path in _stack_dir(config).glob("*.pid"))
    running.sort(key=lambda name: STOP_RANK.get(name.partition("-")[0] if name.startswith("worker") else name, 1))
    stopped = [name for name in running if stop_service(config, name)]
    postgres = postgres_for(config) if config.stack.profile == "server" else None
    if isinstance(postgres, PostgresCluster) and postgres.running():
        postgres.stop()
        stopped.append("postgres")
    return stopped

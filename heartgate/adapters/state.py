"""The state directory of the embedded default, and the process environment that keeps every
component (Prefect, MLflow, DVC, TensorFlow, matplotlib) writing inside it and never in $HOME."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from heartgate.core.config import HeartgateConfig
from heartgate.core.errors import ConfigError


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def mlflow_database(self) -> Path:
        return self.mlflow_dir / "mlflow.db"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_database}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow_dir / "artifacts"

    @property
    def dvc_workspace(self) -> Path:
        """A DVC repository (no git) whose tracked files are the dataset and the split."""
        return self.root / "data"

    @property
    def dvc_remote(self) -> Path:
        return self.root / "dvc-remote"

    @property
    def downloads(self) -> Path:
        """Fetched source files, kept by sha256 so a re-run does not download again."""
        return self.root / "downloads"

    @property
    def cache(self) -> Path:
        """Content that never changes once written (run artifacts by run id), kept to skip a refetch."""
        return self.root / "cache"

    @property
    def deploy(self) -> Path:
        """Per-target deployment files: server pid and log, Lambda packages."""
        return self.root / "deploy"

    @property
    def terraform(self) -> Path:
        """Per-target Terraform CLI config, data dir, var files and local state."""
        return self.root / "terraform"

    @property
    def bentoml_home(self) -> Path:
        return self.root / "bentoml"

    @property
    def release_key(self) -> Path:
        """The release signing key made on first use when HEARTGATE_RELEASE_KEY is not set (0600)."""
        return self.root / "keys" / "release.pem"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def home(self) -> Path:
        """Stands in for $HOME for libraries that insist on writing dot-files there."""
        return self.root / "home"


def runtime_environment(paths: StatePaths) -> dict[str, str]:
    """Environment variables that point every component's files at the state dir."""
    return {
        "PREFECT_HOME": str(paths.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TMPDIR": str(paths.tmp),
        "MPLCONFIGDIR": str(paths.home / "matplotlib"),
        "KERAS_HOME": str(paths.home / "keras"),
        "XDG_CACHE_HOME": str(paths.home / "cache"),
        # pip probes `rustc --version` for its user agent; the rustup shim then writes ~/.rustup.
        "RUSTUP_HOME": str(paths.home / "rustup"),
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(paths.home / "dvc-site"),
        "DVC_GLOBAL_CONFIG_DIR": str(paths.home / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(paths.home / "dvc-system"),
        "MLFLOW_DISABLE_TELEMETRY": "true",  # it writes ~/.config/mlflow and calls home
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "BENTOML_HOME": str(paths.bentoml_home),
        # TF's C++ side logs harmless graph-version notices at ERROR level; real failures still
        # surface as Python exceptions.
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MLFLOW_LOGGING_LEVEL": "WARNING",  # "Creating initial MLflow database tables..." and the like
        "GIT_PYTHON_REFRESH": "quiet",
    }


def activate(paths: StatePaths) -> None:
    """Create the state dir and point this process (and its children) at it.

    For entry points only (the CLI, the tests): library code never sets environment variables.
    Must run before prefect/mlflow/dvc are imported: they read their settings at import time.
    """
    for directory in (paths.root, paths.tmp, paths.home, paths.prefect_home, paths.mlflow_artifacts):
        directory.mkdir(parents=True, exist_ok=True)
    os.environ.update(runtime_environment(paths))
    for name, value in {**CLIENT_RETRY_DEFAULTS, **EPHEMERAL_SERVER_DEFAULTS}.items():  # the user's own settings win
        os.environ.setdefault(name, value)


# MLflow's client retries a dead server for minutes by default (7 retries, backoff factor 2): a
# server that goes down mid-run fails the step within seconds instead.
CLIENT_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
# Prefect's temporary server (the embedded default) imports its whole API before it answers: about
# 10 s on an idle 2-core machine, past Prefect's 20 s limit while another run trains beside it.
EPHEMERAL_SERVER_DEFAULTS = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90"}
# What an MLflow server heartgate starts is told: no job runners (MLflow's GenAI jobs, which
# heartgate does not use: five consumer processes, each importing MLflow, at every start).
MLFLOW_SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class StateDirError(ConfigError):
    """The state dir (or a file in it) cannot be written."""


def open_state_dir(paths: StatePaths) -> None:
    """`activate`, for the CLI: a state dir that cannot be created or written is one line."""
    try:
        activate(paths)
    except OSError as exc:
        raise StateDirError(f"cannot write the state dir: {exc.filename or paths.root}: {exc.strerror or exc}") from None
    require_writable(paths)


def require_writable(paths: StatePaths) -> None:
    """One line naming the path, instead of a timeout 39 lines further down, when the state dir
    is read-only or full: write a probe file in it, and check the databases in it are writable."""
    import errno
    import tempfile

    try:
        for directory in (paths.root, paths.prefect_home):
            try:
                with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-probe-") as probe:
                    probe.write(b"\0" * 4096)
                    probe.flush()
                    os.fsync(probe.fileno())
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, str(directory)) from None
        for database in (paths.prefect_home / "prefect.db", paths.mlflow_database):
            if database.exists() and not os.access(database, os.W_OK):
                raise PermissionError(errno.EACCES, "not writable", str(database))
    except OSError as exc:
        raise StateDirError(f"cannot write the state dir: {exc.filename or paths.root}: {exc.strerror or exc}") from None


def local_state_refusal(config: HeartgateConfig, deployment: str | None, api_url: str | None) -> str | None:
    """Why a worker's flow run must not use this machine's own registry and data remote, or None.

    A run from a deployment on a Prefect server that falls back to the state dir's SQLite store or
    local DVC remote would silently fork the team's registry (it would see no production model and
    register its own version 1)."""
    if deployment is None or config.stack.allow_local_state:
        return None
    paths = StatePaths(config.state_root)
    local = [f"the SQLite registry {paths.mlflow_database} (set mlflow.tracking_uri)"] if config.mlflow.tracking_uri is None else []
    local += [f"the local DVC remote {paths.dvc_remote} (set data.remote)"] if config.data.remote is None else []
    if not local:
        return None
    return (
        f"flow run of deployment {deployment} on {api_url or 'a Prefect server'} would use this worker's own "
        f"{' and '.join(local)}: give the deployment those settings (job_variables env HEARTGATE_MLFLOW__TRACKING_URI, "
        "HEARTGATE_DATA__REMOTE), or stack.allow_local_state: true on a single machine"
    )


def require_shared_state(config: HeartgateConfig) -> None:
    """Refuse, in one line, a worker's flow run that would use this machine's own registry or data."""
    from prefect.runtime import deployment
    from prefect.settings import PREFECT_API_URL

    refusal = local_state_refusal(config, deployment.name, PREFECT_API_URL.value())
    if refusal:
        raise ConfigError(refusal)

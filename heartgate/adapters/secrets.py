"""Credentials of the server profile: read from the environment only, handed to each process
that needs them and to no other, never written to a file, a log or a deployment by heartgate.

- PREFECT_API_AUTH_STRING: the Prefect server's API auth (the server gets it as
  PREFECT_SERVER_API_AUTH_STRING; workers and the CLI send it).
- MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD: MLflow's basic-auth app (the server creates
  its admin user from them on first start; workers and the CLI send them).
- MLFLOW_FLASK_SERVER_SECRET_KEY: the MLflow server's CSRF key; a fresh random one per start
  unless set (a team running several MLflow servers sets one for all).
- HEARTGATE_API_KEY: the served API's bearer key on the local target (serve.api_key): the model
  server gets it in its environment at start, clients (the smoke test, `status`) send it; a deploy
  records only its fingerprint. A target with a secret store keeps it there (aws: Secrets Manager).
- HEARTGATE_RELEASE_KEY: the release signing key (heartgate.adapters.signing), for the promoting
  process only.
- AWS credentials (the standard chain) and PGPASSWORD (an existing PostgreSQL server) pass
  through to the processes that talk to S3 or PostgreSQL, and to no other.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from heartgate.core.errors import ConfigError

PREFECT_AUTH = "PREFECT_API_AUTH_STRING"
MLFLOW_USERNAME = "MLFLOW_TRACKING_USERNAME"
MLFLOW_PASSWORD = "MLFLOW_TRACKING_PASSWORD"
MLFLOW_SERVER_KEY = "MLFLOW_FLASK_SERVER_SECRET_KEY"
API_KEY = "HEARTGATE_API_KEY"
RELEASE_KEY = "HEARTGATE_RELEASE_KEY"  # the release signing key (heartgate.adapters.signing)
AWS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
POSTGRES = ("PGPASSWORD",)
SERVER_SIDE = ("PREFECT_SERVER_API_AUTH_STRING", "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", MLFLOW_SERVER_KEY)
ALL = (PREFECT_AUTH, MLFLOW_USERNAME, MLFLOW_PASSWORD, RELEASE_KEY, *AWS, *POSTGRES, *SERVER_SIDE)


@dataclass(frozen=True, repr=False)  # repr=False: a traceback or a log line never shows them
class Credentials:
    prefect_auth: str
    mlflow_username: str
    mlflow_password: str
    passthrough: tuple[tuple[str, str], ...]  # AWS_*, PGPASSWORD and the CSRF key, as set

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Credentials:
        missing = [name for name in (PREFECT_AUTH, MLFLOW_USERNAME, MLFLOW_PASSWORD, RELEASE_KEY) if not environ.get(name)]
        if missing:
            raise ConfigError(
                f"the server profile needs {', '.join(missing)} in the environment "
                "(the servers' credentials and the key the workers sign releases with; heartgate never stores them)"
            )
        passthrough = tuple(as_set(environ, *AWS, *POSTGRES, MLFLOW_SERVER_KEY, RELEASE_KEY).items())
        return cls(environ[PREFECT_AUTH], environ[MLFLOW_USERNAME], environ[MLFLOW_PASSWORD], passthrough)

    def _passthrough(self, *names: str) -> dict[str, str]:
        return {name: value for name, value in self.passthrough if name in names}

    def prefect_server(self) -> dict[str, str]:
        return {"PREFECT_SERVER_API_AUTH_STRING": self.prefect_auth, **self._passthrough(*POSTGRES)}

    def mlflow_server(self) -> dict[str, str]:
        admin = {"MLFLOW_AUTH_ADMIN_USERNAME": self.mlflow_username, "MLFLOW_AUTH_ADMIN_PASSWORD": self.mlflow_password}
        csrf = {MLFLOW_SERVER_KEY: secrets.token_hex(32)} | self._passthrough(MLFLOW_SERVER_KEY)
        return admin | csrf | self._passthrough(*AWS, *POSTGRES)

    def prefect_client(self) -> dict[str, str]:
        return {PREFECT_AUTH: self.prefect_auth}

    def worker(self) -> dict[str, str]:
        """A worker and the flow runs it starts: Prefect, MLflow, S3 (DVC remote, results, Terraform
        state), and the release key (its runs promote)."""
        mlflow = {MLFLOW_USERNAME: self.mlflow_username, MLFLOW_PASSWORD: self.mlflow_password}
        return self.prefect_client() | mlflow | self._passthrough(*AWS, RELEASE_KEY)


def as_set(environ: Mapping[str, str], *names: str) -> dict[str, str]:
    """Those of `names` that are set, with their values: what to hand a process that needs them
    (AWS: the standard chain's variables; RELEASE_KEY: a worker, whose runs promote)."""
    return {name: environ[name] for name in names if environ.get(name)}


def without_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment minus every credential heartgate knows of: the base of each process's."""
    return {name: value for name, value in environ.items() if name not in ALL}


def bearer_header(key: str | None) -> dict[str, str]:
    """The Authorization header a client of the served API sends ({} without a key)."""
    return {"authorization": f"Bearer {key}"} if key else {}


def api_key_header(environ: Mapping[str, str]) -> dict[str, str]:
    return bearer_header(environ.get(API_KEY))


def api_key_fingerprint(environ: Mapping[str, str]) -> str:
    """What a deploy may record of the key: a salted sha256 ("" when none is set)."""
    import hashlib

    key = environ.get(API_KEY)
    return hashlib.sha256(f"heartgate-api-key:{key}".encode()).hexdigest() if key else ""

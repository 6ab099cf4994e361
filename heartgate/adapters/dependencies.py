"""Dependencies down: fail fast, in one line, before anything moves.

Every command and every run first checks the servers it will talk to — the MLflow tracking
server, the Prefect API, S3 (the DVC remote) and what the deploy target declares (aws: its
Terraform state bucket) — retrying for
`dependencies.wait_s`, then failing with one line that names the dependency and its URL. Any HTTP
answer counts as reachable (an auth error is a different problem, reported by the call that
meets it). The embedded default (SQLite, a local DVC remote, Prefect's temporary server) has
nothing to check.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

from heartgate.core.config import HeartgateConfig
from heartgate.core.errors import HeartgateError

PROBE_TIMEOUT_S = 3


class DependencyDown(HeartgateError):
    """A server heartgate needs did not answer within `dependencies.wait_s`."""


@dataclass(frozen=True)
class Dependency:
    name: str  # what it is, e.g. "the MLflow tracking server"
    url: str
    probe: Callable[[], None]  # raises OSError (or a botocore connection error) while it is down


def http_probe(url: str) -> Callable[[], None]:
    def probe() -> None:
        try:
            urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S).close()
        except urllib.error.HTTPError:
            return  # it answered

    return probe


def s3_probe(bucket: str, region: str | None) -> Callable[[], None]:
    def probe() -> None:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import ClientError, EndpointConnectionError

        config = Config(connect_timeout=PROBE_TIMEOUT_S, read_timeout=PROBE_TIMEOUT_S, retries={"max_attempts": 1})
        try:
            boto3.client("s3", region_name=region, config=config).head_bucket(Bucket=bucket)
        except ClientError:
            return  # it answered (a missing bucket or a refusal is reported where it matters)
        except EndpointConnectionError as exc:
            raise OSError(str(exc)) from None

    return probe


def s3_dependency(what: str, url: str, region: str | None, s3_endpoint: str | None) -> Dependency:
    """An S3 bucket (`url` s3://bucket/...) as a dependency; `s3_endpoint`: an emulator's URL, shown when set."""
    where = f"{url} via {s3_endpoint}" if s3_endpoint else url
    return Dependency(f"S3 ({what})", where, s3_probe(urlparse(url).netloc, region))


def dependencies_of(config: HeartgateConfig, prefect_api: str | None, s3_endpoint: str | None) -> list[Dependency]:
    """The servers every command and run needs; a deploy target adds its own (`DeployTarget.dependencies`)."""
    found = []
    uri = config.mlflow.tracking_uri
    if uri and uri.startswith(("http://", "https://")):
        found.append(Dependency("the MLflow tracking server", uri, http_probe(f"{uri.rstrip('/')}/health")))
    if prefect_api:
        found.append(Dependency("the Prefect API", prefect_api, http_probe(f"{prefect_api.rstrip('/')}/health")))
    if config.data.remote and config.data.remote.startswith("s3://"):
        found.append(s3_dependency("the DVC remote", config.data.remote, None, s3_endpoint))
    return found


def require(dependencies: list[Dependency], wait_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Probe each until it answers; one that has not answered after `wait_s` fails the command."""
    for dependency in dependencies:
        deadline, pause = time.monotonic() + wait_s, 0.25
        while True:
            try:
                dependency.probe()
                break
            except OSError as exc:
                if time.monotonic() + pause > deadline:
                    reason = getattr(exc, "reason", None) or exc.strerror or exc
                    raise DependencyDown(f"{dependency.name} at {dependency.url} did not answer for {wait_s:g}s ({reason}); nothing was changed") from None
                sleep(pause)
                pause = min(pause * 2, 2.0)


def require_dependencies(config: HeartgateConfig, target: Callable[[str | None], list[Dependency]] | None = None) -> None:
    """The check every command and run makes first (the environment says where Prefect and S3 are);
    `target`: the deploy target's own (`DeployTarget.dependencies`)."""
    from prefect.settings import PREFECT_API_URL

    s3_endpoint = os.environ.get("AWS_ENDPOINT_URL")
    found = dependencies_of(config, PREFECT_API_URL.value(), s3_endpoint) + (target(s3_endpoint) if target else [])
    require(found, config.dependencies.wait_s)

"""A private PostgreSQL cluster for the team set-up: Debian's PostgreSQL 15 binaries, a data
directory of its own, listening on loopback only, trust authentication for the one local role.
The MLflow tracking server runs on it (`mlflow.tracking_uri` then points at that server); an
existing database is used by URL instead.

initdb refuses to run as root, so as root the cluster's commands run as the `postgres` user (Debian's
package creates it) on a directory handed to that user; as anyone else they run as that user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from heartgate.core.errors import HeartgateError

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
ROLE = "heartgate"
START_TIMEOUT_S = 60


class PostgresError(HeartgateError):
    """The private PostgreSQL cluster could not be created, started or stopped."""


@dataclass(frozen=True)
class PostgresServer:
    """An existing PostgreSQL server (its password, if any, in PGPASSWORD: never in a URL)."""

    host: str
    port: int
    role: str = ROLE

    @classmethod
    def from_url(cls, url: str) -> PostgresServer:
        """postgresql://USER@HOST:PORT"""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or parts.password:
            raise PostgresError(f"stack.postgres_url must look like postgresql://USER@HOST:PORT (password in PGPASSWORD), got {parts.scheme}://…")
        return cls(host=parts.hostname, port=parts.port or 5432, role=parts.username or ROLE)

    def url(self, database: str, driver: str = "postgresql") -> str:
        """A SQLAlchemy URL: `postgresql` (psycopg 3) for MLflow, `postgresql+asyncpg` for Prefect."""
        return f"{driver}://{self.role}@{self.host}:{self.port}/{database}"

    def start(self) -> None:
        """Someone else runs it: only check that it answers."""
        import psycopg

        try:
            psycopg.connect(self.url("postgres"), connect_timeout=10).close()
        except psycopg.Error as exc:
            raise PostgresError(f"PostgreSQL at {self.host}:{self.port} refused {self.role}: {str(exc).strip().splitlines()[-1]}") from None

    def stop(self) -> None:
        """Someone else runs it."""

    def create_database(self, name: str) -> None:
        """Create `name` unless it exists."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{name}"')


@dataclass(frozen=True)
class PostgresCluster(PostgresServer):
    """A private cluster: created on first start under `data_dir`."""

    data_dir: Path = Path()
    bin_dir: Path = POSTGRES_BIN

    def _run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        binary = self.bin_dir / tool
        if not binary.is_file():
            raise PostgresError(f"{binary} not found: install Debian's postgresql-15 (apt-get install postgresql)")
        command = [str(binary), *args]
        if os.geteuid() == 0:  # initdb and postgres refuse root
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
            errors = [line for line in lines if "error" in line.lower() or "FATAL" in line] or lines
            raise PostgresError(f"{tool} failed for {self.data_dir}: {errors[-1] if errors else f'exit code {result.returncode}'}")
        return result

    def _hand_over(self) -> None:
        """As root: the data directory belongs to the postgres user, mode 0700 (initdb insists)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if os.geteuid() == 0:
            closed = [parent for parent in self.data_dir.resolve().parents if not parent.stat().st_mode & 0o001]
            if closed:
                raise PostgresError(
                    f"the postgres user cannot reach {self.data_dir}: {closed[0]} is closed to other users "
                    f"(mode {closed[0].stat().st_mode & 0o777:o}); put the cluster under a directory they can traverse"
                )
            shutil.chown(self.data_dir, "postgres", "postgres")

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists() and self._ready()

    def _ready(self) -> bool:
        result = subprocess.run([str(self.bin_dir / "pg_isready"), "-h", self.host, "-p", str(self.port), "-q"], capture_output=True, timeout=10)
        return result.returncode == 0

    def start(self) -> None:
        """Create the cluster on first use, then start it (a no-op when it already runs)."""
        if self.running():
            return
        self._hand_over()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "-U", ROLE, "--auth=trust", "-E", "UTF8", "--no-instructions")
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses={self.host}"
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.data_dir / "server.log"), "-w", "start")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready():
            if time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL at {self.host}:{self.port} did not become ready (see {self.data_dir / 'server.log'})")
            time.sleep(0.2)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

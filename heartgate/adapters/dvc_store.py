"""A DVC repository (no git) under the state dir that versions the dataset and the split.

`commit()` is all-or-nothing: files are validated before they get here, written next to their
target and renamed into place, added and pushed; if add or push fails, the previous versions of
the files and their `.dvc` records are put back, so no half-written data version is left behind.
It holds the repository's lock from the first write to the push, so concurrent runs queue.

Readers never use the workspace files (the next run rewrites them): `TrackedFile.path` is the
cache object named by the md5, and `read_verified` checks the bytes against that md5.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from heartgate.adapters.state import StatePaths
from heartgate.core.config import HeartgateConfig
from heartgate.core.errors import DataSourceError, DataValidationError

if TYPE_CHECKING:  # DVC is imported where a repository is opened, not with this module
    from dvc.repo import Repo
from heartgate.core.quiet import quiet_logger

REMOTE_NAME = "store"
INIT_LOCK = ".heartgate-init.lock"


@dataclass(frozen=True)
class TrackedFile:
    path: Path  # the cache object: content-addressed, never rewritten
    md5: str  # DVC's md5 of the file: the data version
    previous_md5: str | None = None  # the version tracked before this commit (None: the first)


def read_verified(path: Path, md5: str) -> bytes:
    """The bytes of a content-addressed file, checked against the md5 that names them."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise DataValidationError(f"data version {md5} is missing from the DVC cache ({path})") from None
    if hashlib.md5(content).hexdigest() != md5:
        raise DataValidationError(f"{path} does not match its md5 {md5}: the DVC cache is corrupted")
    return content


def dvc_record(path: Path) -> Path:
    return path.with_name(path.name + ".dvc")


def read_md5(path: Path) -> str | None:
    """The md5 DVC recorded for `path`, or None when it is not tracked yet."""
    record = dvc_record(path)
    if not record.exists():
        return None
    return yaml.safe_load(record.read_text())["outs"][0]["md5"]


class DvcStore:
    def __init__(self, workspace: Path, remote_url: str) -> None:
        self.workspace = workspace
        self.remote_url = remote_url

    @classmethod
    def for_config(cls, config: HeartgateConfig) -> DvcStore:
        paths = StatePaths(config.state_root)
        return cls(paths.dvc_workspace, config.data.remote or str(paths.dvc_remote))

    def object_path(self, md5: str) -> Path:
        """Where DVC's local cache keeps the file with this md5."""
        return self.workspace / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]

    def _repo(self) -> Repo:
        from dvc.repo import Repo

        self.workspace.mkdir(parents=True, exist_ok=True)
        # Two runs on a new state dir: one initializes and writes the remote, the other waits.
        with (self.workspace / INIT_LOCK).open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (self.workspace / ".dvc").is_dir():
                with quiet_logger("dvc"):  # "Initialized DVC repository." twice, on stdout and in the log
                    Repo.init(str(self.workspace), no_scm=True)
            repo = Repo(str(self.workspace), _wait_for_lock=True)
            with repo.config.edit() as conf:
                conf["remote"][REMOTE_NAME] = {"url": self.remote_url}
                conf["core"]["remote"] = REMOTE_NAME
        return repo

    def commit(self, files: Mapping[str, bytes]) -> dict[str, TrackedFile]:
        """Track `files` (name -> content) as the new version and push it to the remote."""
        from dvc.repo import lock_repo

        md5s = {name: hashlib.md5(content).hexdigest() for name, content in files.items()}
        repo = self._repo()
        try:
            with lock_repo(repo):  # another run's write must not land between ours and its add
                previous = {name: read_md5(self.workspace / name) for name in files}
                self._write_add_push(repo, files, md5s)
        finally:
            repo.close()
        return {name: TrackedFile(self.object_path(md5), md5, previous[name]) for name, md5 in md5s.items()}

    def _write_add_push(self, repo: Repo, files: Mapping[str, bytes], md5s: Mapping[str, str]) -> None:
        targets = {name: self.workspace / name for name in files}
        changed = {name: content for name, content in files.items() if read_md5(targets[name]) != md5s[name] or not self.object_path(md5s[name]).exists()}
        backups = {name: _snapshot(targets[name]) for name in changed}
        try:
            for name, content in changed.items():
                _atomic_write(targets[name], content)
            if changed:
                repo.add([str(targets[name]) for name in changed])
                repo._reset()  # under one lock DVC keeps the stage index it read before the add
            repo.push()
        except Exception as exc:
            for name, snapshot in backups.items():
                _restore(targets[name], snapshot)
            raise DataSourceError(
                f"could not version the data with DVC (remote {self.remote_url}): "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; nothing was changed"
            ) from exc

    def restore(self, md5: str) -> Path:
        """The cache object with this md5, fetched from the remote when this machine lacks it:
        any data version a lineage names can be read anywhere the remote is reachable."""
        target = self.object_path(md5)
        if target.exists():
            return target
        repo = self._repo()
        try:
            remote = repo.cloud.get_remote_odb(REMOTE_NAME)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            remote.fs.get_file(remote.oid_to_path(md5), str(partial))
        except FileNotFoundError:
            raise DataValidationError(f"data version {md5} is neither in the DVC cache nor in the remote {self.remote_url}") from None
        finally:
            repo.close()
        read_verified(partial, md5)
        partial.replace(target)
        return target

    def remote_has(self, md5: str) -> bool:
        """Whether a local-directory remote holds the object with this md5 (for checks and tests)."""
        return (Path(self.remote_url) / "files" / "md5" / md5[:2] / md5[2:]).exists()


def _atomic_write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)


@dataclass(frozen=True)
class _Snapshot:
    content: bytes | None
    record: bytes | None


def _snapshot(path: Path) -> _Snapshot:
    record = dvc_record(path)
    return _Snapshot(
        content=path.read_bytes() if path.exists() else None,
        record=record.read_bytes() if record.exists() else None,
    )


def _restore(path: Path, snapshot: _Snapshot) -> None:
    for target, content in ((path, snapshot.content), (dvc_record(path), snapshot.record)):
        if content is None:
            target.unlink(missing_ok=True)
        else:
            _atomic_write(target, content)

"""Lineage: where a model came from. One record, written as MLflow params/tags and registry
version tags, read back by `heartgate lineage`."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from heartgate.core.config import PROJECT_ROOT


class Lineage(BaseModel):
    model_config = ConfigDict(frozen=True)

    data_md5: str
    split_md5: str
    data_source: str
    git_commit: str
    config_hash: str

    @classmethod
    def of_run(cls, data_md5: str, split_md5: str, data_source: str, config_hash: str) -> Lineage:
        """The lineage of a model trained now, from this checkout."""
        return cls(data_md5=data_md5, split_md5=split_md5, data_source=data_source, git_commit=git_commit(), config_hash=config_hash)

    def as_tags(self) -> dict[str, str]:
        return {key: str(value) for key, value in self.model_dump().items()}


def timestamp() -> str:
    """Now, as the lineage tags write it (UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def git_commit(repo: Path = PROJECT_ROOT) -> str:
    """HEAD of the project checkout, marked `-dirty` when the tree has uncommitted changes."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head

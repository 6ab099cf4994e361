"""The served process's log writer: `bentoml serve ... | python -m heartgate.adapters.logpipe FILE MAX_BYTES BACKUPS`.

Copies its input to FILE line by line and rotates it (FILE.1 .. FILE.BACKUPS) before it passes
MAX_BYTES, so a server under load never fills the disk. Standard library only: it starts fast and
runs beside the server for as long as the server runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotations only: the library is imported where it is used
    from collections.abc import Iterable


def rotate(path: Path, backups: int) -> None:
    """FILE -> FILE.1 -> ... -> FILE.BACKUPS (the oldest is dropped)."""
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{index + 1}"))
    if backups > 0 and path.exists():
        path.replace(path.with_name(f"{path.name}.1"))
    else:
        path.unlink(missing_ok=True)


def copy_rotating(lines: Iterable[bytes], path: Path, max_bytes: int, backups: int) -> None:
    out = path.open("ab")
    size = out.tell()
    for line in lines:
        if size + len(line) > max_bytes and size > 0:
            out.close()
            rotate(path, backups)
            out, size = path.open("ab"), 0
        out.write(line)
        out.flush()
        size += len(line)
    out.close()


def main(argv: list[str]) -> int:
    path, max_bytes, backups = Path(argv[0]), int(argv[1]), int(argv[2])
    copy_rotating(sys.stdin.buffer, path, max_bytes, backups)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

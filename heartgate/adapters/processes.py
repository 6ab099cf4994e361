"""Processes on this machine, read from /proc: is a recorded pid still the process we started,
and stopping a server with the worker processes it started (in sessions of their own, so a
process-group kill would miss them)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path


def command_line(pid: int) -> str:
    """The process's command line, or "" when there is no such process."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def running_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def is_running(pid: int, marker: str = "") -> bool:
    """True while `pid` runs (and is not a zombie), and its command line holds `marker`: a pid the
    kernel gave to another program since is not ours."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and marker in command_line(pid)


def running_commands() -> list[str]:
    """The command line of every process on this machine."""
    return [command for pid in running_pids() if (command := command_line(pid))]


def pid_in(pidfile: Path, marker: str = "") -> int | None:
    """The pid a pidfile names, if that process still runs (see `is_running`)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_running(pid, marker) else None


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first found, then theirs)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        children = parents.get(queue.pop(), [])
        found += children
        queue += children
    return found


def stop_tree(pid: int, grace_s: float = 10) -> None:
    """TERM the process (a server stops its workers on TERM), then KILL whatever of it is left."""
    tree = descendants(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    for leftover in [pid, *tree]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(leftover, signal.SIGKILL)


def listeners(port: int) -> list[int]:
    """The processes holding a socket that listens on TCP `port` (IPv4 or IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    holders = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) in inodes:
                holders.add(int(fd.parent.parent.name))
        except OSError:
            continue
    return sorted(holders)


def environment_of(pid: int) -> dict[str, str]:
    """The environment a process started with ({} when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def this_process() -> str:
    """`host:pid` of this process, as Prefect's process worker records a run's process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def runs_here(host_and_pid: str | None) -> int | None:
    """The pid of a `host:pid` on this host, else None (another machine's process, or none)."""
    host, _, pid = (host_and_pid or "").rpartition(":")
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None

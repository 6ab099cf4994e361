import subprocess
import sys

from heartgate.adapters.logpipe import copy_rotating


def test_the_log_rotates_before_it_passes_the_limit_and_keeps_n_backups(tmp_path):
    log = tmp_path / "server.log"
    lines = [f"request {i:04d} {'x' * 40}\n".encode() for i in range(100)]  # 54 bytes each
    copy_rotating(iter(lines), log, max_bytes=1000, backups=2)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["server.log", "server.log.1", "server.log.2"]
    assert all((tmp_path / name).stat().st_size <= 1000 for name in files)
    newest_first = [(tmp_path / name).read_bytes() for name in ("server.log", "server.log.1", "server.log.2")]
    kept = b"".join(reversed(newest_first)).splitlines(keepends=True)
    assert kept == lines[-len(kept) :]  # the newest lines, in order, none torn


def test_no_backups_means_the_file_starts_again(tmp_path):
    log = tmp_path / "server.log"
    copy_rotating(iter([b"a" * 60 + b"\n"] * 5), log, max_bytes=100, backups=0)
    assert [p.name for p in tmp_path.iterdir()] == ["server.log"] and log.stat().st_size == 61


def test_it_runs_as_the_pipe_the_server_writes_into(tmp_path):
    log = tmp_path / "server.log"
    subprocess.run([sys.executable, "-m", "heartgate.adapters.logpipe", str(log), "4096", "1"], input=b"one\ntwo\n", check=True, timeout=30)
    assert log.read_bytes() == b"one\ntwo\n"

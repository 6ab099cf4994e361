import os
import socket
import subprocess
import sys
import time

from heartgate.adapters.processes import (
    descendants,
    environment_of,
    is_running,
    listeners,
    pid_in,
    runs_here,
    stop_tree,
    this_process,
)


def test_a_pidfile_names_a_running_process_only_while_it_runs_and_is_ours(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, "HG_PROBE": "1"})
    pidfile = tmp_path / "server.pid"
    pidfile.write_text(str(child.pid))
    assert pid_in(pidfile, "time.sleep") == child.pid
    assert pid_in(pidfile, "bentoml") is None  # the pid is somebody else's program
    assert environment_of(child.pid)["HG_PROBE"] == "1"
    stop_tree(child.pid, grace_s=5)
    child.wait(timeout=10)
    assert not is_running(child.pid) and pid_in(pidfile) is None
    pidfile.write_text("not a pid")
    assert pid_in(pidfile) is None


def test_stop_tree_also_stops_children_in_sessions_of_their_own():
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 20
    while not descendants(parent.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    (child,) = descendants(parent.pid)
    stop_tree(parent.pid, grace_s=0.5)  # the parent ignores nothing, but its child is not in its group
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while is_running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_running(child)


def test_listeners_names_who_holds_a_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert listeners(port) == [os.getpid()]
    assert listeners(port) == []


def test_a_host_and_pid_counts_only_on_this_host():
    assert runs_here(this_process()) == os.getpid()
    assert runs_here("another-host:123") is None and runs_here(None) is None and runs_here("garbage") is None

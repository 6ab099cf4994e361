import subprocess
import sys
import time

import pytest

from heartgate.adapters.locks import LockTimeout, deploy_lock

HOLD = """
import sys, time
from pathlib import Path
from heartgate.adapters.locks import deploy_lock
with deploy_lock("local", Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def hold_in_another_process(state):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_held_lock_times_out_in_one_line_naming_the_holder(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    holder = hold_in_another_process(tmp_path)
    try:
        timed_out = pytest.raises(LockTimeout, match=rf"^heartgate-deploy-local is held by pid {holder.pid} for more than 1s; try again later$")
        with timed_out, deploy_lock("local", tmp_path, timeout_s=1):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    holder = hold_in_another_process(tmp_path)
    holder.kill()  # SIGKILL: no cleanup runs in the holder
    holder.wait()
    started = time.monotonic()
    with deploy_lock("local", tmp_path, timeout_s=5):
        assert time.monotonic() - started < 2

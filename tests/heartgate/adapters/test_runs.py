import subprocess
import sys
from types import SimpleNamespace

from heartgate.adapters.processes import this_process
from heartgate.adapters.runs import gone_process


def flow_run(process, paused=False, reschedule=False, state_type="RUNNING"):
    state_type = "PAUSED" if paused else state_type
    state = SimpleNamespace(type=SimpleNamespace(value=state_type), is_paused=lambda: paused, state_details=SimpleNamespace(pause_reschedule=reschedule))
    return SimpleNamespace(state=state, infrastructure_pid=process)


def test_a_run_whose_process_on_this_host_is_gone_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    gone = this_process().rsplit(":", 1)[0] + f":{child.pid}"
    assert gone_process(flow_run(gone)) == gone
    assert gone_process(flow_run(gone, paused=True)) == gone  # paused in place: its process waited for the answer
    assert gone_process(flow_run(gone, paused=True, reschedule=True)) is None  # suspended: no process, by design
    assert gone_process(flow_run(gone, state_type="COMPLETED")) is None  # finished: nothing to end


def test_a_live_run_and_another_hosts_run_are_left_alone():
    assert gone_process(flow_run(this_process())) is None
    assert gone_process(flow_run("some-other-host:1")) is None
    assert gone_process(flow_run(None)) is None

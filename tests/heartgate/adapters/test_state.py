"""A worker's flow run never falls back to its own machine's registry or data remote by accident."""

from __future__ import annotations

import os

import pytest

from heartgate.adapters.state import StatePaths, activate, local_state_refusal
from heartgate.core.config import load_config


def config(tmp_path, **overrides):
    return load_config(overrides={"state_dir": str(tmp_path), **overrides})


def test_a_run_outside_a_deployment_may_use_the_state_dir(tmp_path):
    assert local_state_refusal(config(tmp_path), deployment=None, api_url="http://127.0.0.1:4200/api") is None


def test_a_deployment_run_with_local_state_is_refused_naming_the_settings(tmp_path):
    message = local_state_refusal(config(tmp_path), deployment="manual", api_url="http://10.0.0.5:4200/api")
    assert message.startswith("flow run of deployment manual on http://10.0.0.5:4200/api would use this worker's own ")
    assert f"the SQLite registry {tmp_path / 'mlflow' / 'mlflow.db'} (set mlflow.tracking_uri)" in message
    assert f"the local DVC remote {tmp_path / 'dvc-remote'} (set data.remote)" in message
    assert message.endswith("or stack.allow_local_state: true on a single machine")
    only_data = local_state_refusal(config(tmp_path, mlflow={"tracking_uri": "http://mlflow:5000"}), "manual", None)
    assert "SQLite" not in only_data and "(set data.remote)" in only_data


def test_shared_settings_or_the_single_machine_opt_in_pass(tmp_path):
    shared = config(tmp_path, mlflow={"tracking_uri": "http://mlflow:5000"}, data={"source": "x", "remote": "s3://b/p"})
    assert local_state_refusal(shared, "nightly", None) is None
    assert local_state_refusal(config(tmp_path, stack={"allow_local_state": True}), "nightly", None) is None


def test_a_state_dir_that_cannot_be_written_is_one_line_naming_the_path(tmp_path):
    from heartgate.adapters.state import StateDirError, StatePaths, require_writable

    blocked = tmp_path / "state"
    blocked.write_text("a file where the state dir should be")
    with pytest.raises(StateDirError, match=rf"^cannot write the state dir: {blocked}: Not a directory$"):
        require_writable(StatePaths(blocked))


@pytest.mark.integration
def test_a_read_only_state_dir_stops_the_cli_in_one_line(tmp_path):
    """A read-only bind mount (a private mount namespace: root ignores file modes)."""
    import shutil
    import subprocess
    import sys

    state = tmp_path / "state"
    state.mkdir()
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to mount the state dir read-only")
    script = f"mount --bind {state} {state} && mount -o remount,bind,ro {state} && exec {sys.executable} -m heartgate.cli status --state-dir {state}"
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [f"heartgate: error: cannot write the state dir: {state}/tmp: Read-only file system"]


def test_activate_gives_prefects_temporary_server_time_to_start_unless_the_user_chose(tmp_path, monkeypatch):
    name = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    for users, expected in (({}, "90"), ({name: "15"}, "15")):
        environment = {key: value for key, value in os.environ.items() if key != name} | users
        monkeypatch.setattr(os, "environ", environment)  # activate's changes stay in this test
        activate(StatePaths(tmp_path / "state"))
        assert os.environ[name] == expected

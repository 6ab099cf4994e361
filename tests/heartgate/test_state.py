"""A worker's flow run never falls back to its own machine's registry or data remote by accident."""

from __future__ import annotations

from heartgate.config import load_config
from heartgate.state import local_state_refusal


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

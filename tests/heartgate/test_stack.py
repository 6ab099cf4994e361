from heartgate.core.config import env_overrides
from heartgate.stack import override_variables


def test_overrides_reach_the_workers_flows_as_config_variables():
    overrides = {"serve.port": 3100, "train.hidden_units": [8, 4], "data.sha256": None, "data.source": "/a b.csv"}
    variables = override_variables(overrides)
    assert variables["HEARTGATE_SERVE__PORT"] == "3100"
    assert env_overrides(variables) == {
        "serve": {"port": 3100},
        "train": {"hidden_units": [8, 4]},
        "data": {"sha256": None, "source": "/a b.csv"},
    }


def server_config(**stack):
    from heartgate.core.config import load_config

    return load_config(profile="server", overrides={"stack": stack} if stack else None)


def test_the_server_profile_layers_configs_server_yaml():
    config = server_config()
    assert (config.stack.profile, config.stack.workers, config.approval.allow_auto_approve) == ("server", 2, False)
    assert config.mlflow.tracking_uri and config.data.remote.startswith("s3://")


def test_an_unknown_profile_is_one_line_naming_the_known_ones():
    import pytest

    from heartgate.core.config import load_config
    from heartgate.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^unknown profile 'prod': expected one of default, server \(configs/NAME.yaml\)$"):
        load_config(profile="prod")


def test_deployments_carry_the_profile_and_the_config_file_by_its_path_in_the_repository(tmp_path):
    from heartgate.core.config import PROJECT_ROOT
    from heartgate.stack import deploy_variables

    inside = deploy_variables(server_config(), "remote-file-system/heartgate-results", str(PROJECT_ROOT / "configs" / "server.yaml"))
    assert (inside["HGSTACK_PROFILE"], inside["HGSTACK_CONFIG_FILE"]) == ("server", "configs/server.yaml")
    outside = deploy_variables(server_config(), "x/y", str(tmp_path / "team.yaml"))
    assert outside["HGSTACK_CONFIG_FILE"] == str(tmp_path / "team.yaml")
    embedded = deploy_variables(server_config(profile="embedded"), "x/y", None)
    assert (embedded["HGSTACK_PROFILE"], embedded["HGSTACK_CONFIG_FILE"]) == ("", "")


def test_without_a_repository_workers_run_this_checkout_and_with_one_they_clone_it(tmp_path):
    import yaml

    from heartgate.core.config import PROJECT_ROOT
    from heartgate.stack import prefect_file

    local = prefect_file(server_config(git_repository=None).model_copy(update={"state_dir": tmp_path}))
    assert yaml.safe_load(local.read_text())["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}}]
    cloned = prefect_file(server_config(git_repository="file:///srv/heartgate.git").model_copy(update={"state_dir": tmp_path / "b"}))
    assert list(yaml.safe_load(cloned.read_text())["pull"][0]) == ["prefect.deployments.steps.git_clone"]


def test_the_watchdog_runs_at_the_configured_interval(tmp_path):
    import yaml

    from heartgate.stack import prefect_file

    config = server_config(git_repository=None).model_copy(update={"state_dir": tmp_path})
    config = config.model_copy(update={"stack": config.stack.model_copy(update={"watchdog_interval_s": 15})})
    deployments = {d["name"]: d for d in yaml.safe_load(prefect_file(config).read_text())["deployments"]}
    assert deployments["watchdog"]["schedules"] == [{"interval": 15, "active": True}]
    assert deployments["watchdog"]["entrypoint"] == "flows/reconcile.py:reconcile_production"
    assert deployments["watchdog"]["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}


def test_server_set_up_refuses_set_overrides_in_one_line():
    import pytest

    from heartgate.stack import StackError, up

    with pytest.raises(StackError, match=r"takes its settings from the config files \(--config\).*\(train.epochs\)$"):
        up(server_config(), {"train.epochs": 2})

"""Deploy targets are found, not listed: one module each under heartgate/serving/targets/, each with its
Terraform root, chosen in one place by `deploy.target`."""

from __future__ import annotations

import pytest

from heartgate.adapters.dependencies import DependencyDown, require
from heartgate.core.config import PROJECT_ROOT, load_config
from heartgate.core.errors import ConfigError
from heartgate.release.parameters import RunParameters
from heartgate.serving.targets import check_config, target_for, target_names, worker_credentials
from heartgate.serving.targets.aws.target import AwsLambdaTarget
from heartgate.serving.targets.base import DeployTarget
from heartgate.serving.targets.local import LocalTarget
from tests.heartgate.serving.targets.edge import edge_target


def test_each_target_module_is_found_with_its_terraform_root():
    assert target_names() == ["aws", "local"]
    for name in target_names():
        root = PROJECT_ROOT / "infra" / "terraform" / "envs" / name
        assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf"} <= {p.name for p in root.iterdir()}, name


def test_the_config_chooses_the_target(tmp_path):
    local = target_for(load_config(overrides={"state_dir": str(tmp_path)}))
    aws = target_for(load_config(overrides={"state_dir": str(tmp_path), "deploy": {"target": "aws"}}))
    assert isinstance(local, LocalTarget) and isinstance(aws, AwsLambdaTarget)
    assert local.current() is None  # nothing recorded in a new state dir (aws reads S3: tests/flows/test_aws.py)
    assert local.backend_config() == {"path": str(tmp_path / "terraform" / "local" / "terraform.tfstate")}
    assert aws.backend_config()["use_lockfile"] == "true"


def test_an_unknown_target_is_one_line_naming_the_choices(tmp_path):
    config = load_config(overrides={"state_dir": str(tmp_path), "deploy": {"target": "gcp"}})
    with pytest.raises(ConfigError, match=r"^unknown deploy target 'gcp' \(available: aws, local\)$"):
        target_for(config)


@pytest.fixture
def edge():
    """The test-only target of edge.py, registered for one test and dropped after it."""
    yield edge_target()
    del DeployTarget.registered["edge"]
    assert target_names() == ["aws", "local"]


def edge_config(tmp_path, **edge_section):
    return load_config(overrides={"state_dir": str(tmp_path), "deploy": {"target": "edge", "edge": edge_section}})


def test_a_new_target_declares_its_own_section_and_everything_else_finds_it(edge, tmp_path):
    assert target_names() == ["aws", "edge", "local"]
    target = target_for(edge_config(tmp_path, store=str(tmp_path / "device")))
    assert isinstance(target, edge) and target.settings.store == tmp_path / "device"
    choices = RunParameters(target="edge")  # the Run form's field takes it, and lists it
    assert choices.config_overrides() == {"deploy.target": "edge"}
    assert "edge" in RunParameters.model_json_schema()["properties"]["target"]["enum"]
    assert worker_credentials({"EDGE_TOKEN": "t0k", "AWS_ACCESS_KEY_ID": "AKIA", "HOME": "/root"}) == {"EDGE_TOKEN": "t0k", "AWS_ACCESS_KEY_ID": "AKIA"}
    (dependency,) = target.dependencies(None)
    with pytest.raises(DependencyDown, match=rf"^the edge store at {tmp_path}/device did not answer for 0.1s"):
        require([dependency], wait_s=0.1)


def test_a_wrong_key_in_a_target_section_is_one_line_naming_it(edge, tmp_path):
    with pytest.raises(ConfigError, match=r"^invalid config value deploy\.edge\.stor: Extra inputs are not permitted$"):
        target_for(edge_config(tmp_path, store="/x", stor="/y"))
    with pytest.raises(ConfigError, match=r"^invalid config value deploy\.edge\.store: Field required$"):
        check_config(edge_config(tmp_path))
    with pytest.raises(ConfigError, match=r"^invalid config value deploy\.aws\.regoin: Extra inputs are not permitted$"):
        check_config(load_config(overrides={"state_dir": str(tmp_path), "deploy": {"aws": {"regoin": "eu-west-1"}}}))
    with pytest.raises(ConfigError, match=r"^invalid config value deploy\.gcp: no deploy target is named 'gcp' \(available: aws, edge, local\)$"):
        check_config(load_config(overrides={"state_dir": str(tmp_path), "deploy": {"gcp": {"project": "p"}}}))


def test_the_key_policy_is_the_targets(edge, tmp_path, monkeypatch):
    monkeypatch.delenv("HEARTGATE_API_KEY", raising=False)
    config = edge_config(tmp_path, store="/x")
    with pytest.raises(ConfigError, match=r"^serve.api_key is required for the edge target but HEARTGATE_API_KEY is not set in the environment$"):
        target_for(config).require_api_key()  # serve.api_key=auto: only a target that says it is loopback-only goes without
    assert not target_for(config.model_copy(update={"deploy": config.deploy.model_copy(update={"target": "local"})})).api_key_required()


def test_the_aws_target_needs_its_state_bucket(tmp_path):
    aws = target_for(load_config(overrides={"state_dir": str(tmp_path), "deploy": {"target": "aws", "aws": {"state_bucket": "team-tf"}}}))
    assert [(d.name, d.url) for d in aws.dependencies("http://127.0.0.1:9")] == [("S3 (the Terraform state bucket)", "s3://team-tf via http://127.0.0.1:9")]
    assert aws.worker_credentials({"AWS_ACCESS_KEY_ID": "AKIA", "EDGE_TOKEN": "t0k"}) == {"AWS_ACCESS_KEY_ID": "AKIA"}

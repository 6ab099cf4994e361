"""What a person chooses when pressing Run on train-and-deploy: a typed model, so the Prefect UI
draws a form with a described field each (and a schedule or the CLI sends the same fields).

Every choice defaults to "as the config says", so the nightly run and an untouched form use the
team's config; `overrides` stays for any other config value, by its dotted key. There is no way
to skip the approval here: anyone who may press Run may set these (auto-approve is the CLI's demo
mode only, heartgate.release.approval).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_validator, model_serializer

from heartgate.core.errors import ConfigError
from heartgate.serving.targets import require_target_name, target_names

FROM_CONFIG = "config"


def _empty_means_config(schema: dict[str, Any]) -> None:
    """An optional number drawn as the plain number input it is, left empty for the config's value
    (pydantic writes `anyOf: [number, null]`, which Prefect's form draws as a type picker)."""
    schema.update(next(option for option in schema.pop("anyOf") if option.get("type") != "null"))
    schema.pop("default", None)


def _target_choices(schema: dict[str, Any]) -> None:
    """The Run form draws the registered targets as a list to pick from (the server checks a
    value against it too)."""
    schema["enum"] = [FROM_CONFIG, *target_names()]


class RunParameters(BaseModel):
    """Choices for one run; each left at its default keeps the config's value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"title": "Run choices"})

    epochs: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        title="Training epochs",
        json_schema_extra=_empty_means_config,
        description="How many epochs the autoencoder trains (empty: the config's train.epochs, 100 by default).",
    )
    threshold_rule: Literal["config", "max_f1", "normal_quantile"] = Field(
        default=FROM_CONFIG,
        title="Threshold rule",
        description=(
            "How the alarm threshold is picked on the validation split: max_f1 (best F1, abnormal = positive) "
            "or normal_quantile (a quantile of the normal beats' errors); config: the config's threshold.rule."
        ),
    )
    gate_margin: float | None = Field(
        default=None,
        ge=0,
        le=1.0,
        title="Gate margin",
        json_schema_extra=_empty_means_config,
        description="The candidate must beat production by more than this on precision and recall (empty: the config's gate.margin, 0 by default).",
    )
    target: str = Field(
        default=FROM_CONFIG,
        title="Deploy target",
        json_schema_extra=_target_choices,
        description="Where an approved candidate is deployed: a deploy target of heartgate (local: the embedded default); config: the config's deploy.target.",
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        title="Other config values",
        description=('Any other config value by its dotted key, e.g. {"train.batch_size": 64, "gate.bootstrap": true}. The fields above win over these.'),
    )

    @model_serializer(mode="wrap")
    def _without_empty_fields(self, serialize: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An empty field is left out (the form's default, a schedule's parameters): "use the config"."""
        return {name: value for name, value in serialize(self).items() if value is not None}

    @field_validator("target")
    @classmethod
    def _a_registered_target(cls, target: str) -> str:
        try:
            return target if target == FROM_CONFIG else require_target_name(target)
        except ConfigError as unknown:
            raise ValueError(str(unknown)) from None

    def config_overrides(self) -> dict[str, Any]:
        """Dotted config keys: `overrides`, then every field that was changed from its default."""
        chosen: dict[str, Any] = dict(self.overrides)
        if self.epochs is not None:
            chosen["train.epochs"] = self.epochs
        if self.threshold_rule != FROM_CONFIG:
            chosen["threshold.rule"] = self.threshold_rule
        if self.gate_margin is not None:
            chosen["gate.margin"] = self.gate_margin
        if self.target != FROM_CONFIG:
            chosen["deploy.target"] = self.target
        return chosen

"""The serving API's contract, declared once as pydantic models: the BentoML service's endpoints
take and return these (so `/docs.json`, Swagger's "Try it out", `/schema.json` and BentoML's
clients all come from them), and `service.schema` enforces the same limits on every request (a
test checks the two agree on generated input).

The page text of `/docs` is `service/API.md` (the bento's description).
The served process imports this module, the Lambda handler does not (pydantic costs its cold
start): it runs `service.schema` alone.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, Strict

from heartgate.core.ecg import SAMPLES_PER_BEAT
from service.schema import MAX_ABS_SAMPLE

# A synthetic beat (not ECG5000 data) for the examples: one smooth period of 140 z-scores.
EXAMPLE_BEAT = [
    round(2 * math.sin(2 * math.pi * i / SAMPLES_PER_BEAT) - 0.5 * math.cos(6 * math.pi * i / SAMPLES_PER_BEAT), 4) for i in range(SAMPLES_PER_BEAT)
]

# Strict: a JSON number only (not true, not "0.5"), as service.schema checks.
Sample = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-MAX_ABS_SAMPLE, le=MAX_ABS_SAMPLE)]
Beat = Annotated[
    list[Sample],
    Field(min_length=SAMPLES_PER_BEAT, max_length=SAMPLES_PER_BEAT, description=f"One heartbeat: {SAMPLES_PER_BEAT} z-normalised samples."),
]


class PredictRequest(BaseModel):
    """Beats to score."""

    model_config = ConfigDict(json_schema_extra={"example": {"beats": [EXAMPLE_BEAT]}})

    beats: list[Beat] = Field(min_length=1, description="One or more beats (at most serve.max_rows, 1,024 by default).")


class SeedRequest(RootModel[list[Beat]]):
    """The seed tutorial's client: a bare array of beats (its answer is a bare array of booleans)."""

    model_config = ConfigDict(json_schema_extra={"example": [EXAMPLE_BEAT]})


class Prediction(BaseModel):
    anomaly: bool = Field(description="The reconstruction error is above the threshold.")
    error: float = Field(description="Mean squared reconstruction error of the beat.")


class PredictResponse(BaseModel):
    """One prediction per beat, in order, with the threshold and the model version that made them."""

    predictions: list[Prediction]
    threshold: float
    model_version: str = Field(description="The MLflow registry version being served.")


class SeedResponse(RootModel[list[bool]]):
    """For a bare-array request: one boolean per beat, true = anomaly."""


class ModelMetadata(BaseModel):
    """The served model: registry version, threshold, lineage and test metrics (as packaged)."""

    model_config = ConfigDict(extra="allow")

    model_name: str
    model_version: str
    threshold: float
    lineage: dict[str, Any] = Field(default_factory=dict)


class ApiError(BaseModel):
    error: str = Field(description="What is wrong with the request, in one line.")

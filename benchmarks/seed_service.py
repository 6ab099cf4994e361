"""The seed tutorial's serving style, for comparison only: BentoML's typed API around the Keras
model, `model.predict` per request. Not part of heartgate; benchmarks/serve.py starts it."""

from __future__ import annotations

import os

import bentoml
import numpy as np


@bentoml.service(name="seed-style", workers=1)
class SeedStyle:
    def __init__(self) -> None:
        import mlflow

        mlflow.set_tracking_uri(os.environ["SEED_TRACKING_URI"])
        self.model = mlflow.keras.load_model(os.environ["SEED_MODEL_URI"])
        self.threshold = float(os.environ["SEED_THRESHOLD"])

    @bentoml.api
    def predict(self, beats: list[list[float]]) -> dict:
        errors = self.model.predict(np.asarray(beats, dtype=np.float32), verbose=0).reshape(-1)
        return {"predictions": [{"anomaly": bool(e > self.threshold), "error": float(e)} for e in errors]}

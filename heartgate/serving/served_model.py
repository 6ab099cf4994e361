"""The served model as build-bento packages it: the ONNX scorer plus metadata.json (registry
version, threshold, lineage, test metrics, and the smoke-test beats chosen at evaluation).

Shared by the service, the Lambda handler and the packagers, so it imports only numpy and
onnxruntime (through the scorer): loading it never imports TensorFlow, pydantic or MLflow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heartgate.serving.scorer import OnnxScorer

ONNX_FILE = "scorer.onnx"
METADATA_FILE = "metadata.json"
BENTO_MODEL_NAME = "heartgate-ecg"  # the bento model store entry: heartgate-ecg:v<version>
BENTO_NAME = "heartgate"  # the bento: heartgate:v<version>
SMOKE_KEY = "smoke_test"  # in metadata.json, not served: the beats a deploy is smoke-tested with


@dataclass(frozen=True)
class ServedModel:
    scorer: OnnxScorer
    packaged: dict[str, Any]  # metadata.json as written by build-bento

    @classmethod
    def load(cls, directory: Path) -> ServedModel:
        packaged = json.loads((directory / METADATA_FILE).read_text())
        return cls(scorer=OnnxScorer(directory / ONNX_FILE), packaged=packaged)

    @property
    def metadata(self) -> dict[str, Any]:
        """What /metadata returns."""
        return {key: value for key, value in self.packaged.items() if key != SMOKE_KEY}

    @property
    def threshold(self) -> float:
        return float(self.packaged["threshold"])

    @property
    def version(self) -> str:
        return str(self.packaged["model_version"])

    def errors(self, beats: np.ndarray) -> np.ndarray:
        return self.scorer.errors(beats)

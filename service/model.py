"""The served model: the ONNX scorer plus its metadata (registry version, threshold, lineage),
as packaged by build-bento. Loading it never imports TensorFlow."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heartgate.scorer import OnnxScorer

ONNX_FILE = "scorer.onnx"
METADATA_FILE = "metadata.json"


@dataclass(frozen=True)
class ServedModel:
    scorer: OnnxScorer
    metadata: dict[str, Any]

    @classmethod
    def load(cls, directory: Path) -> ServedModel:
        metadata = json.loads((directory / METADATA_FILE).read_text())
        return cls(scorer=OnnxScorer(directory / ONNX_FILE), metadata=metadata)

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    @property
    def version(self) -> str:
        return str(self.metadata["model_version"])

    def errors(self, beats: np.ndarray) -> np.ndarray:
        return self.scorer.errors(beats)

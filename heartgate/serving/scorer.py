"""Scores beats with the exported ONNX model: raw beats in, one reconstruction error per beat out.

The scaling and the error computation are inside the ONNX graph, so this is all a consumer (the
evaluation, the gate, the service) needs; it never imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heartgate.core.ecg import SAMPLES_PER_BEAT


class OnnxScorer:
    def __init__(self, onnx_path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def errors(self, beats: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(beats, dtype=np.float32).reshape(-1, SAMPLES_PER_BEAT)
        (errors,) = self._session.run(None, {self._input: batch})
        return errors.reshape(-1).astype(np.float64)

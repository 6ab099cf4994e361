"""Trained models kept by what went into them (`train.cache_dir`, off by default).

Training is deterministic given its inputs (seeded weights and shuffling, deterministic ops), so a
run whose training would see the same beats, with the same training settings, code and library
versions, gets exactly the model an earlier training produced. With a cache directory set, that
run reuses the files instead of training again: the MLflow run still gets its own copy of the
model, the ONNX export and the loss curve, tagged with the entry it came from. The test suite
uses it to train each configuration once per session; a team may point it at a directory on a
CI runner. The entry is what serves if the gate and a person pass it, so the directory must be
one only heartgate writes: each file is checked against the sha256 the entry recorded, and an
entry that does not match is trained again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

# What decides the model besides the beats and TrainConfig: the code that builds, trains and
# exports it, and the libraries doing it.
TRAINING_CODE = Path(__file__).with_name("training.py")
TRAINING_LIBRARIES = ("tensorflow-cpu", "keras", "numpy", "onnx", "tf2onnx", "mlflow")
ENTRY_FILE = "entry.json"


@dataclass(frozen=True)
class TrainedFiles:
    """A training's output as files: the MLflow keras model directory (not yet tied to any run),
    the ONNX scorer, and its figures."""

    model_dir: Path
    onnx: Path
    history: dict[str, list[float]]
    scaling: tuple[float, float]  # (low, high) of the min-max scaling
    normal_beats: int
    train_seconds: float


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in TRAINING_LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return versions


def training_key(train_settings: dict, *arrays: np.ndarray) -> str:
    """sha256 of everything a training sees: the arrays it is given, its settings, the training
    code and the library versions."""
    digest = hashlib.sha256()
    described = {"settings": train_settings, "libraries": _library_versions(), "code": hashlib.sha256(TRAINING_CODE.read_bytes()).hexdigest()}
    digest.update(json.dumps(described, sort_keys=True).encode())
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype}{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


def _file_hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != ENTRY_FILE
    }


@dataclass(frozen=True)
class TrainingCache:
    root: Path

    def get(self, key: str) -> TrainedFiles | None:
        """The entry for `key`, or None when there is none or its files are not what it recorded."""
        entry = self.root / key
        try:
            record = json.loads((entry / ENTRY_FILE).read_text())
        except (OSError, ValueError):
            return None
        if record.get("files") != _file_hashes(entry):
            return None
        return TrainedFiles(
            model_dir=entry / "model",
            onnx=entry / "scorer.onnx",
            history=record["history"],
            scaling=tuple(record["scaling"]),
            normal_beats=record["normal_beats"],
            train_seconds=record["train_seconds"],
        )

    def put(self, key: str, trained: TrainedFiles) -> None:
        """Keep `trained` under `key`, whole or not at all: written beside, then renamed into place
        (another process that trained the same key first wins; both wrote the same model)."""
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{uuid.uuid4().hex}-", dir=self.root))
        try:
            shutil.copytree(trained.model_dir, scratch / "model")
            shutil.copyfile(trained.onnx, scratch / "scorer.onnx")
            record = {
                "history": trained.history,
                "scaling": list(trained.scaling),
                "normal_beats": trained.normal_beats,
                "train_seconds": trained.train_seconds,
                "files": _file_hashes(scratch),
            }
            (scratch / ENTRY_FILE).write_text(json.dumps(record, sort_keys=True))
            os.rename(scratch, self.root / key)
        except OSError:
            if not (self.root / key).is_dir():
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

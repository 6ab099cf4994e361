"""split-data: the fixed, versioned train/validation/test split.

Each row is keyed on its content (label and sample values, seeded), so the split does not depend on
file order. Within each label the rows are ordered by key and cut 60/20/20: stratified and stable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prefect import task
from pydantic import BaseModel, ConfigDict

from heartgate.config import HeartgateConfig, SplitConfig
from heartgate.dvc_store import DvcStore
from heartgate.ecg import EcgTable
from heartgate.errors import DataValidationError, retry_only_transient
from tasks.pull_data import DataVersion, load_table

SPLIT_FILE = "splits.csv"
SPLITS = ("train", "validation", "test")
KEY_HEX_CHARS = 16


class SplitVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    md5: str
    counts: dict[str, int]


@dataclass(frozen=True)
class SplitArrays:
    """What each step may see. Training sees normal train beats only; the threshold sees validation."""

    train_normal: np.ndarray
    validation: np.ndarray
    validation_abnormal: np.ndarray
    test: np.ndarray
    test_abnormal: np.ndarray


def row_keys(table: EcgTable, seed: int) -> np.ndarray:
    """A seeded content hash per row: label plus the float64 bytes of its samples."""
    salt = str(seed).encode()
    keys = [
        hashlib.sha256(salt + bytes([label]) + beat.tobytes()).hexdigest()[:KEY_HEX_CHARS]
        for label, beat in zip(table.labels.tolist(), np.ascontiguousarray(table.beats, dtype="<f8"))
    ]
    if len(set(keys)) != len(keys):
        raise DataValidationError("the data holds duplicate beats; each row must be distinct to be split")
    return np.array(keys)


def assign_splits(keys: np.ndarray, labels: np.ndarray, config: SplitConfig) -> np.ndarray:
    """Stratified by label: within each label, rows in key order go train, validation, test."""
    assignment = np.empty(len(keys), dtype=object)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        ordered = members[np.argsort(keys[members], kind="stable")]
        n_train = round(len(ordered) * config.train)
        n_validation = round(len(ordered) * config.validation)
        assignment[ordered[:n_train]] = "train"
        assignment[ordered[n_train : n_train + n_validation]] = "validation"
        assignment[ordered[n_train + n_validation :]] = "test"
    return assignment.astype(str)


def splits_csv(keys: np.ndarray, assignment: np.ndarray) -> str:
    order = np.argsort(keys)
    return "row_key,split\n" + "".join(f"{keys[i]},{assignment[i]}\n" for i in order)


def parse_splits_csv(text: str) -> dict[str, str]:
    lines = text.splitlines()
    if not lines or lines[0] != "row_key,split":
        raise DataValidationError("split file must start with the header 'row_key,split'")
    return dict(line.split(",", 1) for line in lines[1:] if line)


def split_arrays(table: EcgTable, keys: np.ndarray, split_of: dict[str, str]) -> SplitArrays:
    try:
        assignment = np.array([split_of[key] for key in keys])
    except KeyError as missing:
        raise DataValidationError(f"row {missing} of the data is not in the split file") from None
    train = assignment == "train"
    validation = assignment == "validation"
    test = assignment == "test"
    return SplitArrays(
        train_normal=table.beats[train & ~table.abnormal],
        validation=table.beats[validation],
        validation_abnormal=table.abnormal[validation],
        test=table.beats[test],
        test_abnormal=table.abnormal[test],
    )


def load_split_arrays(data: DataVersion, split: SplitVersion, seed: int) -> SplitArrays:
    table = load_table(data)
    return split_arrays(table, row_keys(table, seed), parse_splits_csv(split.path.read_text()))


def make_split_version(data: DataVersion, config: HeartgateConfig) -> SplitVersion:
    table = load_table(data)
    keys = row_keys(table, config.split.seed)
    assignment = assign_splits(keys, table.labels, config.split)
    tracked = DvcStore.for_config(config).commit({SPLIT_FILE: splits_csv(keys, assignment).encode()})[SPLIT_FILE]
    return SplitVersion(
        path=tracked.path,
        md5=tracked.md5,
        counts={name: int((assignment == name).sum()) for name in SPLITS},
    )


@task(name="split-data", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_only_transient)
def split_data(data: DataVersion, config: HeartgateConfig) -> SplitVersion:
    return make_split_version(data, config)


def load_tracked_split_arrays(config: HeartgateConfig) -> SplitArrays:
    """The split arrays of the data version currently tracked in the state dir (for commands that
    run outside a flow, such as `heartgate rollback`)."""
    from heartgate.dvc_store import read_md5
    from heartgate.state import StatePaths
    from tasks.pull_data import DATA_FILE

    workspace = StatePaths(config.state_root).dvc_workspace
    data_path, split_path = workspace / DATA_FILE, workspace / SPLIT_FILE
    data_md5, split_md5 = read_md5(data_path), read_md5(split_path)
    if not (data_md5 and split_md5 and data_path.exists() and split_path.exists()):
        raise DataValidationError(f"no tracked data in {workspace}: run `heartgate run` or `heartgate pull-data` first")
    data = DataVersion(path=data_path, md5=data_md5, rows=0, abnormal_rows=0, source="tracked", source_sha256="")
    split = SplitVersion(path=split_path, md5=split_md5, counts={})
    return load_split_arrays(data, split, config.split.seed)

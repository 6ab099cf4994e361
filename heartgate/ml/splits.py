"""split-data: the fixed, versioned train/validation/test split, and the arrays each step sees.

Each row is keyed on its content (label and sample values, seeded), so the split does not depend on
file order. Within each label the rows are ordered by key and cut 60/20/20: stratified and stable.

Parse once: a data version is parsed once per process (pull-data hands its parsed table over) and
the split arrays are built once per (data md5, split md5, seed); both are read from their
content-addressed files and verified against their md5, so a run only ever sees the bytes its
lineage names, whatever another run does to the workspace meanwhile.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heartgate.adapters.dvc_store import DvcStore, read_verified
from heartgate.core.config import HeartgateConfig, SplitConfig
from heartgate.core.contracts import DataVersion, SplitVersion
from heartgate.core.ecg import EcgTable, parse_canonical_csv
from heartgate.core.errors import DataValidationError

SPLIT_FILE = "splits.csv"
SPLITS = ("train", "validation", "test")
KEY_HEX_CHARS = 16


@dataclass(frozen=True)
class SplitArrays:
    """What each step may see. Training sees normal train beats only; the threshold sees validation."""

    train_normal: np.ndarray
    validation: np.ndarray
    validation_abnormal: np.ndarray
    test: np.ndarray
    test_abnormal: np.ndarray
    test_labels: np.ndarray  # the class of each test beat (1 normal, 2..5 abnormal), for per-class figures


def row_keys(table: EcgTable, seed: int) -> np.ndarray:
    """A seeded content hash per row: label plus the float64 bytes of its samples."""
    salt = str(seed).encode()
    keys = [
        hashlib.sha256(salt + bytes([label]) + beat.tobytes()).hexdigest()[:KEY_HEX_CHARS]
        for label, beat in zip(table.labels.tolist(), np.ascontiguousarray(table.beats, dtype="<f8"), strict=True)
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
        test_labels=table.labels[test],
    )


# --- content-addressed reads, once per process -----------------------------------------------------

_CACHE_LOCK = threading.Lock()
_CACHED_VERSIONS = 4  # a run needs one; a long-lived process keeps the newest few, not every one
_TABLES: dict[str, EcgTable] = {}  # data md5 -> parsed table
_ARRAYS: dict[tuple[str, str, int], SplitArrays] = {}  # (data md5, split md5, seed) -> arrays


def _keep(cache: dict, key: object, value: object) -> None:
    """Insert under the lock, dropping the oldest entries past the bound."""
    cache[key] = value
    while len(cache) > _CACHED_VERSIONS:
        del cache[next(iter(cache))]


def remember_table(md5: str, table: EcgTable) -> None:
    """Hand over a table parsed from bytes whose md5 is known (pull-data validated it)."""
    with _CACHE_LOCK:
        _keep(_TABLES, md5, table)


def load_table(data: DataVersion) -> EcgTable:
    return _table(data.path, data.md5)


def _table(path: Path, md5: str) -> EcgTable:
    with _CACHE_LOCK:
        if md5 not in _TABLES:
            _keep(_TABLES, md5, parse_canonical_csv(read_verified(path, md5).decode()))
        return _TABLES[md5]


def load_split_arrays(data: DataVersion, split: SplitVersion, seed: int) -> SplitArrays:
    return _arrays(data.path, data.md5, split.path, split.md5, seed)


def arrays_for_lineage(config: HeartgateConfig, data_md5: str, split_md5: str) -> SplitArrays:
    """The split arrays a registered version's lineage names, by md5: from the DVC cache, or from
    the DVC remote on a machine that never pulled that version."""
    store = DvcStore.for_config(config)
    return _arrays(store.restore(data_md5), data_md5, store.restore(split_md5), split_md5, config.split.seed)


def _arrays(data_path: Path, data_md5: str, split_path: Path, split_md5: str, seed: int) -> SplitArrays:
    key = (data_md5, split_md5, seed)
    with _CACHE_LOCK:
        cached = _ARRAYS.get(key)
    if cached is None:
        table = _table(data_path, data_md5)
        split_of = parse_splits_csv(read_verified(split_path, split_md5).decode())
        cached = split_arrays(table, row_keys(table, seed), split_of)
        with _CACHE_LOCK:
            _keep(_ARRAYS, key, cached)
    return cached


def split_data(data: DataVersion, split: SplitConfig, store: DvcStore) -> SplitVersion:
    table = load_table(data)
    keys = row_keys(table, split.seed)
    assignment = assign_splits(keys, table.labels, split)
    tracked = store.commit({SPLIT_FILE: splits_csv(keys, assignment).encode()})[SPLIT_FILE]
    return SplitVersion(
        path=tracked.path,
        md5=tracked.md5,
        counts={name: int((assignment == name).sum()) for name in SPLITS},
    )

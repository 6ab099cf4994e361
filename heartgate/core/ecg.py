"""ECG5000 in heartgate's canonical CSV form: `split,label,t000..t139`, one beat per row.

Pure functions only: text in, typed values out, a `DataValidationError` naming the first problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heartgate.core.errors import DataValidationError

SAMPLES_PER_BEAT = 140
NORMAL_LABEL = 1
LABELS = frozenset({1, 2, 3, 4, 5})
# The classes of ECG5000 (UCR archive, from the BIDMC Congestive Heart Failure Database).
CLASS_NAMES = {1: "normal", 2: "R-on-T PVC", 3: "PVC", 4: "SP or EB", 5: "unclassified beat"}
UCR_SPLITS = ("train", "test")
HEADER = ",".join(["split", "label", *(f"t{i:03d}" for i in range(SAMPLES_PER_BEAT))])
COLUMNS = SAMPLES_PER_BEAT + 2


@dataclass(frozen=True)
class EcgTable:
    """All beats of one data version. `abnormal` is the positive class everywhere in heartgate."""

    ucr_split: np.ndarray  # (n,) str: the split the UCR archive put the row in (not ours)
    labels: np.ndarray  # (n,) int8, UCR classes 1..5
    beats: np.ndarray  # (n, 140) float64

    @property
    def abnormal(self) -> np.ndarray:
        return self.labels != NORMAL_LABEL

    def __len__(self) -> int:
        return len(self.labels)


def _ucr_tokens(line: str, origin: str, line_no: int) -> list[str]:
    """Tokens of one UCR line: TSV (2018 archive) or whitespace-separated .txt (classic archive)."""
    tokens = line.split("\t") if "\t" in line else line.split()
    label = tokens[0]
    if not label.isdigit():
        # The classic .txt writes labels as floats ("1.0000000e+00"); keep the class, drop the format.
        try:
            as_float = float(label)
        except ValueError:
            raise DataValidationError(f"{origin} line {line_no}: label {label!r} is not a number") from None
        if not as_float.is_integer():
            raise DataValidationError(f"{origin} line {line_no}: label {label!r} is not a whole number")
        tokens[0] = str(int(as_float))
    return tokens


def ucr_to_canonical_csv(train_text: str, test_text: str) -> str:
    """Join the UCR TRAIN and TEST files into the canonical CSV, copying value tokens verbatim."""
    rows = [HEADER]
    for split, text in (("train", train_text), ("test", test_text)):
        for line_no, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                rows.append(",".join([split, *_ucr_tokens(line, f"UCR {split.upper()}", line_no)]))
    return "\n".join(rows) + "\n"


def parse_canonical_csv(text: str) -> EcgTable:
    """Validate and parse the canonical CSV. Raises on the first bad line, naming it."""
    lines = text.splitlines()
    if not lines:
        raise DataValidationError("data file is empty")
    if lines[0] != HEADER:
        found = lines[0][:60] + ("..." if len(lines[0]) > 60 else "")
        raise DataValidationError(f"line 1: expected header 'split,label,t000..t139', found {found!r}")
    body = [line for line in lines[1:] if line]
    if not body:
        raise DataValidationError("data file has a header but no beats")

    splits: list[str] = []
    labels: list[int] = []
    beats = np.empty((len(body), SAMPLES_PER_BEAT), dtype=np.float64)
    for index, line in enumerate(body):
        line_no = index + 2
        fields = line.split(",")
        if len(fields) != COLUMNS:
            raise DataValidationError(f"line {line_no}: expected {COLUMNS} columns, found {len(fields)}")
        split, label, values = fields[0], fields[1], fields[2:]
        if split not in UCR_SPLITS:
            raise DataValidationError(f"line {line_no}: unknown split {split!r} (expected train or test)")
        if not label.isdigit() or int(label) not in LABELS:
            raise DataValidationError(f"line {line_no}: unknown label {label!r} (expected 1..5)")
        try:
            beats[index] = [float(value) for value in values]
        except ValueError:
            bad = next(v for v in values if not _is_float(v))
            raise DataValidationError(f"line {line_no}: value {bad!r} is not a number") from None
        splits.append(split)
        labels.append(int(label))

    finite = np.isfinite(beats)
    if not finite.all():
        row, col = map(int, np.argwhere(~finite)[0])
        raise DataValidationError(f"line {row + 2}: t{col:03d} is {beats[row, col]} (NaN and inf are not allowed)")
    return EcgTable(ucr_split=np.array(splits), labels=np.array(labels, dtype=np.int8), beats=beats)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True

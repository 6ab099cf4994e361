import numpy as np
import pytest

from heartgate.core.config import SplitConfig
from heartgate.core.ecg import EcgTable, parse_canonical_csv
from heartgate.core.errors import DataValidationError
from heartgate.ml.splits import assign_splits, parse_splits_csv, row_keys, split_arrays, splits_csv
from tests.conftest import synthetic_csv

PER_LABEL = {1: 300, 2: 150, 3: 20, 4: 24, 5: 6}


@pytest.fixture
def table() -> EcgTable:
    return parse_canonical_csv(synthetic_csv(PER_LABEL))


def _assignment_by_key(table: EcgTable, seed: int = 3) -> dict[str, str]:
    keys = row_keys(table, seed)
    return dict(zip(keys.tolist(), assign_splits(keys, table.labels, SplitConfig(seed=seed)).tolist(), strict=True))


def test_split_is_stratified_60_20_20(table):
    keys = row_keys(table, 3)
    assignment = assign_splits(keys, table.labels, SplitConfig())
    for label, count in PER_LABEL.items():
        of_label = assignment[table.labels == label]
        assert (of_label == "train").sum() == round(count * 0.6)
        assert (of_label == "validation").sum() == round(count * 0.2)
        assert (of_label == "test").sum() == count - round(count * 0.6) - round(count * 0.2)


def test_split_does_not_depend_on_row_order(table):
    permutation = np.random.default_rng(1).permutation(len(table))
    shuffled = EcgTable(table.ucr_split[permutation], table.labels[permutation], table.beats[permutation])
    assert _assignment_by_key(shuffled) == _assignment_by_key(table)


def test_split_depends_on_seed(table):
    assert _assignment_by_key(table, seed=3) != _assignment_by_key(table, seed=4)


def test_split_file_round_trips_and_is_sorted(table):
    keys = row_keys(table, 3)
    assignment = assign_splits(keys, table.labels, SplitConfig())
    text = splits_csv(keys, assignment)
    parsed = parse_splits_csv(text)
    assert parsed == dict(zip(keys.tolist(), assignment.tolist(), strict=True))
    assert list(parsed) == sorted(parsed)


def test_arrays_keep_test_out_of_training(table):
    keys = row_keys(table, 3)
    split_of = dict(zip(keys.tolist(), assign_splits(keys, table.labels, SplitConfig()).tolist(), strict=True))
    arrays = split_arrays(table, keys, split_of)
    assert len(arrays.train_normal) == round(300 * 0.6)
    train_rows = {row.tobytes() for row in arrays.train_normal}
    assert not train_rows & {row.tobytes() for row in arrays.test}
    assert not train_rows & {row.tobytes() for row in arrays.validation}
    assert len(arrays.validation) == sum(round(count * 0.2) for count in PER_LABEL.values())
    assert arrays.validation_abnormal.sum() == sum(round(c * 0.2) for label, c in PER_LABEL.items() if label != 1)


def test_duplicate_rows_cannot_be_split(table):
    doubled = EcgTable(np.r_[table.ucr_split, table.ucr_split[:1]], np.r_[table.labels, table.labels[:1]], np.vstack([table.beats, table.beats[:1]]))
    with pytest.raises(DataValidationError, match="duplicate beats"):
        row_keys(doubled, 3)


def test_a_row_missing_from_the_split_file_is_named(table):
    keys = row_keys(table, 3)
    with pytest.raises(DataValidationError, match="not in the split file"):
        split_arrays(table, keys, {})


def test_a_data_version_is_parsed_once_and_its_arrays_built_once(tmp_path, monkeypatch):
    import hashlib

    import heartgate.ml.splits as splits
    from heartgate.core.contracts import DataVersion, SplitVersion

    text = synthetic_csv(PER_LABEL, seed=11).encode()
    table = parse_canonical_csv(text.decode())
    keys = row_keys(table, 3)
    split_text = splits_csv(keys, assign_splits(keys, table.labels, SplitConfig(seed=3))).encode()
    paths = {name: tmp_path / name for name in ("data", "split")}
    paths["data"].write_bytes(text)
    paths["split"].write_bytes(split_text)
    data = DataVersion(path=paths["data"], md5=hashlib.md5(text).hexdigest(), rows=len(table), abnormal_rows=0, source="t", source_sha256="")
    split = SplitVersion(path=paths["split"], md5=hashlib.md5(split_text).hexdigest(), counts={})

    parses = []
    monkeypatch.setattr(splits, "parse_canonical_csv", lambda text: parses.append(1) or parse_canonical_csv(text))
    first = splits.load_split_arrays(data, split, 3)
    assert splits.load_split_arrays(data, split, 3) is first  # train, evaluate and the gate share it
    assert splits.load_table(data) is splits.load_table(data)
    assert len(parses) == 1
    assert len(first.test) + len(first.validation) + len(first.train_normal) < len(table)  # abnormal train rows left out


def test_arrays_are_refused_when_the_file_no_longer_matches_its_md5(tmp_path):
    import hashlib

    from heartgate.core.contracts import DataVersion, SplitVersion
    from heartgate.ml.splits import load_split_arrays

    text = synthetic_csv(PER_LABEL, seed=12).encode()
    path = tmp_path / "data"
    path.write_bytes(text.replace(b",1,", b",2,", 1))  # planted after the md5 was taken
    data = DataVersion(path=path, md5=hashlib.md5(text).hexdigest(), rows=0, abnormal_rows=0, source="t", source_sha256="")
    split = SplitVersion(path=path, md5="0" * 32, counts={})
    with pytest.raises(DataValidationError, match="does not match its md5"):
        load_split_arrays(data, split, 3)

import numpy as np
import pytest

from heartgate.core.ecg import HEADER, parse_canonical_csv, ucr_to_canonical_csv
from heartgate.core.errors import DataValidationError
from tests.conftest import synthetic_csv


def test_parses_synthetic_table():
    table = parse_canonical_csv(synthetic_csv({1: 5, 2: 3}))
    assert len(table) == 8
    assert table.beats.shape == (8, 140)
    assert table.abnormal.tolist() == [False] * 5 + [True] * 3


def test_ucr_tsv_tokens_are_copied_verbatim():
    values = ["-0.12345678", "1.2345678e-05", "-4.321"] + ["1.5"] * 137
    train = "1\t" + "\t".join(values) + "\n"
    test = "3\t" + "\t".join(values) + "\n\n"
    csv = ucr_to_canonical_csv(train, test)
    lines = csv.splitlines()
    assert lines[0] == HEADER
    assert lines[1] == "train,1," + ",".join(values)
    assert lines[2] == "test,3," + ",".join(values)
    assert csv.endswith("\n") and len(lines) == 3


def test_classic_ucr_txt_labels_become_integers():
    row = "  2.0000000e+00  " + "  ".join(["1.0000000e+00"] * 140)
    csv = ucr_to_canonical_csv(row, row)
    assert csv.splitlines()[1].startswith("train,2,1.0000000e+00,")
    parse_canonical_csv(csv)


def _replace(text: str, line_no: int, new_line: str) -> str:
    lines = text.splitlines()
    lines[line_no - 1] = new_line
    return "\n".join(lines) + "\n"


def _row(label="1", split="train", values=None):
    return ",".join([split, label, *(values or ["0.5"] * 140)])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (_row(values=["0.5"] * 139), "line 3: expected 142 columns, found 141"),
        (_row(values=["0.5"] * 141), "line 3: expected 142 columns, found 143"),
        (_row(label="6"), "line 3: unknown label '6'"),
        (_row(label="0"), "line 3: unknown label '0'"),
        (_row(label="abnormal"), "line 3: unknown label 'abnormal'"),
        (_row(split="validation"), "line 3: unknown split 'validation'"),
        (_row(values=["0.5"] * 10 + ["nan"] + ["0.5"] * 129), r"line 3: t010 is nan \(NaN and inf are not allowed\)"),
        (_row(values=["inf"] + ["0.5"] * 139), r"line 3: t000 is inf"),
        (_row(values=["0.5"] * 139 + ["1.2.3"]), "line 3: value '1.2.3' is not a number"),
    ],
)
def test_bad_rows_name_line_and_problem(line, message):
    with pytest.raises(DataValidationError, match=message):
        parse_canonical_csv(_replace(synthetic_csv({1: 4}), 3, line))


def test_bad_header_and_empty_files():
    with pytest.raises(DataValidationError, match="line 1: expected header"):
        parse_canonical_csv("label,t000\n1,2\n")
    with pytest.raises(DataValidationError, match="empty"):
        parse_canonical_csv("")
    with pytest.raises(DataValidationError, match="no beats"):
        parse_canonical_csv(HEADER + "\n")


def test_errors_are_one_line():
    with pytest.raises(DataValidationError) as raised:
        parse_canonical_csv(_replace(synthetic_csv({1: 4}), 2, _row(label="9")))
    assert "\n" not in str(raised.value)


def test_values_parse_exactly():
    table = parse_canonical_csv(HEADER + "\n" + _row(values=["1.2345678e-05"] + ["-4.321"] * 139) + "\n")
    assert table.beats[0, 0] == 1.2345678e-05
    assert np.all(table.beats[0, 1:] == -4.321)

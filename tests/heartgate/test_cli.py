"""The CLI as a user meets it: a fresh process, one readable line per error, a non-zero exit."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import synthetic_csv


def heartgate(*args: str, home: Path, python_options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTGATE_", "PREFECT_"))} | {"HOME": str(home)}
    command = [sys.executable, *python_options, "-m", "heartgate.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("heartgate: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (synthetic_csv({1: 3}).replace(",1,", ",9,", 1), "line 2: unknown label '9'"),
        (synthetic_csv({1: 3}).replace("\n", ",0.1\n", 2).replace(",0.1\n", "\n", 1), "line 2: expected 142 columns, found 143"),
        ("split,label\n", "line 1: expected header"),
    ],
)
def test_pull_data_rejects_bad_files_in_one_line_and_keeps_the_store(tmp_path, home, content, message):
    state = tmp_path / "state"
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    result = heartgate("pull-data", "--state-dir", str(state), "--set", f"data.source={bad}", "--set", "data.sha256=null", home=home)
    assert message in _one_error_line(result)
    assert not (state / "data" / "ecg5000.csv.dvc").exists()
    assert list(home.rglob("*")) == []


def test_pull_data_reports_the_versions(tmp_path, home):
    good = tmp_path / "good.csv"
    good.write_text(synthetic_csv())
    result = heartgate("pull-data", "--state-dir", str(tmp_path / "state"), "--set", f"data.source={good}", "--set", "data.sha256=null", home=home)
    assert result.returncode == 0, result.stderr
    assert "200 beats, 80 abnormal" in result.stdout and "the first version, pushed to the DVC remote" in result.stdout
    assert "'train': 120, 'validation': 40, 'test': 40" in result.stdout
    assert "Initialized DVC" not in result.stdout + result.stderr  # a library's banner, not news
    again = heartgate("pull-data", "--state-dir", str(tmp_path / "state"), "--set", f"data.source={good}", "--set", "data.sha256=null", home=home)
    assert "the same version as before" in again.stdout
    good.write_text(synthetic_csv(seed=1))
    changed = heartgate("pull-data", "--state-dir", str(tmp_path / "state"), "--set", f"data.source={good}", "--set", "data.sha256=null", home=home)
    assert "a new version (was " in changed.stdout, changed.stdout + changed.stderr


def test_sha256_mismatch_is_one_line(tmp_path, home):
    good = tmp_path / "good.csv"
    good.write_text(synthetic_csv())
    result = heartgate("pull-data", "--state-dir", str(tmp_path / "state"), "--set", f"data.source={good}", home=home)
    assert "sha256 mismatch" in _one_error_line(result)


def test_invalid_config_is_one_line(tmp_path, home):
    result = heartgate("run", "--state-dir", str(tmp_path / "state"), "--set", "train.epochs=zero", home=home)
    assert "invalid config value train.epochs" in _one_error_line(result)


def test_lineage_before_any_run_is_one_line_and_creates_nothing(tmp_path, home):
    result = heartgate("lineage", "42", "--state-dir", str(tmp_path / "state"), home=home)
    assert "no MLflow store at" in _one_error_line(result)
    assert not (tmp_path / "state" / "mlflow" / "mlflow.db").exists()


def test_usage_errors_exit_2(home):
    assert heartgate("fly", home=home).returncode == 2


def test_a_command_that_starts_no_prefect_server_does_not_import_its_api(tmp_path, home):
    """Prefect's server API costs seconds of CPU to import; a rollback under the state dir's file
    locks never starts the temporary server, so it never imports it either."""
    result = heartgate("rollback", "--state-dir", str(tmp_path / "state"), home=home, python_options=("-X", "importtime"))
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "heartgate.release.promotion" in imported  # the command did get as far as rolling back
    assert "prefect.server.api.server" not in imported
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert result.returncode == 1 and len(errors) == 1 and errors[0].startswith("heartgate: error: "), result.stderr[-2000:]

"""Every dependency is pinned with its hash, and installs refuse anything else (the install
itself, against a hostile index: tests/scripts/test_install_lock.py)."""

from __future__ import annotations

import re
import subprocess

from heartgate.core.config import PROJECT_ROOT

PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[^\s]+ --hash=sha256:[0-9a-f]{64}$")


def lock_lines() -> list[str]:
    return [line for line in (PROJECT_ROOT / "requirements.lock").read_text().splitlines() if not line.startswith("#")]


def test_every_line_of_the_lock_pins_a_version_with_its_sha256():
    lines = lock_lines()
    assert len(lines) > 200
    assert [line for line in lines if not PINNED.match(line)] == []


def test_the_direct_dependencies_are_in_the_lock():
    import tomllib

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    wanted = [re.split(r"[\[<>=; ]", spec)[0] for spec in project["dependencies"] + project["optional-dependencies"]["test"]]
    locked = {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower() for line in lock_lines()}
    assert [name for name in wanted if re.sub(r"[-_.]+", "-", name).lower() not in locked] == []


def test_installs_require_the_hashes():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "scripts/install_lock.sh $(VENV) $(LOCK)" in makefile and "LOCK ?= requirements.lock" in makefile


def test_the_lock_pins_its_own_installer_and_the_venvs_seed_packages():
    """uv runs the install; pip and setuptools would otherwise stay as `python3.11 -m venv` made them."""
    names = {line.split("==")[0] for line in lock_lines()}
    assert {"uv", "pip", "setuptools"} <= names


def make_venv(tmp_path, python: str) -> subprocess.CompletedProcess:
    venv = tmp_path / "venv"
    return subprocess.run(["make", "-s", "venv", f"VENV={venv}", f"PYTHON={python}"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)


def test_make_says_in_one_line_that_the_interpreter_is_not_python_3_11(tmp_path):
    other = tmp_path / "python3.12"
    other.write_text("#!/bin/sh\necho 3.12\n")  # answers the version question as a Python 3.12 would
    other.chmod(0o755)
    result = make_venv(tmp_path, str(other))
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == f"heartgate: error: {other} is Python 3.12: heartgate needs 3.11 (make PYTHON=/path/to/python3.11)"
    assert not (tmp_path / "venv").exists()


def test_make_says_in_one_line_that_the_interpreter_is_missing(tmp_path):
    result = make_venv(tmp_path, "/nonexistent/python3.11")
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == "heartgate: error: /nonexistent/python3.11 not found: heartgate needs Python 3.11 (make PYTHON=/path/to/python3.11)"


def test_make_refuses_a_venv_of_another_python(tmp_path):
    fake = tmp_path / "venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 3.10\n")
    fake.chmod(0o755)
    result = make_venv(tmp_path, "python3.11")
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == f"heartgate: error: {tmp_path / 'venv'} holds Python 3.10, not 3.11: remove it (make clean) and run make again"

"""Every dependency is pinned with its hash, and installs refuse anything else."""

from __future__ import annotations

import re

from heartgate.config import PROJECT_ROOT

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

"""The install takes exactly the lock, whatever the index offers: scripts/install_lock.sh (what
`make venv` runs) against a package index on loopback that holds a newer release of locked
packages next to the locked ones, the trap that broke every fresh install on 2026-12-02 (a
dependency's extra, resolved against the index by the venv's bundled pip)."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import importlib.metadata
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from heartgate.core.config import PROJECT_ROOT

pytestmark = pytest.mark.integration

INSTALL = PROJECT_ROOT / "scripts" / "install_lock.sh"
PYTHON = shutil.which("python3.11") or sys.executable


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(into: Path, name: str, version: str, tag: str, files: dict[str, tuple[bytes, int]], metadata: str) -> Path:
    """A wheel holding `files` (archive path -> content, unix mode) and the dist-info it needs."""
    info = f"{name}-{version}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{metadata}".encode(), 0o644),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: heartgate-tests\nRoot-Is-Purelib: {'true' if tag.endswith('any') else 'false'}\nTag: {tag}\n".encode(),
            0o644,
        ),
    }
    record = "".join(f"{path},{record_hash(data)},{len(data)}\n" for path, (data, _) in files.items()) + f"{info}/RECORD,,\n"
    wheel = into / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for path, (data, mode) in [*files.items(), (f"{info}/RECORD", (record.encode(), 0o644))]:
            entry = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = (0o100000 | mode) << 16  # a regular file with its mode: installers keep the x bit
            archive.writestr(entry, data)
    return wheel


def tiny_wheel(into: Path, name: str, version: str, requires: tuple[str, ...] = (), extras: tuple[str, ...] = ()) -> Path:
    metadata = "".join(f"Provides-Extra: {extra}\n" for extra in extras) + "".join(f"Requires-Dist: {r}\n" for r in requires)
    return write_wheel(into, name, version, "py3-none-any", {f"{name}/__init__.py": (f"VERSION = {version!r}\n".encode(), 0o644)}, metadata)


def repacked_uv(into: Path) -> Path:
    """The uv installed in this environment, packed again as a wheel (its binary as a script):
    the test's index needs one, and nothing may be fetched from outside loopback."""
    dist = importlib.metadata.distribution("uv")
    scripts = f"uv-{dist.version}.data/scripts/"
    files = {}
    for entry in dist.files:
        path = str(entry)
        if "__pycache__" in path or path.endswith(("/RECORD", "/INSTALLER", "/REQUESTED", "/direct_url.json", "/METADATA", "/WHEEL")):
            continue
        source = Path(entry.locate())
        archived = scripts + source.name if path.startswith("../") else path
        files[archived] = (source.read_bytes(), 0o755 if path.startswith("../") else 0o644)
    return write_wheel(into, "uv", dist.version, "py3-none-manylinux_2_17_x86_64", files, "")


def pin(wheel: Path, sha256: str | None = None) -> str:
    name, version = wheel.name.split("-")[:2]
    return f"{name}=={version} --hash=sha256:{sha256 or hashlib.sha256(wheel.read_bytes()).hexdigest()}"


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A PEP 503 index on loopback: the locked wheels, and newer releases of two of them (and of uv)."""
    root = tmp_path_factory.mktemp("index")
    files = root / "files"
    files.mkdir()
    locked = {
        "uv": repacked_uv(files),
        "alpha": tiny_wheel(files, "alpha", "1.0", requires=("beta[fast]>=1.0",)),  # as prefect asks for httpx[http2]
        "beta": tiny_wheel(files, "beta", "1.0", requires=('gamma>=1.0; extra == "fast"',), extras=("fast",)),
        "gamma": tiny_wheel(files, "gamma", "1.0"),
    }
    tiny_wheel(files, "beta", "2.0", requires=('gamma>=2.0; extra == "fast"',), extras=("fast",))
    tiny_wheel(files, "gamma", "2.0")
    tiny_wheel(files, "uv", "99.0")  # a newer "uv" with no binary in it: taking it would break the install
    for name in locked:
        page = root / "simple" / name / "index.html"
        page.parent.mkdir(parents=True)
        links = "".join(
            f'<a href="/files/{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">{w.name}</a>\n' for w in sorted(files.glob(f"{name}-*.whl"))
        )
        page.write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietFiles, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple/", locked
    server.shutdown()


@pytest.fixture
def installer_env(index, tmp_path):
    """Only the test's index, for pip and uv alike; no config file, no cache outside tmp_path."""
    url, _ = index
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    return env | {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": url,
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "UV_NO_CONFIG": "1",
        "UV_DEFAULT_INDEX": url,
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "PYTHON": PYTHON,
    }


def lock_file(path: Path, lines: list[str]) -> Path:
    path.write_text("# test lock\n" + "\n".join(lines) + "\n")
    return path


def install(venv: Path, lock: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INSTALL), str(venv), str(lock)], env=env, capture_output=True, text=True, timeout=300)


def versions(venv: Path) -> dict[str, str]:
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True)
    if listed.returncode != 0:  # the lock has no pip: ask importlib instead
        code = "import importlib.metadata as m; print('\\n'.join(f'{d.name}=={d.version}' for d in m.distributions()))"
        listed = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    return dict(line.split("==") for line in listed.stdout.split())


def test_the_install_takes_the_locks_versions_where_the_index_offers_newer_ones(index, installer_env, tmp_path):
    _, locked = index
    lock = lock_file(tmp_path / "requirements.lock", [pin(wheel) for wheel in locked.values()])
    venv = tmp_path / "venv"
    result = install(venv, lock, installer_env)
    assert result.returncode == 0, result.stderr
    installed = versions(venv)
    assert {name: installed[name] for name in ("alpha", "beta", "gamma")} == {"alpha": "1.0", "beta": "1.0", "gamma": "1.0"}
    assert installed["uv"] == importlib.metadata.version("uv")
    # Nothing beside the lock but the venv's own pip and setuptools, which uv pip sync keeps unless the
    # lock pins them (requirements.lock does: tests/test_lock.py).
    assert set(installed) - {"pip", "setuptools"} == {"alpha", "beta", "gamma", "uv"}

    # The same lock the way the Makefile installed it until 2026-12-02 (bundled pip, --require-hashes,
    # resolving): it does not end with exactly the lock on this index, so this index is the trap.
    old = tmp_path / "old-venv"
    subprocess.run([PYTHON, "-m", "venv", str(old)], check=True, timeout=120)
    before = subprocess.run(
        [str(old / "bin" / "python"), "-m", "pip", "install", "--quiet", "--require-hashes", "-r", str(lock)],
        env=installer_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert before.returncode != 0, "the old install held to the lock: this index no longer sets the trap"
    assert "beta[fast]>=1.0 from http://127.0.0.1" in before.stderr and "/files/beta-2.0-py3-none-any.whl" in before.stderr


def test_a_lock_that_misses_a_dependency_is_refused_in_one_line(index, installer_env, tmp_path):
    _, locked = index
    lock = lock_file(tmp_path / "requirements.lock", [pin(locked[name]) for name in ("uv", "alpha", "gamma")])  # no beta
    result = install(tmp_path / "venv", lock, installer_env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"heartgate: error: {lock} is not a complete, consistent set (uv pip check above): run make lock"
    assert "beta" in result.stderr  # uv says what is missing


def test_a_file_that_is_not_the_locked_one_is_refused_and_the_venv_is_left_as_it_was(index, installer_env, tmp_path):
    _, locked = index
    good = lock_file(tmp_path / "good.lock", [pin(wheel) for wheel in locked.values()])
    venv = tmp_path / "venv"
    assert install(venv, good, installer_env).returncode == 0
    before = versions(venv)
    # beta moved to 2.0 in the lock, but with a hash the index's 2.0 file does not have
    wrong = hashlib.sha256(locked["beta"].read_bytes()).hexdigest()
    tampered = lock_file(tmp_path / "tampered.lock", [pin(locked["uv"]), pin(locked["alpha"]), f"beta==2.0 --hash=sha256:{wrong}", pin(locked["gamma"])])
    result = install(venv, tampered, installer_env)
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1] == f"heartgate: error: cannot install {tampered} exactly (uv's reason above); nothing outside the lock was tried"
    )
    assert "beta" in result.stderr and wrong in result.stderr  # uv names the package and the hash it expected
    assert versions(venv) == before


def test_a_lock_without_uv_is_refused_in_one_line(installer_env, tmp_path):
    lock = lock_file(tmp_path / "requirements.lock", ["alpha==1.0 --hash=sha256:" + "1" * 64])
    result = install(tmp_path / "venv", lock, installer_env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"heartgate: error: {lock} pins no uv with its sha256: run make lock"]

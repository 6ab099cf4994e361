"""Wall time of the fresh-machine install: `make venv` (scripts/install_lock.sh) into a new venv,
first with an empty uv cache (every file downloaded from the package index), then again into
another new venv with that cache warm (what a second clone, `make clean`, or CI on a machine
that installed before pays). Each venv is made by the bundled pip of `python3.11 -m venv`.

    .venv/bin/python benchmarks/install.py [--runs 2] [--keep]

Scratch venvs and the cache live in a temporary directory (removed unless --keep); the repo's
own .venv and .cache/ are left alone.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_make_venv(venv: Path, cache: Path, log: Path) -> float:
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(["make", "-s", "venv", f"VENV={venv}", f"UV_CACHE_DIR={cache}"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"benchmark: error: make venv failed (log: {log})")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="cold and warm installs each (median)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="heartgate-install-bench-"))
    cold, warm = [], []
    try:
        for run in range(args.runs):
            cache = scratch / f"cache-{run}"
            cold.append(timed_make_venv(scratch / f"cold-{run}", cache, scratch / f"cold-{run}.log"))
            warm.append(timed_make_venv(scratch / f"warm-{run}", cache, scratch / f"warm-{run}.log"))
            print(f"run {run + 1}: cold cache {cold[-1]:.1f} s, warm cache {warm[-1]:.1f} s", flush=True)
        packages = sum(1 for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line and not line.startswith("#"))
        size = sum(f.stat().st_size for f in (scratch / "warm-0").rglob("*") if f.is_file() and not f.is_symlink())
        print(
            f"make venv, {packages} packages ({size / 2**30:.1f} GiB installed), median of {args.runs}: "
            f"cold cache {statistics.median(cold):.1f} s, warm cache {statistics.median(warm):.1f} s"
        )
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

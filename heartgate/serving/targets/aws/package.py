"""The Lambda artifact: a zip package built without Docker.

It holds the bento's serving code (the handler and the project modules it imports, taken from the
bento so the Lambda serves the code its release record vouches for), the bento model (ONNX export,
metadata.json, the signed release record), and onnxruntime, numpy, orjson and ecdsa (which checks the
release at cold start) as manylinux x86_64 wheels for the Lambda Python runtime,
fetched with `pip download --platform ... --only-binary=:all: --require-hashes` against the sha256
that requirements.lock pins (and checked again at every build). The zip is deterministic (sorted
entries, fixed timestamps), so one registry version always gives the same code sha256 and a
second Terraform plan stays empty.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from heartgate.core.config import PROJECT_ROOT
from heartgate.core.errors import HeartgateError, SourceUnreachableError
from heartgate.serving.packaging import served_files
from heartgate.serving.proof import RELEASE_FILE
from heartgate.serving.served_model import METADATA_FILE, ONNX_FILE

LAMBDA_PYTHON = "3.11"  # matches the module's runtime = "python3.11"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
RUNTIME_PACKAGES = ("onnxruntime", "numpy", "orjson", "ecdsa", "six")  # onnxruntime's other requirements are not needed to run a model; six is ecdsa's
# What the handler never loads, left out of the package (127 -> 78 MiB unzipped; tests/flows/test_aws.py
# scores the whole test split with what is left): ORT's C-API library (the Python binding links its
# own copy), ORT's model tools, numpy's tests, build helpers, type stubs and the submodules numpy
# imports only on first use (random, fft, polynomial, ma). openblas stays: numpy's core links it.
UNUSED_IN_LAMBDA = (
    "onnxruntime/capi/libonnxruntime.so.",
    "onnxruntime/transformers/",
    "onnxruntime/quantization/",
    "onnxruntime/tools/",
    "onnxruntime/backend/",
    "onnxruntime/datasets/",
    "numpy/f2py/",
    "numpy/distutils/",
    "numpy/typing/",
    "numpy/_core/include/",
    "numpy/_pyinstaller/",
    "numpy/doc/",
    "numpy/random/",
    "numpy/polynomial/",
    "numpy/ma/",
    "numpy/fft/",
)
UNUSED_SUFFIXES = (".pyi", ".pxd", ".h")
HANDLER_MODULE = "service.lambda_handler"  # the function's handler: service.lambda_handler.handler
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
LOCK_FILE = PROJECT_ROOT / "requirements.lock"  # the runtime wheels are the files it pins, by sha256
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class LambdaPackage(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    sha256_base64: str  # what Lambda reports as CodeSha256
    size_bytes: int
    unzipped_bytes: int

    @property
    def sha256_hex(self) -> str:
        import base64

        return base64.b64decode(self.sha256_base64).hex()


class WheelHashMismatch(HeartgateError):
    """A Lambda wheel is not the file requirements.lock pins."""


def runtime_requirements(lock: Path = LOCK_FILE) -> dict[str, str]:
    """name -> its line in requirements.lock (`name==version --hash=sha256:...`): the same
    versions and files as this environment's, for the Lambda platform."""
    lines = {line.split("==", 1)[0].lower(): line.strip() for line in lock.read_text().splitlines() if "==" in line and not line.startswith("#")}
    missing = [name for name in RUNTIME_PACKAGES if name not in lines or "--hash=sha256:" not in lines[name]]
    if missing:
        raise WheelHashMismatch(f"{lock} pins no hash for {', '.join(missing)}: run `make lock`")
    return {name: lines[name] for name in RUNTIME_PACKAGES}


def check_wheels(wheels: list[Path], pinned: dict[str, str]) -> None:
    """Every wheel must be a file the lock pins (by sha256): checked at each build, not only
    when pip downloads, so a wheel swapped in the cache is refused too."""
    for wheel in wheels:
        name = wheel.name.split("-", 1)[0].lower().replace("_", "-")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if name not in pinned or f"--hash=sha256:{digest}" not in pinned[name]:
            raise WheelHashMismatch(
                f"Lambda wheel {wheel.name} (sha256 {digest[:12]}…) is not a file requirements.lock pins; remove {wheel.parent} and build again"
            )


def fetch_runtime_wheels(into: Path, lock: Path = LOCK_FILE) -> list[Path]:
    """The runtime wheels for Lambda, downloaded with `--require-hashes` against the lock."""
    into.mkdir(parents=True, exist_ok=True)
    pinned = runtime_requirements(lock)
    if len(list(into.glob("*.whl"))) < len(pinned):
        requirements = into / "requirements.txt"
        requirements.write_text("\n".join(pinned.values()) + "\n")
        platforms = [option for platform in PLATFORMS for option in ("--platform", platform)]
        only_lambda = ["--only-binary=:all:", "--implementation", "cp", "--python-version", LAMBDA_PYTHON, *platforms]
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes", "--disable-pip-version-check"]
        result = subprocess.run([*pip, *only_lambda, "--dest", str(into), "-r", str(requirements)], capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            raise SourceUnreachableError(f"cannot fetch Lambda wheels {sorted(pinned)}: {lines[-1] if lines else 'pip failed'}")
    wheels = sorted(into.glob("*.whl"))
    check_wheels(wheels, pinned)
    return wheels


def needed_at_runtime(name: str) -> bool:
    """Whether a wheel's file is needed to score beats (see UNUSED_IN_LAMBDA)."""
    return not (name.endswith(UNUSED_SUFFIXES) or "/tests/" in name or name.startswith(UNUSED_IN_LAMBDA))


def _entries(model_dir: Path, code_root: Path, wheels: list[Path]) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if not name.endswith("/") and needed_at_runtime(name):
                    entries[name] = archive.read(name)
    for relative in served_files():  # the serving code, as the bento carries it
        entries[relative] = (code_root / relative).read_bytes()
    for name in (ONNX_FILE, METADATA_FILE, RELEASE_FILE):
        entries[f"model/{name}"] = (model_dir / name).read_bytes()
    return entries


def _entries_sha256(entries: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(entries):
        digest.update(f"{name}\0{len(entries[name])}\0".encode())
        digest.update(entries[name])
    return digest.hexdigest()


def _package(out: Path, unzipped: int) -> LambdaPackage:
    digest = hashlib.sha256(out.read_bytes()).digest()
    return LambdaPackage(path=out, sha256_base64=base64.b64encode(digest).decode(), size_bytes=out.stat().st_size, unzipped_bytes=unzipped)


def _kept(out: Path, inputs: str) -> LambdaPackage | None:
    """The package a build of the same entries left at `out`, if it is still the file it wrote."""
    try:
        record = json.loads(out.with_name(f"{out.name}.json").read_text())
        package = _package(out, int(record["unzipped_bytes"]))
    except (OSError, ValueError, KeyError):
        return None
    return package if record.get("inputs_sha256") == inputs and record.get("zip_sha256") == package.sha256_hex else None


def build_lambda_package(model_dir: Path, code_root: Path, wheels: list[Path], out: Path) -> LambdaPackage:
    """The zip at `out`. Compressing takes seconds, so a zip built before from the same entries
    (recorded beside it with its own sha256) is kept: rollback and reconcile upload the same file."""
    entries = _entries(model_dir, code_root, wheels)
    unzipped = sum(len(data) for data in entries.values())
    if unzipped > LAMBDA_UNZIPPED_LIMIT:
        raise ValueError(f"Lambda package would be {unzipped / 2**20:.0f} MiB unzipped; the limit is 250 MiB")
    inputs = _entries_sha256(entries)
    kept = _kept(out, inputs)
    if kept is not None:
        return kept
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            executable = name.endswith(".so") or ".so." in name
            info.external_attr = (0o755 if executable else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name])
    partial.replace(out)
    package = _package(out, unzipped)
    record = {"inputs_sha256": inputs, "zip_sha256": package.sha256_hex, "unzipped_bytes": unzipped}
    out.with_name(f"{out.name}.json").write_text(json.dumps(record, sort_keys=True) + "\n")
    return package

"""The Lambda artifact: a zip package built without Docker.

It holds the handler and the project modules it imports (derived from its imports), the bento model (ONNX export and
metadata.json), and onnxruntime + numpy as manylinux x86_64 wheels for the Lambda Python runtime,
fetched with `pip download --platform ... --only-binary=:all:`. The zip is deterministic (sorted
entries, fixed timestamps), so one registry version always gives the same code sha256 and a
second Terraform plan stays empty.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from heartgate.config import PROJECT_ROOT
from heartgate.errors import SourceUnreachableError
from heartgate.packaging import module_files
from heartgate.served_model import METADATA_FILE, ONNX_FILE

LAMBDA_PYTHON = "3.11"  # matches the module's runtime = "python3.11"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
RUNTIME_PACKAGES = ("onnxruntime", "numpy")  # onnxruntime's other requirements are not needed to run a model
HANDLER_MODULE = "service.lambda_handler"  # the function's handler: service.lambda_handler.handler
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
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


def runtime_requirements() -> list[str]:
    """The same versions as this environment's (requirements.lock), for the Lambda platform."""
    return [f"{name}=={version(name)}" for name in RUNTIME_PACKAGES]


def fetch_runtime_wheels(into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    wanted = runtime_requirements()
    if len(list(into.glob("*.whl"))) < len(wanted):
        platforms = [option for platform in PLATFORMS for option in ("--platform", platform)]
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "--implementation", "cp", "--python-version", LAMBDA_PYTHON,
             *platforms, "--dest", str(into), *wanted],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            raise SourceUnreachableError(f"cannot fetch Lambda wheels {wanted}: {lines[-1] if lines else 'pip failed'}")
    return sorted(into.glob("*.whl"))


def _entries(model_dir: Path, wheels: list[Path]) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if not name.endswith("/"):
                    entries[name] = archive.read(name)
    for relative in module_files(HANDLER_MODULE):  # the handler and the project modules it imports
        entries[relative] = (PROJECT_ROOT / relative).read_bytes()
    for name in (ONNX_FILE, METADATA_FILE):
        entries[f"model/{name}"] = (model_dir / name).read_bytes()
    return entries


def build_lambda_package(model_dir: Path, wheels: list[Path], out: Path) -> LambdaPackage:
    entries = _entries(model_dir, wheels)
    unzipped = sum(len(data) for data in entries.values())
    if unzipped > LAMBDA_UNZIPPED_LIMIT:
        raise ValueError(f"Lambda package would be {unzipped / 2**20:.0f} MiB unzipped; the limit is 250 MiB")
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
    digest = hashlib.sha256(out.read_bytes()).digest()
    return LambdaPackage(
        path=out, sha256_base64=base64.b64encode(digest).decode(), size_bytes=out.stat().st_size, unzipped_bytes=unzipped
    )

"""The Lambda wheels are the files requirements.lock pins, checked by sha256, and the package
keeps only what the handler loads."""

import hashlib
import zipfile

import pytest

from heartgate.core.config import PROJECT_ROOT
from heartgate.serving.targets.aws.package import (
    RUNTIME_PACKAGES,
    WheelHashMismatch,
    build_lambda_package,
    check_wheels,
    needed_at_runtime,
    runtime_requirements,
)


def test_the_runtime_wheels_are_pinned_with_their_hash_in_the_lock():
    pinned = runtime_requirements()
    assert sorted(pinned) == sorted(RUNTIME_PACKAGES)
    assert all(" --hash=sha256:" in line for line in pinned.values())


def test_a_wheel_that_is_not_the_pinned_file_is_refused(tmp_path):
    good = tmp_path / "numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl"
    good.write_bytes(b"the pinned bytes")
    pinned = {"numpy": f"numpy==2.4.6 --hash=sha256:{hashlib.sha256(b'the pinned bytes').hexdigest()}"}
    check_wheels([good], pinned)
    good.write_bytes(b"tampered bytes")
    with pytest.raises(WheelHashMismatch, match=r"^Lambda wheel numpy-2\.4\.6-.*\.whl \(sha256 \w{12}…\) is not a file requirements.lock pins"):
        check_wheels([good], pinned)


def test_a_lock_without_hashes_is_refused_in_one_line(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.4.6\nonnxruntime==1.32.0\norjson==3.13.0\n")
    with pytest.raises(WheelHashMismatch, match=r"pins no hash for onnxruntime, numpy, orjson, ecdsa, six: run `make lock`$"):
        runtime_requirements(lock)


def test_what_the_handler_never_loads_stays_out_of_the_package():
    kept = [
        "onnxruntime/capi/onnxruntime_pybind11_state.cpython-311-x86_64-linux-gnu.so",
        "numpy.libs/libscipy_openblas64_-32a4b2a6.so",
        "numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
        "numpy/linalg/__init__.py",
        "onnxruntime/LICENSE",
    ]
    dropped = [
        "onnxruntime/capi/libonnxruntime.so.1.32.0",
        "numpy/_core/tests/test_multiarray.py",
        "numpy/random/mtrand.cpython-311-x86_64-linux-gnu.so",
        "numpy/__init__.pyi",
        "onnxruntime/transformers/fusion_attention.py",
    ]
    assert [name for name in kept if not needed_at_runtime(name)] == []
    assert [name for name in dropped if needed_at_runtime(name)] == []


def test_a_package_built_again_from_the_same_entries_is_the_file_kept_and_nothing_else(tmp_path):
    wheel = tmp_path / "numpy-2.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("numpy/__init__.py", "x = 1\n" * 1000)
    model = tmp_path / "model"
    model.mkdir()
    (model / "scorer.onnx").write_bytes(b"onnx-1")
    (model / "metadata.json").write_text("{}")
    (model / "release.json").write_text("{}")
    out = tmp_path / "packages" / "heartgate-v1.zip"

    first = build_lambda_package(model, PROJECT_ROOT, [wheel], out)
    written = out.stat().st_mtime_ns
    assert build_lambda_package(model, PROJECT_ROOT, [wheel], out) == first and out.stat().st_mtime_ns == written  # kept, not rewritten

    out.write_bytes(out.read_bytes() + b"tampered")  # no longer the file the build recorded: built again
    assert build_lambda_package(model, PROJECT_ROOT, [wheel], out) == first
    (model / "scorer.onnx").write_bytes(b"onnx-2")  # another model: another package
    second = build_lambda_package(model, PROJECT_ROOT, [wheel], out)
    assert second.sha256_base64 != first.sha256_base64
    with zipfile.ZipFile(out) as archive:
        assert archive.read("model/scorer.onnx") == b"onnx-2"

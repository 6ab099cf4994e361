"""Library banners out of the run's log; everything else still through."""

from __future__ import annotations

import subprocess
import sys

from heartgate.core.config import PROJECT_ROOT

CHILD = """
import os, sys
from heartgate.core.quiet import native_stderr_without
with native_stderr_without(("the banner",)):
    os.write(2, b"I0000 the banner, from C++\\n")
    os.write(2, b"a real problem\\n")
    print("from python", file=sys.stderr)
print("after", file=sys.stderr)
"""


def test_only_the_banner_lines_are_dropped_from_file_descriptor_2():
    result = subprocess.run([sys.executable, "-c", CHILD], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["a real problem", "from python", "after"]


def test_tensorflow_imports_without_its_onednn_notice(tmp_path):
    code = "from heartgate.core.quiet import import_tensorflow; print(import_tensorflow().__name__)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(tmp_path)},
    )
    assert result.stdout.strip() == "tensorflow", result.stderr
    assert "oneDNN" not in result.stderr and "absl::InitializeLog" not in result.stderr, result.stderr

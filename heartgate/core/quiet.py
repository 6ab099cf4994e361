"""Quiet, useful logs: what a library says that a person reading a run does not need."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

# Printed by TensorFlow's C++ side on `import tensorflow`, twice, whatever TF_CPP_MIN_LOG_LEVEL
# says. Turning oneDNN off (TF_ENABLE_ONEDNN_OPTS=0) would silence it too, but it changes the
# numerics of every model trained here: the notice is dropped instead.
TENSORFLOW_BANNERS = ("oneDNN custom operations are on", "All log messages before absl::InitializeLog()")


@contextlib.contextmanager
def quiet_logger(name: str, level: int = logging.WARNING) -> Iterator[None]:
    """Only `level` and above from logger `name` (and its children) while the block runs."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


@contextlib.contextmanager
def native_stderr_without(banners: tuple[str, ...]) -> Iterator[None]:
    """File descriptor 2 goes through a pipe while the block runs (C++ libraries write there, not
    to sys.stderr): lines holding one of `banners` are dropped, every other line passes."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    markers = tuple(banner.encode() for banner in banners)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not any(marker in line for marker in markers):
                    os.write(saved, line)

    thread = threading.Thread(target=forward, name="native-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the forwarder reads to the end and stops
        thread.join(timeout=10)
        os.close(saved)


def import_tensorflow() -> ModuleType:
    """`import tensorflow`, without its oneDNN notice."""
    if "tensorflow" not in sys.modules:
        with native_stderr_without(TENSORFLOW_BANNERS):
            import tensorflow  # noqa: F401 - imported for its side effect: TensorFlow loads with its banner silenced
    return sys.modules["tensorflow"]

"""The smoke test every deploy and rollback runs: the model's clearest normal and abnormal test
beats, chosen at evaluation and shipped in its metadata.json, must come back labelled right, from
the promoted registry version. Pure helpers, plus the one HTTP call."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from heartgate.adapters.secrets import api_key_header
from heartgate.core.errors import HeartgateError
from heartgate.serving.served_model import METADATA_FILE, SMOKE_KEY

SMOKE_TIMEOUT_S = 10
EXPECTED_LABELS = [False, True]  # [known-normal, known-abnormal]


class SmokeTestFailed(HeartgateError):
    """The deployed service did not answer the smoke test correctly."""


def pick_smoke_beats(errors: np.ndarray, abnormal: np.ndarray) -> tuple[int, int]:
    """The clearest cases of the test split for this model: the normal beat with the lowest error
    and the abnormal beat with the highest. A correctly served model labels both right."""
    normal_rows, abnormal_rows = np.flatnonzero(~abnormal), np.flatnonzero(abnormal)
    return int(normal_rows[np.argmin(errors[normal_rows])]), int(abnormal_rows[np.argmax(errors[abnormal_rows])])


def smoke_beats(beats: np.ndarray, errors: np.ndarray, abnormal: np.ndarray) -> dict[str, Any]:
    """The record evaluation ships with the model: the two beats and the labels they must get."""
    normal, abnormal_row = pick_smoke_beats(errors, abnormal)
    return {"beats": beats[[normal, abnormal_row]].astype(float).tolist(), "anomaly": EXPECTED_LABELS}


def smoke_payload(model_dir: Path) -> dict[str, Any]:
    """The /predict body of every smoke test, from the packaged model alone."""
    packaged = json.loads((model_dir / METADATA_FILE).read_text())
    if SMOKE_KEY not in packaged:
        raise SmokeTestFailed(f"{model_dir / METADATA_FILE} holds no smoke-test beats; rebuild the bento")
    return {"beats": packaged[SMOKE_KEY]["beats"]}


def smoke_problems(status: int, body: dict[str, Any], expected_version: str) -> list[str]:
    """What is wrong with the answer to [known-normal, known-abnormal]; empty when all is right."""
    if status != 200:
        return [f"/predict answered HTTP {status}: {body.get('error', body)}"]
    problems = []
    if str(body.get("model_version")) != expected_version:
        problems.append(f"served model_version {body.get('model_version')!r}, expected {expected_version!r}")
    labels = [prediction.get("anomaly") for prediction in body.get("predictions", [])]
    if labels != EXPECTED_LABELS:
        problems.append(f"known-normal and known-abnormal beats came back as {labels}, expected {EXPECTED_LABELS}")
    return problems


def check_answer(what: str, status: int, body: dict[str, Any], expected_version: str) -> None:
    problems = smoke_problems(status, body, expected_version)
    if problems:
        raise SmokeTestFailed(f"smoke test of {what} failed: {'; '.join(problems)}")


def post_json(url: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """POST `payload`; `headers` (the key) default to HEARTGATE_API_KEY's."""
    headers = {"content-type": "application/json", **(api_key_header(os.environ) if headers is None else headers)}
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=SMOKE_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, OSError) as exc:
        raise SmokeTestFailed(f"no answer from {url}: {getattr(exc, 'reason', exc)}") from None


def answering_version(url: str) -> str | None:
    """The model_version the service at `url` reports, or None when it does not answer."""
    try:
        request = urllib.request.Request(f"{url}/metadata", headers=api_key_header(os.environ))
        with urllib.request.urlopen(request, timeout=SMOKE_TIMEOUT_S) as response:
            return str(json.loads(response.read())["model_version"])
    except (OSError, ValueError, KeyError):
        return None

"""The serving API's request validation and response shape, shared by every way heartgate serves
(the BentoML service, and the Lambda handler). Pure: bytes in, arrays or a `RequestError` out.

POST /predict  {"beats": [[140 numbers], ...]}
  -> {"predictions": [{"anomaly": bool, "error": float}, ...], "threshold": float, "model_version": str}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from heartgate.ecg import SAMPLES_PER_BEAT

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Limits:
    max_rows: int = 1024
    max_body_bytes: int = 4 * 1024 * 1024

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Limits:
        """HEARTGATE_SERVE__MAX_ROWS / __MAX_BODY_BYTES, the names heartgate's config uses."""
        default = cls()
        return cls(
            max_rows=int(environ.get("HEARTGATE_SERVE__MAX_ROWS", default.max_rows)),
            max_body_bytes=int(environ.get("HEARTGATE_SERVE__MAX_BODY_BYTES", default.max_body_bytes)),
        )


class RequestError(Exception):
    """A bad request: `status` is the 4xx code, the message names the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _reject_constant(token: str) -> float:
    raise RequestError(400, f"{token} is not allowed: every sample must be a finite number")


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, RequestError):
            raise
        raise RequestError(400, f"body is not valid JSON: {exc}") from None


def parse_predict_request(body: bytes, content_type: str | None, limits: Limits) -> np.ndarray:
    """The beats of a /predict request as a (rows, 140) float32 array, or a RequestError."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != JSON_CONTENT_TYPE:
        raise RequestError(415, f"content type must be {JSON_CONTENT_TYPE}, got {content_type or 'none'!r}")
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, f"body is {len(body)} bytes; the limit is {limits.max_body_bytes}")
    payload = _load_json(body)
    if not isinstance(payload, dict) or "beats" not in payload:
        raise RequestError(422, 'body must be an object with a "beats" field')
    beats = payload["beats"]
    if not isinstance(beats, list):
        raise RequestError(422, f'"beats" must be a list of beats, got {type(beats).__name__}')
    if not beats:
        raise RequestError(422, '"beats" is empty: send at least one beat')
    if len(beats) > limits.max_rows:
        raise RequestError(413, f'"beats" has {len(beats)} rows; the limit is {limits.max_rows}')
    for index, beat in enumerate(beats):
        if not isinstance(beat, list):
            raise RequestError(422, f"beat {index} must be a list of {SAMPLES_PER_BEAT} numbers, got {type(beat).__name__}")
        if len(beat) != SAMPLES_PER_BEAT:
            raise RequestError(422, f"beat {index} has {len(beat)} samples; expected {SAMPLES_PER_BEAT}")
        for position, value in enumerate(beat):
            # bool is an int in Python, and a string like "1.0" would convert: neither is a sample.
            if type(value) not in (int, float):
                raise RequestError(422, f"beat {index} sample {position} is not a number: {value!r}")
    array = np.asarray(beats, dtype=np.float64)
    if not np.isfinite(array).all():
        index, position = map(int, np.argwhere(~np.isfinite(array))[0])
        raise RequestError(422, f"beat {index} sample {position} is not finite")
    as_float32 = array.astype(np.float32)
    if not np.isfinite(as_float32).all():
        index, position = map(int, np.argwhere(~np.isfinite(as_float32))[0])
        raise RequestError(422, f"beat {index} sample {position} is out of range for float32")
    return as_float32


def predict_response(errors: np.ndarray, threshold: float, model_version: str) -> dict[str, Any]:
    return {
        "predictions": [{"anomaly": bool(e > threshold), "error": float(e)} for e in errors.tolist()],
        "threshold": threshold,
        "model_version": model_version,
    }


def error_body(message: str) -> dict[str, str]:
    return {"error": message}

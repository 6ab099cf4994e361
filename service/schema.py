"""The serving API's request validation and response shape, shared by every way heartgate serves
(the BentoML service and the Lambda handler). Pure: bytes in, beats or a `RequestError` out; it
imports numpy and orjson only, so the Lambda handler loads it cold in milliseconds.

It enforces the contract `service.contract` declares (the same limits, imported from here), fast:
one orjson parse and one numpy conversion on the happy path; the per-value walk that names the
exact bad sample runs only when that conversion refuses the beats.

POST /predict  {"beats": [[140 numbers], ...]}
  -> {"predictions": [{"anomaly": bool, "error": float}, ...], "threshold": float, "model_version": str}
POST /predict  [[140 numbers], ...]          (the seed tutorial's client: a bare array)
  -> [bool, ...]                             (true = anomaly)
"""

from __future__ import annotations

import hmac
import json
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from heartgate.core.ecg import SAMPLES_PER_BEAT

JSON_CONTENT_TYPE = "application/json"
# ECG5000 beats are z-normalised (|sample| < 10); this bound keeps every reconstruction error
# finite in float32 (a sample of 1e21 squares past float32's range), and names the problem.
MAX_ABS_SAMPLE = 1e6


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


@dataclass(frozen=True)
class Beats:
    """A valid /predict request: the (rows, 140) float32 batch, and whether it came as a bare
    array (then the answer is a bare array of booleans)."""

    array: np.ndarray
    bare: bool = False


def _reject_constant(token: str) -> float:
    raise RequestError(400, f"{token} is not allowed: every sample must be a finite number")


def _load_json(body: bytes) -> Any:  # noqa: ANN401 - any JSON value; the callers check its shape
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass  # orjson's messages are terse: the standard parser names NaN, deep nesting, bad UTF-8
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise RequestError(400, "body is not valid JSON: it is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, RequestError):
            raise
        raise RequestError(400, f"body is not valid JSON: {exc}") from None


def check_api_key(authorization: str | None, api_key: str | None) -> None:
    """The bearer key, when one is required (`api_key` None: open)."""
    if api_key is None:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise RequestError(401, "missing or wrong API key: send the header Authorization: Bearer <key>")


def check_content_type(content_type: str | None) -> None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != JSON_CONTENT_TYPE:
        raise RequestError(415, f"content type must be {JSON_CONTENT_TYPE}, got {content_type or 'none'!r}")


def parse_predict_request(body: bytes, content_type: str | None, limits: Limits) -> Beats:
    """The beats of a /predict request, or a RequestError naming the first problem."""
    check_content_type(content_type)
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, f"body is {len(body)} bytes; the limit is {limits.max_body_bytes}")
    payload = _load_json(body)
    bare = isinstance(payload, list)
    if not bare and (not isinstance(payload, dict) or "beats" not in payload):
        raise RequestError(422, 'body must be an object with a "beats" field, or a bare array of beats')
    beats = payload if bare else payload["beats"]
    if not isinstance(beats, list):
        raise RequestError(422, f'"beats" must be a list of beats, got {type(beats).__name__}')
    if not beats:
        raise RequestError(422, '"beats" is empty: send at least one beat')
    check_rows(len(beats), limits)
    array = _as_array(beats, might_hold_booleans=b"true" in body or b"false" in body)
    return Beats(_checked_range(array), bare=bare)


def check_rows(count: int, limits: Limits) -> None:
    if count > limits.max_rows:
        raise RequestError(413, f'"beats" has {count} rows; the limit is {limits.max_rows}')


def _as_array(beats: list, might_hold_booleans: bool) -> np.ndarray:
    """One numpy conversion when every beat is 140 JSON numbers (ints or floats); otherwise the
    walk that names the first beat or sample that is not."""
    if not might_hold_booleans:
        try:
            array = np.array(beats)
        except (ValueError, OverflowError):
            array = None  # ragged rows
        if array is not None and array.dtype.kind in "if" and array.shape == (len(beats), SAMPLES_PER_BEAT):
            return array.astype(np.float64, copy=False)
    for index, beat in enumerate(beats):
        if not isinstance(beat, list):
            raise RequestError(422, f"beat {index} must be a list of {SAMPLES_PER_BEAT} numbers, got {type(beat).__name__}")
        if len(beat) != SAMPLES_PER_BEAT:
            raise RequestError(422, f"beat {index} has {len(beat)} samples; expected {SAMPLES_PER_BEAT}")
        for position, value in enumerate(beat):
            # bool is an int in Python, and a string like "1.0" would convert: neither is a sample.
            if type(value) not in (int, float):
                raise RequestError(422, f"beat {index} sample {position} is not a number: {reprlib.repr(value)}")
            if type(value) is int and abs(value) > MAX_ABS_SAMPLE:  # also those too long for a float
                raise RequestError(422, _outside(index, position, f"an integer of {len(str(abs(value)))} digits"))
    return np.array(beats, dtype=np.float64)


def _outside(index: int, position: int, what: str) -> str:
    return f"beat {index} sample {position} is {what}, outside ±{MAX_ABS_SAMPLE:g} (beats are z-normalised)"


def _checked_range(array: np.ndarray) -> np.ndarray:
    if not np.isfinite(array).all():
        index, position = map(int, np.argwhere(~np.isfinite(array))[0])
        raise RequestError(422, f"beat {index} sample {position} is not finite")
    with np.errstate(over="ignore"):  # found just below, by position
        as_float32 = array.astype(np.float32)
    if not np.isfinite(as_float32).all():
        index, position = map(int, np.argwhere(~np.isfinite(as_float32))[0])
        raise RequestError(422, f"beat {index} sample {position} is out of range for float32")
    outside = np.abs(array) > MAX_ABS_SAMPLE
    if outside.any():
        index, position = map(int, np.argwhere(outside)[0])
        raise RequestError(422, _outside(index, position, f"{array[index, position]:g}"))
    return as_float32


def predictions(errors: np.ndarray, threshold: float) -> list[dict[str, Any]]:
    if not np.isfinite(errors).all():  # the input bound rules it out; a model must not answer inf
        raise RequestError(422, f"beat {int(np.argwhere(~np.isfinite(errors))[0][0])} has no finite reconstruction error")
    return [{"anomaly": error > threshold, "error": error} for error in errors.tolist()]


def predict_response(errors: np.ndarray, threshold: float, model_version: str, bare: bool = False) -> dict[str, Any] | list[bool]:
    """The /predict answer: the object, or for a bare-array request a bare array of booleans."""
    answered = predictions(errors, threshold)
    if bare:
        return [prediction["anomaly"] for prediction in answered]
    return {"predictions": answered, "threshold": threshold, "model_version": model_version}


def error_body(message: str) -> dict[str, str]:
    return {"error": message}


def dumps(payload: object) -> bytes:
    return orjson.dumps(payload)

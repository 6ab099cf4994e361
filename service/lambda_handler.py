"""AWS Lambda entry point: API Gateway v2 (HTTP API, payload format 2.0) events in, the same API as
the BentoML service out — same routes, same validation, same messages (`service.schema`).

The model directory ships inside the zip package (`model/`); it is loaded once per container.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from heartgate.served_model import ServedModel
from service.schema import JSON_CONTENT_TYPE, Limits, RequestError, error_body, parse_predict_request, predict_response

PACKAGED_MODEL_DIR = Path(__file__).resolve().parent.parent / "model"
_loaded: dict[str, tuple[ServedModel, Limits]] = {}


def _container() -> tuple[ServedModel, Limits]:
    """The model and the serving limits, read once per container (its environment is fixed)."""
    if "container" not in _loaded:
        model = ServedModel.load(Path(os.environ.get("HEARTGATE_MODEL_DIR", PACKAGED_MODEL_DIR)))
        _loaded["container"] = (model, Limits.from_environ(os.environ))
    return _loaded["container"]


def _response(status: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": JSON_CONTENT_TYPE}, "body": json.dumps(payload)}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    http = (event.get("requestContext") or {}).get("http") or {}
    route = (http.get("method", ""), event.get("rawPath", ""))
    model, limits = _container()
    if route == ("GET", "/metadata"):
        return _response(200, model.metadata)
    if route in (("GET", "/livez"), ("GET", "/readyz")):
        return _response(200, {"status": "ok"})
    if route != ("POST", "/predict"):
        return _response(404, error_body(f"no route {route[0]} {route[1]}"))
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    try:
        beats = parse_predict_request(raw, headers.get("content-type"), limits)
    except RequestError as exc:
        return _response(exc.status, error_body(exc.message))
    return _response(200, predict_response(model.errors(beats), model.threshold, model.version))

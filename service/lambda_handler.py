"""AWS Lambda entry point: API Gateway v2 (HTTP API, payload format 2.0) events in, the same API as
the BentoML service out — same routes, same validation, same messages (`service.schema`), the same
bearer key when one is set: read once per container from the Secrets Manager secret
HEARTGATE_API_KEY_SECRET names (boto3 is in the Lambda runtime), or HEARTGATE_API_KEY.

The model directory ships inside the zip package (`model/`); it is loaded once per container, after
its signed release record is checked against HEARTGATE_RELEASE_PUBLIC_KEY: a container whose release
does not verify fails its first request (ReleaseNotVerified) and serves nothing.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heartgate.serving.proof import check_served_model
from heartgate.serving.served_model import ServedModel
from service.schema import (
    JSON_CONTENT_TYPE,
    Limits,
    RequestError,
    check_api_key,
    dumps,
    error_body,
    parse_predict_request,
    predict_response,
)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
PACKAGED_MODEL_DIR = PACKAGE_ROOT / "model"
OPEN_ROUTES = (("GET", "/livez"), ("GET", "/readyz"))


@dataclass(frozen=True)
class Container:
    """What a Lambda container reads once (its environment is fixed)."""

    model: ServedModel
    limits: Limits
    api_key: str | None


_loaded: dict[str, Container] = {}


def _container() -> Container:
    if "container" not in _loaded:
        model_dir = Path(os.environ.get("HEARTGATE_MODEL_DIR", PACKAGED_MODEL_DIR))
        check_served_model(model_dir, PACKAGE_ROOT, os.environ)  # nothing serves without proof
        model = ServedModel.load(model_dir)
        _loaded["container"] = Container(model, Limits.from_environ(os.environ), _api_key())
    return _loaded["container"]


def _api_key() -> str | None:
    secret = os.environ.get("HEARTGATE_API_KEY_SECRET")
    if not secret:
        return os.environ.get("HEARTGATE_API_KEY") or None
    import boto3  # only here: the Lambda runtime has it, the package does not ship it

    return boto3.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]


def _response(status: int, payload: object) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": JSON_CONTENT_TYPE}, "body": dumps(payload).decode()}


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    http = (event.get("requestContext") or {}).get("http") or {}
    route = (http.get("method", ""), event.get("rawPath", ""))
    served = _container()
    if route in OPEN_ROUTES:
        return _response(200, {"status": "ok"})
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    try:
        check_api_key(headers.get("authorization"), served.api_key)
        if route == ("GET", "/metadata"):
            return _response(200, served.model.metadata)
        if route != ("POST", "/predict"):
            return _response(404, error_body(f"no route {route[0]} {route[1]}"))
        body = event.get("body") or ""
        raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
        beats = parse_predict_request(raw, headers.get("content-type"), served.limits)
        model = served.model
        return _response(200, predict_response(model.errors(beats.array), model.threshold, model.version, bare=beats.bare))
    except RequestError as refused:
        return _response(refused.status, error_body(refused.message))

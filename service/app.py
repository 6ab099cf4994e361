"""The HTTP API as a small ASGI app (mounted into the BentoML service). Handling the request
bytes ourselves gives exact 4xx messages for every kind of bad input and keeps the per-request
path short: parse, one ONNX call, serialize."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from heartgate.served_model import ServedModel
from service.schema import Limits, RequestError, error_body, parse_predict_request, predict_response


def create_app() -> Starlette:
    """The model and the limits are attached later (`app.state`), when the service starts."""

    async def predict(request: Request) -> JSONResponse:
        model: ServedModel = request.app.state.model
        limits: Limits = request.app.state.limits
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
            # Refuse before reading a body that is too large.
            return JSONResponse(error_body(f"body is {declared} bytes; the limit is {limits.max_body_bytes}"), 413)
        try:
            beats = parse_predict_request(await request.body(), request.headers.get("content-type"), limits)
        except RequestError as exc:
            return JSONResponse(error_body(exc.message), exc.status)
        return JSONResponse(predict_response(model.errors(beats), model.threshold, model.version))

    async def metadata(request: Request) -> JSONResponse:
        return JSONResponse(request.app.state.model.metadata)

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/metadata", metadata, methods=["GET"])])

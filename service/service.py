"""The BentoML service: the promoted model, packaged by build-bento, served over HTTP.

`POST /predict` is a BentoML API whose input and output are `service.contract`'s models (so it is
in `/docs.json` and `/schema.json`, Swagger can try it, and `bentoml.SyncHTTPClient` calls it);
`GET /metadata` is a small FastAPI app mounted beside it (BentoML APIs are POST only; BentoML
merges a mounted FastAPI app's routes into the OpenAPI document). The health endpoints
(/livez, /readyz, /healthz) and /metrics are BentoML's own. `service.guard` stands in front of
/predict and /metadata: API key, body limits, exact 4xx messages.

The bento server's entry point, and the one module whose import does work (BentoML reads the
bento's build args and builds the service at import): nothing else imports it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import bentoml
import numpy as np
from fastapi import FastAPI, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from heartgate.serving.proof import check_served_model
from heartgate.serving.served_model import BENTO_MODEL_NAME, ServedModel
from service.contract import ApiError, Beat, ModelMetadata, PredictRequest, PredictResponse
from service.guard import BARE_STATE, RequestGuard
from service.schema import JSON_CONTENT_TYPE, Limits, RequestError, check_rows, dumps, error_body, predict_response


class BentoArgs(BaseModel):
    """Set by build-bento (`bentoml.bentos.build(args=...)`) and stored in the bento."""

    model_tag: str = f"{BENTO_MODEL_NAME}:latest"


args = bentoml.use_arguments(BentoArgs)
CODE_ROOT = Path(__file__).resolve().parent.parent  # the bento's src/: where the serving code it vouches for lies
metadata_app = FastAPI(title="heartgate metadata", openapi_url=None, docs_url=None, redoc_url=None)


@metadata_app.get("/metadata", response_model=ModelMetadata, responses={401: {"model": ApiError}}, tags=["Service APIs"])
def metadata(request: Request) -> dict:
    """The served model: registry version, threshold, lineage, test metrics."""
    return request.app.state.model.metadata


# HEARTGATE_SERVE__ACCESS_LOG=false (serve.access_log): no line per request, only errors and start-up.
ACCESS_LOG = os.environ.get("HEARTGATE_SERVE__ACCESS_LOG", "true").lower() != "false"
WORKERS = int(os.environ.get("HEARTGATE_SERVE__WORKERS", "2"))


@bentoml.asgi_app(metadata_app, path="/")
@bentoml.service(name="heartgate", workers=WORKERS, traffic={"timeout": 10}, logging={"access": {"enabled": ACCESS_LOG}})
class Heartgate:
    model_ref = bentoml.models.BentoModel(args.model_tag)

    def __init__(self) -> None:
        # Nothing serves without proof: the release record this model carries must verify with the
        # key the deploy set, and vouch for this ONNX file, threshold and code (else no worker starts).
        check_served_model(Path(self.model_ref.path), CODE_ROOT, os.environ)
        self.model = ServedModel.load(Path(self.model_ref.path))
        self.limits = Limits.from_environ(os.environ)
        metadata_app.state.model = self.model

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(self, beats: list[Beat], context: bentoml.Context) -> PredictResponse:
        """Score beats: `{"beats": [[140 numbers], ...]}` → one prediction per beat (`anomaly`:
        its reconstruction error is above the threshold), the threshold and the model version.
        A bare array of beats (the seed tutorial's client) gets a bare array of booleans."""
        bare = context.request.scope.get("state", {}).get(BARE_STATE, False)
        try:
            check_rows(len(beats), self.limits)
            answer = predict_response(self.model.errors(np.asarray(beats, dtype=np.float32)), self.model.threshold, self.model.version, bare=bare)
        except RequestError as refused:
            context.response.status_code = refused.status  # BentoML sets the context's status on the response
            return Response(dumps(error_body(refused.message)), refused.status, media_type=JSON_CONTENT_TYPE)
        # PredictResponse's shape (tests/service checks it against the model), written by orjson:
        # a pydantic round trip of every prediction would cost more than the model does.
        return Response(dumps(answer), media_type=JSON_CONTENT_TYPE)


class _RefusedInput(logging.Filter):
    """BentoML logs a traceback for every request pydantic refuses: a client's mistake, answered
    with a 4xx that names it (service.guard), not a server error worth 3 KB of log each."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ValidationError))


logging.getLogger("bentoml._internal.server.http_app").addFilter(_RefusedInput())
Heartgate.add_asgi_middleware(RequestGuard)

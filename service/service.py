"""The BentoML service: the promoted model, packaged by build-bento, served over HTTP.

Health endpoints (/livez, /readyz, /healthz) are BentoML's own; /predict and /metadata come from
`service.app`, mounted as an ASGI app so that every bad input gets an exact 4xx message.

The bento server's entry point, and the one module whose import does work (BentoML reads the
bento's build args and builds the service at import): nothing else imports it.
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml
from pydantic import BaseModel

from heartgate.served_model import BENTO_MODEL_NAME, ServedModel
from service.app import create_app
from service.schema import Limits


class BentoArgs(BaseModel):
    """Set by build-bento (`bentoml.bentos.build(args=...)`) and stored in the bento."""

    model_tag: str = f"{BENTO_MODEL_NAME}:latest"


args = bentoml.use_arguments(BentoArgs)
app = create_app()


# HEARTGATE_SERVE__ACCESS_LOG=false (serve.access_log): no line per request, only errors and start-up.
ACCESS_LOG = os.environ.get("HEARTGATE_SERVE__ACCESS_LOG", "true").lower() != "false"


@bentoml.asgi_app(app, path="/")
@bentoml.service(name="heartgate", workers=1, traffic={"timeout": 10}, logging={"access": {"enabled": ACCESS_LOG}})
class Heartgate:
    model_ref = bentoml.models.BentoModel(args.model_tag)

    def __init__(self) -> None:
        app.state.model = ServedModel.load(Path(self.model_ref.path))
        app.state.limits = Limits.from_environ(os.environ)

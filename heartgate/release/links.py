"""Links both ways between the Prefect run and what it made in MLflow.

Prefect -> MLflow: the pages of the training run and of the registered version, on the MLflow UI
people open (`mlflow.ui_url`). MLflow -> Prefect: the run and the version carry the flow run's id,
name and UI URL as tags (`RunOrigin`). A run on Prefect's temporary server (`heartgate run`
without PREFECT_API_URL) has no page that outlives it: its URL is left out, its id stays.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote

from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import RunOrigin

FLOW_SOURCE = "flows/train_and_deploy.py:train_and_deploy"
# MLflow 3's UI opens in its GenAI mode unless told otherwise; this query opens the model-training one.
MODEL_TRAINING = "?workflowType=machine_learning"


def mlflow_ui_url(config: HeartgateConfig) -> str:
    if config.mlflow.ui_url:
        return config.mlflow.ui_url.rstrip("/")
    tracking = config.mlflow.tracking_uri or ""
    if tracking.startswith(("http://", "https://")):
        return tracking.rstrip("/")
    return f"http://{config.stack.host}:{config.stack.mlflow_port}"


def mlflow_run_url(config: HeartgateConfig, experiment_id: str, run_id: str) -> str:
    return f"{mlflow_ui_url(config)}/#/experiments/{experiment_id}/runs/{run_id}{MODEL_TRAINING}"


def mlflow_version_url(config: HeartgateConfig, model_name: str, version: str) -> str:
    return f"{mlflow_ui_url(config)}/#/models/{quote(model_name)}/versions/{version}{MODEL_TRAINING}"


def prefect_run_url(flow_run_id: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The flow run's page, when it runs against a Prefect server that outlives it."""
    api = (os.environ if environ is None else environ).get("PREFECT_API_URL", "")
    if not api:
        return None
    ui = api.rstrip("/").removesuffix("/api")
    return f"{ui}/runs/flow-run/{flow_run_id}"


def run_origin(environ: Mapping[str, str] | None = None) -> RunOrigin | None:
    """The Prefect flow run this code runs in (None outside one)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        from prefect.runtime import flow_run  # inside a task: the flow run it belongs to

        if not flow_run.id:
            return None
        flow_run_id, name = str(flow_run.id), str(flow_run.name)
    else:
        flow_run_id, name = str(context.flow_run.id), context.flow_run.name
    return RunOrigin(flow_run_id=flow_run_id, flow_run_name=name, flow_run_url=prefect_run_url(flow_run_id, environ), source=FLOW_SOURCE)

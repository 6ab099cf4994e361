"""The BentoML service over real HTTP on loopback: a bento built the way build-bento builds it,
serving a tiny model trained on synthetic beats, under `bentoml serve`."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heartgate.bento import build_service_bento, package_model
from heartgate.config import TrainConfig
from heartgate.ecg import parse_canonical_csv
from heartgate.scorer import OnnxScorer
from heartgate.splits import SplitArrays
from heartgate.training import build_scorer, export_onnx, fit_autoencoder
from tests.conftest import free_port, synthetic_csv, wait_until_answering
from tests.service.cases import BAD_REQUESTS, BEAT, MAX_BODY, MAX_ROWS

pytestmark = [pytest.mark.integration, pytest.mark.slow]



@pytest.fixture(scope="module")
def served(tmp_path_factory):
    table = parse_canonical_csv(synthetic_csv({1: 60, 2: 20}))
    arrays = SplitArrays(table.beats[~table.abnormal], table.beats, table.abnormal, table.beats, table.abnormal)
    autoencoder, scaling, _ = fit_autoencoder(arrays, TrainConfig(hidden_units=(16,), latent_units=4, epochs=2), lambda _: None)
    onnx = tmp_path_factory.mktemp("model") / "scorer.onnx"
    export_onnx(build_scorer(autoencoder, scaling), onnx)
    errors = OnnxScorer(onnx).errors(table.beats)
    metadata = {"model_name": "test", "model_version": "http-1", "threshold": float(np.median(errors)), "lineage": {}}
    package_model("heartgate-ecg:vhttp", onnx, metadata)
    build_service_bento("heartgate:vhttp", "heartgate-ecg:vhttp", {})

    port = free_port()
    env = os.environ | {"HEARTGATE_SERVE__MAX_ROWS": str(MAX_ROWS), "HEARTGATE_SERVE__MAX_BODY_BYTES": str(MAX_BODY)}
    bentoml_bin = str(Path(sys.executable).with_name("bentoml"))
    log = (tmp_path_factory.mktemp("serve") / "server.log").open("w")
    server = subprocess.Popen(
        [bentoml_bin, "serve", "heartgate:vhttp", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until_answering(f"{url}/readyz", server, "bento server")
    yield {"port": port, "url": url, "onnx": onnx, "threshold": metadata["threshold"], "beats": table.beats, "pid": server.pid}
    server.send_signal(signal.SIGTERM)  # the arbiter stops its workers
    server.wait(timeout=20)


def request(served, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=10)
    connection.request(method, path, body, headers or {})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    is_json = response.getheader("content-type", "").startswith("application/json")
    return response.status, json.loads(payload) if is_json else {}


def predict(served, payload, content_type: str = "application/json") -> tuple[int, dict]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return request(served, "POST", "/predict", raw, {"content-type": content_type})


def test_predictions_are_the_onnx_errors_against_the_threshold(served):
    beats = served["beats"][:5]
    status, body = predict(served, {"beats": beats.tolist()})
    assert status == 200
    expected = OnnxScorer(served["onnx"]).errors(beats)
    served_errors = np.array([p["error"] for p in body["predictions"]])
    np.testing.assert_allclose(served_errors, expected, rtol=1e-6)
    assert [p["anomaly"] for p in body["predictions"]] == (expected > served["threshold"]).tolist()
    assert body["model_version"] == "http-1" and body["threshold"] == served["threshold"]


def test_metadata_and_health(served):
    status, body = request(served, "GET", "/metadata")
    assert status == 200 and body["model_version"] == "http-1"
    for path in ("/livez", "/readyz"):
        assert request(served, "GET", path)[0] == 200


@pytest.mark.parametrize(("payload", "content_type", "status", "message"), BAD_REQUESTS)
def test_bad_input_is_a_4xx_naming_the_problem_and_the_server_keeps_serving(served, payload, content_type, status, message):
    got_status, body = predict(served, payload, content_type)
    assert (got_status, message in body.get("error", "")) == (status, True), body
    assert predict(served, {"beats": [BEAT]})[0] == 200


def test_the_served_processes_never_load_tensorflow(served):
    workers = subprocess.run(["pgrep", "-P", str(served["pid"])], capture_output=True, text=True).stdout.split()
    group = [str(served["pid"]), *workers]
    maps = {pid: Path(f"/proc/{pid}/maps").read_text() for pid in group}
    assert any("onnxruntime" in text for text in maps.values()), "no server process runs ONNX Runtime"
    assert not [pid for pid, text in maps.items() if "tensorflow" in text], "a server process mapped TensorFlow"

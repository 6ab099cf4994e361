"""The BentoML service over real HTTP on loopback: a bento built the way build-bento builds it,
serving a tiny model trained on synthetic beats, under `bentoml serve`, with an API key."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from heartgate.adapters.processes import descendants
from heartgate.core.config import TrainConfig
from heartgate.core.ecg import parse_canonical_csv
from heartgate.ml.splits import SplitArrays
from heartgate.ml.training import build_scorer, export_onnx, fit_autoencoder
from heartgate.serving.bento import API_DESCRIPTION, build_service_bento, package_model
from heartgate.serving.proof import PUBLIC_KEY_VARIABLE
from heartgate.serving.scorer import OnnxScorer
from service.contract import PredictResponse
from service.guard import DRAIN_BOUND
from tests.conftest import browser_context, free_port, signed_release, synthetic_csv, wait_until_answering
from tests.service.cases import BAD_REQUESTS, BEAT, MAX_BODY, MAX_ROWS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

API_KEY = "served-key-3c9e"  # the test's own; the server reads it from its environment
AUTH = {"authorization": f"Bearer {API_KEY}"}
BODY_TIMEOUT_S = 1


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    table = parse_canonical_csv(synthetic_csv({1: 60, 2: 20}))
    arrays = SplitArrays(table.beats[~table.abnormal], table.beats, table.abnormal, table.beats, table.abnormal, table.labels)
    autoencoder, scaling, _ = fit_autoencoder(arrays, TrainConfig(hidden_units=(16,), latent_units=4, epochs=2), lambda _: None)
    onnx = tmp_path_factory.mktemp("model") / "scorer.onnx"
    export_onnx(build_scorer(autoencoder, scaling), onnx)
    errors = OnnxScorer(onnx).errors(table.beats)
    metadata = {"model_name": "test", "model_version": "http-1", "threshold": float(np.median(errors)), "lineage": {}}
    release, public_key = signed_release(onnx, "http-1", metadata["threshold"], tmp_path_factory.mktemp("keys") / "release.pem")
    package_model("heartgate-ecg:vhttp", onnx, metadata, release)
    build_service_bento("heartgate:vhttp", "heartgate-ecg:vhttp", {})

    port = free_port()
    env = os.environ | {
        "HEARTGATE_SERVE__MAX_ROWS": str(MAX_ROWS),
        "HEARTGATE_SERVE__MAX_BODY_BYTES": str(MAX_BODY),
        "HEARTGATE_SERVE__BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "HEARTGATE_SERVE__ACCESS_LOG": "false",
        "HEARTGATE_API_KEY": API_KEY,
        PUBLIC_KEY_VARIABLE: public_key,  # the served process checks its release with it
    }
    bentoml_bin = str(Path(sys.executable).with_name("bentoml"))
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    server = subprocess.Popen(
        [bentoml_bin, "serve", "heartgate:vhttp", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_answering(f"{url}/readyz", server, "bento server")
    yield {"port": port, "url": url, "onnx": onnx, "threshold": metadata["threshold"], "beats": table.beats, "pid": server.pid, "log": log_path}
    server.send_signal(signal.SIGTERM)  # the arbiter stops its workers
    server.wait(timeout=20)


def request(served, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, object]:
    connection = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=10)
    connection.request(method, path, body, AUTH | (headers or {}))
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    is_json = response.getheader("content-type", "").startswith("application/json")
    return response.status, json.loads(payload) if is_json else {}


def predict(served, payload, content_type: str = "application/json", headers: dict | None = None) -> tuple[int, object]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return request(served, "POST", "/predict", raw, {"content-type": content_type} | (headers or {}))


def test_predictions_are_the_onnx_errors_against_the_threshold(served):
    beats = served["beats"][:5]
    status, body = predict(served, {"beats": beats.tolist()})
    assert status == 200
    PredictResponse.model_validate(body)  # the declared response model
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


def test_the_key_guards_predict_and_metadata_and_not_health(served):
    for headers in ({"authorization": ""}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {API_KEY}"}):
        assert predict(served, {"beats": [BEAT]}, headers=headers) == (401, {"error": "missing or wrong API key: send the header Authorization: Bearer <key>"})
        assert request(served, "GET", "/metadata", headers=headers)[0] == 401
        assert request(served, "GET", "/readyz", headers=headers)[0] == 200


@pytest.mark.parametrize(("payload", "content_type", "status", "message"), BAD_REQUESTS)
def test_bad_input_is_a_4xx_naming_the_problem_and_the_server_keeps_serving(served, payload, content_type, status, message):
    got_status, body = predict(served, payload, content_type)
    assert (got_status, message in body.get("error", "")) == (status, True), body
    assert predict(served, {"beats": [BEAT]})[0] == 200


def test_the_openapi_document_declares_predict_and_metadata_with_the_api_text(served):
    with urllib.request.urlopen(f"{served['url']}/docs.json", timeout=10) as response:
        document = json.loads(response.read())
    assert document["info"]["description"].strip() == API_DESCRIPTION.read_text().strip()  # not the README
    predict_op, metadata_op = document["paths"]["/predict"]["post"], document["paths"]["/metadata"]["get"]
    schema = predict_op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["beats"]["items"]["minItems"] == 140 and schema["properties"]["beats"]["minItems"] == 1
    assert set(predict_op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]) == {"predictions", "threshold", "model_version"}
    assert metadata_op["responses"]["200"]["content"]["application/json"]["schema"]
    # What Swagger's "Try it out" sends: the example, as it is.
    status, body = predict(served, schema["example"])
    assert status == 200 and len(body["predictions"]) == 1


def test_swaggers_try_it_out_on_predict_answers_the_example(served):
    """In a real browser (Debian's chromium): the page at / lists both APIs under the API's own
    text, and "Try it out" → "Execute" on /predict gets a 200 with a prediction. The key goes in
    the browser's headers (Swagger's page has no Authorize field for it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, context = browser_context(playwright, served["url"], extra_http_headers=AUTH)
        page = context.new_page()
        page.goto(f"{served['url']}/", wait_until="load")
        page.wait_for_selector(".opblock-summary-path", timeout=20_000)
        assert {"/predict", "/metadata"} <= set(page.locator(".opblock-summary-path").all_inner_texts())
        description = page.locator(".information-container").inner_text()
        assert "ECG anomaly detection" in description and "make run" not in description
        page.locator(".opblock-post").filter(has_text="/predict").locator(".opblock-summary").click()
        page.get_by_role("button", name="Try it out").click()
        page.get_by_role("button", name="Execute").click()
        status = page.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for(timeout=20_000)
        code, answer = status.inner_text(), page.locator(".live-responses-table tbody .response-col_description pre").first.inner_text()
        browser.close()
    assert code == "200", answer
    assert json.loads(answer)["model_version"] == "http-1" and len(json.loads(answer)["predictions"]) == 1


def test_bentomls_own_client_calls_predict(served):
    import bentoml

    beats = served["beats"][:3]
    with bentoml.SyncHTTPClient(served["url"], token=API_KEY, timeout=10) as client:
        answer = client.predict(beats=beats.tolist())
    assert [p["anomaly"] for p in answer["predictions"]] == (OnnxScorer(served["onnx"]).errors(beats) > served["threshold"]).tolist()


def test_the_seed_tutorials_client_gets_a_bare_array_of_booleans(served):
    """servicerequest.py: a bare JSON array of 140-number rows in, a bare JSON array out."""
    import requests

    beats = served["beats"][:4]
    response = requests.post(f"{served['url']}/predict", data=json.dumps(beats.tolist()), headers={"content-type": "application/json"} | AUTH, timeout=10)
    assert response.status_code == 200
    assert response.json() == (OnnxScorer(served["onnx"]).errors(beats) > served["threshold"]).tolist()


def raw_exchange(served, head: bytes, chunks, pause_s: float = 0.0) -> bytes:
    """Send a request by hand (headers, then each chunk), then read the whole answer."""
    with socket.create_connection(("127.0.0.1", served["port"]), timeout=15) as sock:
        sock.sendall(head)
        for chunk in chunks:
            sock.sendall(chunk)
        time.sleep(pause_s)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


def worker_rss_mb(served) -> float:
    pids = [served["pid"], *descendants(served["pid"])]
    return sum(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") for pid in pids) / 2**20


def test_a_chunked_body_over_the_limit_is_refused_while_read_with_flat_memory(served):
    before = worker_rss_mb(served)
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        + b"Authorization: Bearer "
        + API_KEY.encode()
        + b"\r\n\r\n"
    )
    piece = b"[" + b"0.5," * 262_000 + b"0]"  # ~1 MiB a chunk, 48 of them
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer = raw_exchange(served, head, [*(chunk for _ in range(48)), b"0\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert f"the limit is {MAX_BODY}".encode() in answer
    assert worker_rss_mb(served) - before < 40  # 48 MiB went through; none of it was kept
    assert predict(served, {"beats": [BEAT]})[0] == 200


def test_a_client_that_sends_an_oversized_body_without_waiting_reads_the_413(served):
    import requests

    for size in (MAX_BODY + 1, 20 * 2**20, DRAIN_BOUND):  # requests sends the whole body before it reads
        response = requests.post(f"{served['url']}/predict", data=b" " * size, headers={"content-type": "application/json"} | AUTH, timeout=30)
        assert response.status_code == 413 and response.json() == {"error": f"body is {size} bytes; the limit is {MAX_BODY}"}


def test_a_stalled_body_gets_a_408_not_a_504(served):
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
        + b"Authorization: Bearer "
        + API_KEY.encode()
        + b"\r\n\r\n"
    )
    started = time.monotonic()
    answer = raw_exchange(served, head, [b'{"beats": [['])
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"the body stopped arriving" in answer and time.monotonic() - started < BODY_TIMEOUT_S + 5


def test_content_length_together_with_transfer_encoding_is_a_4xx(served):
    body = json.dumps({"beats": [BEAT]}).encode()
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
        + b"Authorization: Bearer "
        + API_KEY.encode()
        + b"\r\n\r\n"
    )
    answer = raw_exchange(served, head, [f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"])
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500 or status == 200, answer[:300]  # never the 504 of a server waiting on a body
    assert predict(served, {"beats": [BEAT]})[0] == 200


def test_the_served_processes_never_load_tensorflow(served):
    workers = subprocess.run(["pgrep", "-P", str(served["pid"])], capture_output=True, text=True).stdout.split()
    group = [str(served["pid"]), *workers]
    maps = {pid: Path(f"/proc/{pid}/maps").read_text() for pid in group}
    assert any("onnxruntime" in text for text in maps.values()), "no server process runs ONNX Runtime"
    assert not [pid for pid, text in maps.items() if "tensorflow" in text], "a server process mapped TensorFlow"


def test_two_thousand_generated_requests_get_no_5xx(served):
    """Random JSON shapes, huge numbers, deep nesting, bytes that are not UTF-8, wrong content
    types: every answer is a 2xx or a 4xx, and the server still serves."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=8)
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=20)
    rows = st.lists(st.lists(scalars | st.floats(-5, 5), min_size=138, max_size=142) | st.just(BEAT), max_size=MAX_ROWS + 2)
    bodies = st.one_of(
        values.map(lambda value: json.dumps(value).encode()),
        values.map(lambda value: json.dumps({"beats": value}).encode()),
        rows.map(lambda beats: json.dumps({"beats": beats}).encode()),
        rows.map(lambda beats: json.dumps(beats).encode()),
        st.binary(max_size=400),
        st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
        st.integers(300, 2000).map(lambda digits: b'{"beats": [[' + b"9" * digits + b", 0.5" * 139 + b"]]}"),
    )
    content_types = st.sampled_from(["application/json"] * 6 + ["application/json; charset=latin-1", "text/plain", "", "multipart/form-data"])
    connection = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=15)
    answered: list[int] = []

    @settings(max_examples=2000, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(bodies, content_types)
    def ask(body: bytes, content_type: str) -> None:
        connection.request("POST", "/predict", body, {"content-type": content_type} | AUTH)
        response = connection.getresponse()
        response.read()
        answered.append(response.status)
        if response.getheader("connection", "").lower() == "close":
            connection.close()
        assert response.status < 500, (response.status, body[:200], content_type)

    ask()
    connection.close()
    assert len(answered) >= 2000 and {200, 400, 415, 422} <= set(answered)
    assert predict(served, {"beats": [BEAT]})[0] == 200
    assert "Traceback" not in served["log"].read_text()  # a client's mistake is not a server error

import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from heartgate.adapters.dependencies import (
    Dependency,
    DependencyDown,
    dependencies_of,
    http_probe,
    require,
)
from heartgate.core.config import load_config


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_embedded_default_depends_on_no_server(tmp_path):
    assert dependencies_of(load_config(overrides={"state_dir": str(tmp_path)}), None, None) == []


def test_the_team_settings_name_each_server(tmp_path):
    config = load_config(overrides={"state_dir": str(tmp_path), "mlflow": {"tracking_uri": "http://mlflow:5000"}, "data": {"remote": "s3://team/dvc"}})
    found = dependencies_of(config, "http://prefect:4200/api", "http://127.0.0.1:9")
    assert [(d.name, d.url) for d in found] == [
        ("the MLflow tracking server", "http://mlflow:5000"),
        ("the Prefect API", "http://prefect:4200/api"),
        ("S3 (the DVC remote)", "s3://team/dvc via http://127.0.0.1:9"),
    ]  # the deploy target adds its own: tests/heartgate/serving/targets/test_targets.py


def test_a_server_that_never_answers_fails_in_one_line_within_the_wait():
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(
        DependencyDown, match=rf"^the MLflow tracking server at {url} did not answer for 1.5s \(\[Errno 111\] Connection refused\); nothing was changed$"
    ):
        require([Dependency("the MLflow tracking server", url, http_probe(f"{url}/health"))], wait_s=1.5)
    assert time.monotonic() - started < 5


def test_any_http_answer_counts_and_a_late_server_is_waited_for():
    port = closed_port()

    class Unauthorized(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args):
            pass

    def start_late() -> None:
        time.sleep(1)
        HTTPServer(("127.0.0.1", port), Unauthorized).handle_request()

    threading.Thread(target=start_late, daemon=True).start()
    require([Dependency("the Prefect API", f"http://127.0.0.1:{port}", http_probe(f"http://127.0.0.1:{port}/health"))], wait_s=10)


@pytest.mark.integration
def test_heartgate_run_with_mlflow_down_fails_within_30s_in_one_line(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "heartgate.cli", "run", "--state-dir", str(tmp_path / "state"), "--tracking-uri", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1 and elapsed < 30, (elapsed, result.stderr[-2000:])
    assert result.stderr.splitlines() == [
        f"heartgate: error: the MLflow tracking server at {url} did not answer for 10s ([Errno 111] Connection refused); nothing was changed"
    ]
    assert not (tmp_path / "state" / "mlflow" / "mlflow.db").exists()

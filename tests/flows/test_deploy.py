"""build-bento and terraform-apply on the local target, through `heartgate run`: real Terraform,
a real bento server, real HTTP on loopback. Small models (5 and 20 epochs) keep it fast; the
20-epoch model beats the 5-epoch one on both precision and recall."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from heartgate.adapters.registry import PREVIOUS_ALIAS, PRODUCTION_ALIAS
from heartgate.adapters.state import StatePaths
from heartgate.core.config import load_config
from heartgate.serving.targets import target_for
from tests.conftest import WebhookReceiver, clean_environment, free_port, register_outside_heartgate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "heartgate-ecg-autoencoder"


@pytest.fixture(scope="module")
def site(tmp_path_factory, undeploy_at_teardown):
    state = tmp_path_factory.mktemp("deploy") / "state"
    undeploy_at_teardown(state)
    port = free_port()
    env = clean_environment()

    def heartgate(*args: str, serve_port: int = port, api_key: str | None = None) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "heartgate.cli", *args, "--state-dir", str(state), "--set", f"serve.port={serve_port}"]
        keyed = env | ({"HEARTGATE_API_KEY": api_key} if api_key else {})
        return subprocess.run(command, env=keyed, capture_output=True, text=True, timeout=600)

    first = heartgate("run", "--auto-approve", "--set", "train.epochs=5")
    assert first.returncode == 0, first.stderr[-3000:]
    return {"state": state, "url": f"http://127.0.0.1:{port}", "heartgate": heartgate, "first": first}


def served_version(url: str, api_key: str | None = None) -> str:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    with urllib.request.urlopen(urllib.request.Request(f"{url}/metadata", headers=headers), timeout=5) as response:
        return json.loads(response.read())["model_version"]


def server_pid(state: Path) -> int:
    return int((StatePaths(state).root / "deploy" / "local" / "server.pid").read_text())


def aliases(state: Path) -> dict[str, str]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=StatePaths(state).mlflow_tracking_uri)
    return {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}


def test_the_run_ends_with_the_promoted_model_served(site):
    assert "deployed heartgate:v1 to local at " + site["url"] in site["first"].stdout
    assert served_version(site["url"]) == "1"
    deployed = target_for(load_config(overrides={"state_dir": str(site["state"])})).current()
    assert (deployed.bento_tag, deployed.registry_version, deployed.url) == ("heartgate:v1", "1", site["url"])


def test_a_second_apply_of_the_same_version_changes_nothing(site):
    target = target_for(load_config(overrides={"state_dir": str(site["state"])}), log=lambda _: None)
    assert target.terraform().plan_has_changes(target.current().variables) is False


def test_a_changed_port_moves_production_only_when_a_deploy_applies_it(site):
    """A run that sets serve.port (for the deploy it may make) reconciles first: production is
    checked where Terraform serves it, and stays there."""
    elsewhere = free_port()
    status = site["heartgate"]("status", serve_port=elsewhere)
    assert status.returncode == 0, status.stdout + status.stderr[-2000:]
    assert f"actual version 1 deployed at {site['url']}, answering as version 1; its settings differ from the config" in status.stdout
    reconciled = site["heartgate"]("reconcile", serve_port=elsewhere)
    assert reconciled.returncode == 0, reconciled.stderr[-2000:]
    assert reconciled.stdout == f"local: serves version 1 at {site['url']}, smoke-tested\n"
    assert served_version(site["url"]) == "1"
    with pytest.raises(OSError):
        served_version(f"http://127.0.0.1:{elsewhere}")
    deployed = target_for(load_config(overrides={"state_dir": str(site["state"])})).current()
    assert (deployed.url, deployed.variables["port"]) == (site["url"], int(site["url"].rpartition(":")[2]))


def test_a_failed_smoke_test_rolls_back_to_the_serving_model(site):
    before = server_pid(site["state"])
    # The 20-epoch candidate passes the gate; its server refuses the 2-beat smoke request (max_rows=1).
    failed = site["heartgate"]("run", "--auto-approve", "--set", "train.epochs=20", "--set", "serve.max_rows=1")
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("heartgate: error: deploy of heartgate:v2 failed: smoke test of ")
    assert last.endswith("rolled back: heartgate:v1 (version 1) is serving again")
    assert served_version(site["url"]) == "1"
    assert server_pid(site["state"]) != before  # Terraform put the previous deployment back
    assert aliases(site["state"]) == {"candidate": "2", PRODUCTION_ALIAS: "1"}
    assert target_for(load_config(overrides={"state_dir": str(site["state"])})).current().registry_version == "1"


def test_a_better_candidate_is_deployed_and_heartgate_rollback_undoes_it(site):
    """v3 is deployed with serve.api_key=required: the server reads the key from the deploying
    environment, which Terraform never writes down; the smoke test and status send it."""
    key = "deploy-key-81f2"
    keyless = site["heartgate"]("run", "--auto-approve", "--set", "train.epochs=20", "--set", "serve.api_key=required")
    assert keyless.returncode == 1
    assert keyless.stderr.strip().splitlines()[-1] == (
        "heartgate: error: serve.api_key is required for the local target but HEARTGATE_API_KEY is not set in the environment"
    )
    assert served_version(site["url"]) == "1" and aliases(site["state"]) == {"candidate": "2", PRODUCTION_ALIAS: "1"}  # nothing moved
    deployed = site["heartgate"]("run", "--auto-approve", "--set", "train.epochs=20", "--set", "serve.api_key=required", api_key=key)
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    assert served_version(site["url"], api_key=key) == "3"
    with pytest.raises(urllib.error.HTTPError, match="401"):
        served_version(site["url"])
    assert not [path for path in site["state"].rglob("*") if path.is_file() and key.encode() in path.read_bytes()]
    assert aliases(site["state"]) == {"candidate": "3", PRODUCTION_ALIAS: "3", PREVIOUS_ALIAS: "1"}

    status = site["heartgate"]("status", "--set", "serve.api_key=required", api_key=key)
    assert status.returncode == 0, status.stderr[-2000:]
    assert f"local: desired version 3 (@production); actual version 3 deployed at {site['url']}, answering as version 3\n" in status.stdout
    assert "-> bento heartgate:v3 -> never reconciled" in status.stdout

    rolled = site["heartgate"]("rollback")
    assert rolled.returncode == 0, rolled.stderr[-3000:]
    assert served_version(site["url"]) == "1"
    assert aliases(site["state"]) == {"candidate": "3", PRODUCTION_ALIAS: "1"}
    again = site["heartgate"]("rollback")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1] == ("heartgate: error: nothing to roll back to: model 'heartgate-ecg-autoencoder' has no @previous version")


def test_a_bento_rebuilt_from_the_registry_has_the_same_model_files(site):
    bentoml_home = StatePaths(site["state"]).root / "bentoml"
    model_dir = bentoml_home / "models" / "heartgate-ecg" / "v1"

    def digest() -> dict[str, str]:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(model_dir.iterdir()) if p.suffix in (".onnx", ".json") and p.name != "model.yaml"
        }

    first = digest()
    shutil.rmtree(model_dir)
    shutil.rmtree(bentoml_home / "bentos" / "heartgate" / "v1")
    rebuilt = site["heartgate"]("build-bento", "1")
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert digest() == first and set(first) == {"scorer.onnx", "metadata.json", "release.json"}


def test_a_target_defined_outside_heartgate_is_reconciled_and_reported_like_the_others(site, tmp_path):
    """tests/heartgate/serving/targets/edge.py declares a target (its section, key policy,
    dependency probe) and touches no heartgate module; status and reconcile run through it."""
    store = tmp_path / "device"

    def edge(*args: str) -> subprocess.CompletedProcess:
        edge_settings = ["--target", "edge", "--set", f"deploy.edge.store={store}", "--set", "dependencies.wait_s=0.5"]
        command = [sys.executable, "-m", "tests.heartgate.serving.targets.edge", *args, "--state-dir", str(site["state"]), *edge_settings]
        return subprocess.run(command, env=clean_environment(), capture_output=True, text=True, timeout=300)

    down = edge("status")
    assert down.returncode == 1 and down.stderr.splitlines() == [
        f"heartgate: error: the edge store at {store} did not answer for 0.5s (no such directory); nothing was changed"
    ]
    store.mkdir()
    behind = edge("status")
    production = aliases(site["state"])[PRODUCTION_ALIAS]
    assert behind.returncode == 1 and behind.stderr.strip().splitlines()[-1] == (
        f"heartgate: error: edge is out of sync: desired version {production} (@production), actual nothing deployed (run `heartgate reconcile`)"
    )
    repaired = edge("reconcile")
    assert repaired.returncode == 0, repaired.stderr[-3000:]
    assert repaired.stdout.startswith(f"edge: redeployed version {production} at edge://{store}, smoke-tested")
    synced = edge("status")
    assert synced.returncode == 0, synced.stderr[-2000:]
    assert (
        f"edge: desired version {production} (@production); actual version {production} deployed at edge://{store}, answering as version {production}\n"
        in synced.stdout
    )
    assert served_version(site["url"]) == production  # the local target serves on, untouched


def test_every_promotion_leaves_a_signed_record_that_verify_checks(site):
    import mlflow

    key_file = StatePaths(site["state"]).release_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # made on first use; only this user reads it
    good = site["heartgate"]("verify", "1")
    assert good.returncode == 0, good.stderr[-2000:]
    assert good.stdout.startswith("version 1: release record verified (key ") and "approved by auto at " in good.stdout
    history = site["heartgate"]("history")
    assert history.returncode == 0 and "    release record: signed by key " in history.stdout

    client = mlflow.MlflowClient(tracking_uri=StatePaths(site["state"]).mlflow_tracking_uri)
    stored = client.get_model_version(MODEL, "1").tags["release.record"]
    forged = json.loads(stored)
    forged["record"]["approver"] = "mallory"  # what anyone with edit rights on the model could write
    client.set_model_version_tag(MODEL, "1", "release.record", json.dumps(forged))
    try:
        refused = site["heartgate"]("verify", "1")
        assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
            "heartgate: error: version 1's release record does not match its signature (it was changed after signing)"
        ]
    finally:
        client.set_model_version_tag(MODEL, "1", "release.record", stored)


def test_a_version_moved_into_production_outside_heartgate_is_never_served(site):
    """Attack 1 of issue 22: before, reconcile deployed whatever @production named and exited 0."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=StatePaths(site["state"]).mlflow_tracking_uri)
    assert aliases(site["state"])[PRODUCTION_ALIAS] == "1" and served_version(site["url"]) == "1"
    pid = server_pid(site["state"])
    forged = register_outside_heartgate(site["state"], "1")
    client.set_registered_model_alias(MODEL, PRODUCTION_ALIAS, forged)  # what the MLflow UI lets any editor do

    status = site["heartgate"]("status")
    assert status.returncode == 1
    assert status.stderr.strip().splitlines()[-1] == (
        f"heartgate: error: local: @production version {forged} will not be served: version {forged} has no release record: "
        "it was not promoted through heartgate (the watchdog or `heartgate reconcile` refuses it)"
    )
    webhook = WebhookReceiver()
    try:
        refused = site["heartgate"]("reconcile", "--set", f"approval.notify.webhook_url={webhook.url}")
        alerts = webhook.messages_about(f"refused @production version {forged}")
    finally:
        webhook.server.shutdown()
    assert refused.returncode == 1
    line = (
        f"refused @production version {forged}: version {forged} has no release record: it was not promoted through heartgate; "
        "local serves version 1, and @production is back on it"
    )
    assert refused.stderr.strip().splitlines()[-1] == f"heartgate: error: {line}"
    assert [alert["text"] for alert in alerts] == [f"heartgate: {line}"]
    assert served_version(site["url"]) == "1" and server_pid(site["state"]) == pid  # never stopped, never replaced
    assert aliases(site["state"])[PRODUCTION_ALIAS] == "1"
    assert "not served, its release does not verify" in client.get_model_version(MODEL, forged).tags["rejected"]
    after = site["heartgate"]("status")
    assert after.returncode == 1 and f"a release was refused, version {forged} at " in after.stderr


def test_a_replaced_onnx_artifact_is_refused_and_the_verified_copy_keeps_serving(site):
    """Attack 3: the registry's ONNX file of the production version is swapped after it was deployed."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=StatePaths(site["state"]).mlflow_tracking_uri)
    version = client.get_model_version(MODEL, "1")
    (onnx,) = (StatePaths(site["state"]).root / "mlflow").rglob(f"{version.run_id}/artifacts/{version.tags['onnx_artifact']}")  # the store's copy
    original = onnx.read_bytes()
    pid = server_pid(site["state"])
    onnx.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        refused = site["heartgate"]("reconcile")
        assert refused.returncode == 1
        assert (
            refused.stderr.strip()
            .splitlines()[-1]
            .startswith("heartgate: error: refused @production version 1: version 1's ONNX model is not the one that was gated and approved (")
        )
        assert refused.stderr.strip().endswith("; local keeps serving its verified copy of version 1 (checked against the signed record)")
        assert served_version(site["url"]) == "1" and server_pid(site["state"]) == pid
        assert site["heartgate"]("status").returncode == 1
    finally:
        onnx.write_bytes(original)
    assert site["heartgate"]("verify", "1").returncode == 0

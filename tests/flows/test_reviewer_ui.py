"""A reviewer's day in the real UIs, in Debian's Chromium driven by Playwright, against
`heartgate up` (Prefect server and UI, a worker, the MLflow UI) with a webhook receiver on
loopback for the approval notification:

1. Run on the manual deployment with the typed form (Custom run, epochs 2); the run waits; the
   webhook is told once, naming the run and the version; the Resume form shows the gate table,
   the per-class rows, the histogram and the MLflow links; approve there (reviewer + comment);
   the run ends Completed with a "deployed" message and tag; the MLflow link opens the run,
   whose loss curve is drawn, and which links back to the flow run.
2. A second run (epochs 40, which beats 2 on both metrics) is rejected in the form: it ends
   "rejected", production stays version 1 and still serves.

Every step's screenshot lands in <state>/screenshots.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heartgate.adapters.registry import PRODUCTION_ALIAS
from tests.conftest import WebhookReceiver, browser_context, clean_environment, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "heartgate-ecg-autoencoder"


def heartgate(site, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "heartgate.cli", *args, "--state-dir", str(site["state"])], env=site["env"], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory, undeploy_at_teardown, reference_csv_gz):
    webhook = WebhookReceiver()
    state = tmp_path_factory.mktemp("reviewer") / "state"
    undeploy_at_teardown(state)
    settings = {
        "stack.prefect_port": free_port(),
        "stack.mlflow_port": free_port(),
        "serve.port": free_port(),
        "stack.watchdog_interval_s": 3600,
        "approval.notify.webhook_url": webhook.url,
        "approval.poll_interval_s": 1,
        "data.source": str(reference_csv_gz),
        "data.sha256": "null",
    }
    env = clean_environment(train_cache=False)  # the reviewer watches a real training
    site = {"state": state, "env": env, "webhook": webhook, "shots": state / "screenshots"}
    up = heartgate(site, "up", *(arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")))
    assert up.returncode == 0, up.stderr[-3000:]
    site["prefect"] = re.search(r"Prefect UI\s+(\S+)", up.stdout).group(1)
    site["mlflow"] = re.search(r"MLflow UI\s+(\S+)", up.stdout).group(1)
    site["env"] = env | {"PREFECT_API_URL": f"{site['prefect']}/api"}
    yield site
    down = heartgate(site, "down")
    webhook.server.shutdown()
    assert down.returncode == 0, down.stderr


@pytest.fixture(scope="module")
def reviewer(site):
    """One browser for the module: it reaches the Prefect and MLflow UIs and nothing else."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, context = browser_context(playwright, site["prefect"], site["mlflow"], viewport={"width": 1400, "height": 1200})
        context.set_default_timeout(30_000)
        yield Reviewer(context.new_page(), site)
        browser.close()


class Reviewer:
    """What a person does in the UIs, one screenshot per step."""

    def __init__(self, page, site) -> None:
        self.page, self.site, self.step = page, site, 0
        self.manual = Api(site)._read(lambda client: client.read_deployment_by_name("train-and-deploy/manual").id)
        site["shots"].mkdir(parents=True, exist_ok=True)

    def shot(self, name: str) -> None:
        self.step += 1
        self.page.screenshot(path=str(self.site["shots"] / f"{self.step:02d}-{name}.png"), full_page=True)

    def run_with_epochs(self, epochs: int) -> None:
        """Run → Custom run on the manual deployment, the typed form's Training epochs set."""
        page = self.page
        page.goto(f"{self.site['prefect']}/deployments/deployment/{self.manual}")
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("Custom run", exact=True).click()
        field = page.locator(".schema-form-property").filter(has_text=re.compile("^Training epochs"))
        field.get_by_text("How many epochs the autoencoder trains").wait_for()  # the field's description is on the form
        margin = page.locator(".schema-form-property").filter(has_text=re.compile("^Gate margin")).locator("input")
        # "Use the config" is an empty number field, not a sentinel (0 epochs, margin -1); it stays empty.
        assert (field.locator("input").input_value(), margin.input_value(), margin.get_attribute("type")) == ("", "", "number")
        field.locator("input").fill(str(epochs))
        self.shot(f"custom-run-epochs-{epochs}")
        refusals = []
        for _ in range(3):  # a click not taken is clicked again, as a person would
            created = self.submit(page.get_by_role("button", name="Submit"), posting_to="/create_flow_run", refusals=refusals)
            if created is not None:
                break
        assert created is not None, "the Custom run form never created the run: " + "; ".join(refusals)
        assert created.ok, f"create_flow_run answered HTTP {created.status}: {created.text()[:500]}"
        choices = created.request.post_data_json["parameters"]["choices"]
        assert choices.get("epochs") == epochs and choices.get("gate_margin") is None, choices  # empty: sent as nothing
        # The UI goes back to the deployment once the run is created. Wait with Playwright, not
        # time.sleep: its route handler (loopback only) runs only while Playwright is called.
        page.wait_for_url(re.compile(r"/deployments/deployment/[^/]+\?tab=Runs"))

    def open_resume_form(self, run_id: str):
        self.page.goto(f"{self.site['prefect']}/runs/flow-run/{run_id}")
        self.page.get_by_role("button", name="Resume", exact=True).click()
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_text("Promotion gate: PASSED").wait_for()
        return dialog

    def answer(self, dialog, approve: bool, reviewer: str, comment: str, tries: int = 3) -> None:
        """Fill the form and submit it until the server accepts the answer, as a person would when
        the form stays open after Submit: the server was busy (a 503, seen in CI under load), the
        form did not post, or the server refused input it could not validate (the run stays
        paused). Any other refusal fails the test at once."""
        refusals: list[str] = []
        for _ in range(tries):
            switch = dialog.get_by_role("switch")
            if switch.is_checked() != approve:
                switch.click()
            dialog.locator(".schema-form-property").filter(has_text=re.compile("^Reviewer")).locator("textarea").fill(reviewer)
            dialog.locator(".schema-form-property").filter(has_text=re.compile("^Comment")).locator("textarea").fill(comment)
            self.shot(f"{'approve' if approve else 'reject'}-form-filled")
            posted = self.submit(dialog.get_by_role("button", name="Submit"), posting_to="/resume", refusals=refusals)
            if posted is None:
                continue
            assert posted.ok, f"resume answered HTTP {posted.status}: {posted.text()[:500]}"
            result = posted.json()
            if result["status"] == "ACCEPT":
                dialog.wait_for(state="hidden")
                return
            assert "validation" in str(result["details"]).lower(), f"resume refused: {result['details']}"
            refusals.append(f"the server refused the input: {result['details']}")
        raise AssertionError(f"the Resume form never took the answer in {tries} tries: " + "; ".join(refusals))

    def submit(self, button, posting_to: str, refusals: list[str]):
        """Click a form's Submit; the response to the POST it sends (URL ending `posting_to`), or
        None, with the reason added to `refusals`, when it sends none within 30 s or the server
        answers 503 (Prefect's "busy, try again": its own client retries those too)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            with self.page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith(posting_to), timeout=30_000) as posted:
                button.click()
        except PlaywrightTimeout:
            refusals.append(f"the form posted nothing in 30 s; it shows: {self.page.locator('body').inner_text()[-300:]!r}")
            return None
        if posted.value.status == 503:
            refusals.append(f"{posting_to} answered 503: {posted.value.text()[:200]}")
            self.page.wait_for_timeout(3_000)
            return None
        return posted.value


class Api:
    """The Prefect API, read the way the UI reads it."""

    def __init__(self, site) -> None:
        self.url = f"{site['prefect']}/api"

    def _read(self, read):
        from prefect import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.url}), get_client(sync_client=True) as client:
            return read(client)

    def new_run_of(self, deployment_id, known: set, timeout: float = 60):
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        only = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = [run for run in self._read(lambda client: client.read_flow_runs(deployment_filter=only)) if run.id not in known]
            if new:
                return new[0]
            time.sleep(1)
        raise AssertionError("the Run form created no flow run")

    def wait(self, run_id, until, timeout: float = 300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self._read(lambda client: client.read_flow_run(run_id))
            if run.state and until(run.state):
                return run
            time.sleep(1)
        raise AssertionError(f"flow run {run_id} still {run.state.name if run.state else None} after {timeout}s")


def registry(site):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{site['state'] / 'mlflow' / 'mlflow.db'}")


@pytest.fixture(scope="module")
def approved(site, reviewer):
    """Step 1: Run with the typed form, decide from the Resume form alone, approve there."""
    api = Api(site)
    reviewer.run_with_epochs(2)
    run = api.new_run_of(reviewer.manual, known=set())
    waiting = api.wait(run.id, lambda state: state.is_paused() or state.is_final())
    assert waiting.state.name == "Suspended", waiting.state.message
    dialog = reviewer.open_resume_form(str(run.id))
    page = {
        "text": dialog.inner_text(),
        "image_width": dialog.locator("img").first.evaluate("image => image.complete ? image.naturalWidth : 0"),
        "mlflow_run": dialog.get_by_role("link", name=re.compile("^MLflow run of v1")).get_attribute("href"),
        "mlflow_version": dialog.get_by_role("link", name="registry: v1").get_attribute("href"),
    }
    reviewer.shot("resume-form-evidence")
    reviewer.answer(dialog, approve=True, reviewer="dr-ada", comment="fine on every class")
    final = api.wait(run.id, lambda state: state.is_final())
    reviewer.page.goto(f"{site['prefect']}/runs/flow-run/{run.id}")
    reviewer.page.get_by_text("outcome:deployed").first.wait_for()  # the outcome, at a glance on the run's page
    reviewer.shot("approved-run-completed")
    return {"run": final, "page": page}


def test_the_resume_form_is_enough_to_decide(approved):
    text = approved["page"]["text"]
    assert "Promote heartgate-ecg-autoencoder version 1 to production?" in text
    assert re.search(r"precision\s+0\.\d{4}", text) and re.search(r"recall\s+0\.\d{4}", text)  # the gate table
    for row in ("1 normal", "2 R-on-T PVC", "3 PVC", "4 SP or EB", "5 unclassified beat"):  # recall on each class
        assert row in text, row
    assert "Confusion matrices" in text and " TP" in text and " FN" in text
    assert approved["page"]["image_width"] > 0  # the error histogram, drawn
    assert approved["page"]["mlflow_run"].startswith("http://127.0.0.1:") and "/runs/" in approved["page"]["mlflow_run"]
    assert "/#/models/heartgate-ecg-autoencoder/versions/1" in approved["page"]["mlflow_version"]


def test_an_approved_run_ends_deployed_with_the_outcome_in_message_and_tag(site, approved):
    run = approved["run"]
    assert run.state.is_completed(), run.state.message
    assert run.state.message.startswith("promoted version 1 to @production (approved by dr-ada) and deployed heartgate:v1 to local")
    assert "outcome:deployed" in run.tags
    assert str(registry(site).get_model_version_by_alias(MODEL, PRODUCTION_ALIAS).version) == "1"


def test_the_webhook_was_told_once_naming_the_run_and_the_version(site, approved):
    run = approved["run"]
    (message,) = site["webhook"].messages_about(run.name)
    assert message["subject"] == f"heartgate: {run.name} waits for approval of version 1"
    assert str(run.id) in message["text"] and f"{site['prefect']}/runs/flow-run/{run.id}" in message["text"]


def test_mlflow_shows_the_loss_curve_and_links_back_to_the_flow_run(site, reviewer, approved):
    run = approved["run"]
    page = reviewer.page
    page.goto(approved["page"]["mlflow_run"], wait_until="load")  # MLflow's pages never reach networkidle
    page.get_by_text("train_and_deploy.py:train_and_deploy").first.wait_for()  # Source: heartgate's flow, not Prefect's engine
    reviewer.shot("mlflow-run-overview")
    page.get_by_text("Model metrics", exact=True).first.click()
    page.get_by_text("loss", exact=True).first.wait_for()  # the chart's title
    page.get_by_text("Step", exact=True).first.wait_for()  # a line over the epochs (a single value is drawn as a bar)
    reviewer.shot("mlflow-loss-curve")
    mlflow_run = registry(site).get_run(registry(site).get_model_version(MODEL, "1").run_id)
    assert mlflow_run.data.tags["prefect.flow_run_id"] == str(run.id)
    assert mlflow_run.data.tags["prefect.flow_run_url"] == f"{site['prefect']}/runs/flow-run/{run.id}"
    assert len(registry(site).get_metric_history(mlflow_run.info.run_id, "loss")) == 2  # one point per epoch
    assert mlflow_run.info.end_time - mlflow_run.info.start_time >= 1000 * float(mlflow_run.data.metrics["train_seconds"])
    version = registry(site).get_model_version(MODEL, "1")
    assert version.tags["prefect.flow_run_id"] == str(run.id) and str(run.id) in version.description


def test_a_run_rejected_in_the_form_ends_rejected_and_production_stays(site, reviewer, approved):
    api = Api(site)
    reviewer.run_with_epochs(40)  # 40 epochs beat 2 on both metrics: it passes the gate and waits
    run = api.new_run_of(reviewer.manual, known={approved["run"].id})
    waiting = api.wait(run.id, lambda state: state.is_paused() or state.is_final())
    assert waiting.state.name == "Suspended", waiting.state.message
    dialog = reviewer.open_resume_form(str(run.id))
    assert "production v1 flagged" in dialog.inner_text()  # both models, side by side
    reviewer.shot("second-resume-form")
    reviewer.answer(dialog, approve=False, reviewer="dr-bo", comment="want more class 5 beats first")
    final = api.wait(run.id, lambda state: state.is_final())
    reviewer.page.goto(f"{site['prefect']}/runs/flow-run/{run.id}")
    reviewer.page.get_by_text("outcome:rejected").first.wait_for()
    reviewer.shot("rejected-run-completed")

    assert final.state.is_completed(), final.state.message
    assert final.state.message == "not promoted: version 2 rejected by dr-bo; production unchanged"
    assert "outcome:rejected" in final.tags
    assert str(registry(site).get_model_version_by_alias(MODEL, PRODUCTION_ALIAS).version) == "1"
    status = heartgate(site, "status")
    assert status.returncode == 0 and "local: desired version 1" in status.stdout, status.stdout + status.stderr
    (message,) = site["webhook"].messages_about(final.name)
    assert "version 2" in message["subject"] and "(now: version 1)" in message["text"]

    history = heartgate(site, "history")
    assert history.returncode == 0, history.stderr
    assert "v2  rejected by dr-bo" in history.stdout and "why: want more class 5 beats first" in history.stdout
    assert "v1  promoted by dr-ada" in history.stdout and "deployed: local at " in history.stdout
    assert sorted(path.name for path in Path(site["shots"]).glob("*.png"))[-1].endswith("rejected-run-completed.png")

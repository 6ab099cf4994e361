"""The approval page's evidence: per-class recall, confusion matrices, links, the histogram."""

from __future__ import annotations

import base64
from types import SimpleNamespace

from heartgate.core.config import load_config
from heartgate.core.contracts import ClassRecall, Metrics, ModelScore, RegisteredVersion
from heartgate.ml.gate import GATE_PLOT, decide
from heartgate.release.evidence import confusion_matrices, evidence_markdown, per_class_table
from heartgate.release.notify import waiting_labels
from tests.heartgate.ml.test_gate import STRICT

PER_CLASS = (
    ClassRecall(label=1, beats=584, flagged=37),
    ClassRecall(label=2, beats=354, flagged=348),
    ClassRecall(label=3, beats=19, flagged=19),
    ClassRecall(label=4, beats=39, flagged=33),
    ClassRecall(label=5, beats=5, flagged=4),
)
CANDIDATE = RegisteredVersion(name="heartgate-ecg-autoencoder", version="2", run_id="run2", tags={})


def scored(version: str, precision: float, recall: float, flagged_5: int) -> ModelScore:
    metrics = Metrics(precision=precision, recall=recall, f1=0.9, accuracy=0.9, roc_auc=0.9, pr_auc=0.9, tp=404, fp=37, tn=547, fn=13)
    per_class = (*PER_CLASS[:4], ClassRecall(label=5, beats=5, flagged=flagged_5))
    return ModelScore(version=version, threshold=0.004, metrics=metrics, per_class=per_class)


DECISION = decide(scored("2", 0.97, 0.96, 4), scored("1", 0.95, 0.94, 2), STRICT)


def test_per_class_rows_show_both_models_recall_and_false_alarms():
    table = per_class_table(DECISION)
    assert "| class | beats | candidate v2 flagged | production v1 flagged |" in table
    assert "| 1 normal | 584 | 37 (6.3% false alarms) | 37 (6.3% false alarms) |" in table
    assert "| 5 unclassified beat | 5 | 4 (80.0% recall) | 2 (40.0% recall) |" in table


def test_confusion_matrices_of_both_models():
    matrices = confusion_matrices(DECISION)
    assert "| abnormal (2..5) | 404 TP | 13 FN | 404 TP | 13 FN |" in matrices
    assert "| normal (1) | 37 FP | 547 TN | 37 FP | 547 TN |" in matrices


def test_the_page_links_to_mlflow_and_embeds_the_histogram(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 16
    (tmp_path / "run2" / "plots").mkdir(parents=True)
    (tmp_path / "run2" / GATE_PLOT).write_bytes(png)
    registry = SimpleNamespace(
        artifact=lambda run_id, path: tmp_path / run_id / path,
        client=SimpleNamespace(get_run=lambda run_id: SimpleNamespace(info=SimpleNamespace(experiment_id="7"))),
    )
    config = load_config(overrides={"mlflow": {"ui_url": "http://mlflow.example:5000/"}})
    page = evidence_markdown(config, registry, DECISION, CANDIDATE)
    assert "[MLflow run of v2](http://mlflow.example:5000/#/experiments/7/runs/run2?workflowType=machine_learning)" in page
    assert "[registry: v2](http://mlflow.example:5000/#/models/heartgate-ecg-autoencoder/versions/2?workflowType=machine_learning)" in page
    assert "[registry: production v1](" in page
    assert f"(data:image/png;base64,{base64.b64encode(png).decode()})" in page
    assert page.index("Promotion gate") < page.index("Per class") < page.index("Confusion matrices")


def test_the_notification_labels_name_the_version_and_the_figures():
    labels = waiting_labels(DECISION, CANDIDATE)
    assert labels == {
        "heartgate.model": "heartgate-ecg-autoencoder",
        "heartgate.candidate_version": "2",
        "heartgate.production_version": "version 1",
        "heartgate.gate": "precision 0.9700, recall 0.9600 (production 0.9500, 0.9400)",
    }

"""What a reviewer decides from, on the approval page and in the gate's Prefect artifact: the gate
table, recall on each class for both models, both confusion matrices, both models' error
histograms with their thresholds, and links to the MLflow run and the registry versions.

Images reach the Prefect UI inside the markdown, as a `data:image/png;base64` URI
(docs/decisions.md #7): the UI renders them in the Resume form and in artifacts, and no second server, credential or
URL that only one machine can open is involved.
"""

from __future__ import annotations

import base64

from heartgate.adapters.registry import Registry
from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import GateDecision, ModelScore, RegisteredVersion
from heartgate.core.ecg import CLASS_NAMES, NORMAL_LABEL
from heartgate.ml.gate import GATE_PLOT
from heartgate.release.links import mlflow_run_url, mlflow_version_url


def _columns(decision: GateDecision) -> list[tuple[str, ModelScore]]:
    production = [(f"production v{decision.production.version}", decision.production)] if decision.production else []
    return [(f"candidate v{decision.candidate.version}", decision.candidate), *production]


def per_class_table(decision: GateDecision) -> str:
    """Recall on each abnormal class (3, 4 and 5 are rare: a few dozen test beats), and false alarms on normal beats."""
    columns = _columns(decision)
    lines = [
        "### Per class (test split)",
        "",
        f"| class | beats | {' | '.join(f'{name} flagged' for name, _ in columns)} |",
        "|---|---|" + "---|" * len(columns),
    ]
    for index, row in enumerate(decision.candidate.per_class):
        kind = "false alarms" if row.label == NORMAL_LABEL else "recall"
        cells = [f"{score.per_class[index].flagged} ({score.per_class[index].share:.1%} {kind})" for _, score in columns if score.per_class]
        lines.append(f"| {row.label} {CLASS_NAMES[row.label]} | {row.beats} | {' | '.join(cells)} |")
    return "\n".join(lines)


def confusion_matrices(decision: GateDecision) -> str:
    columns = _columns(decision)
    lines = [
        "### Confusion matrices (test split; abnormal = positive)",
        "",
        "| actual | " + " | ".join(f"{name}: flagged | {name}: passed" for name, _ in columns) + " |",
        "|---|" + "---|---|" * len(columns),
        "| abnormal (2..5) | " + " | ".join(f"{s.metrics.tp} TP | {s.metrics.fn} FN" for _, s in columns) + " |",
        "| normal (1) | " + " | ".join(f"{s.metrics.fp} FP | {s.metrics.tn} TN" for _, s in columns) + " |",
    ]
    return "\n".join(lines)


def histogram_image(registry: Registry, run_id: str) -> str:
    png = registry.artifact(run_id, GATE_PLOT).read_bytes()
    return f"![Test-split reconstruction error by class, with each model's threshold](data:image/png;base64,{base64.b64encode(png).decode()})"


def links(config: HeartgateConfig, decision: GateDecision, candidate: RegisteredVersion, experiment_id: str) -> str:
    parts = [
        f"[MLflow run of v{candidate.version}]({mlflow_run_url(config, experiment_id, candidate.run_id)})",
        f"[registry: v{candidate.version}]({mlflow_version_url(config, candidate.name, candidate.version)})",
    ]
    if decision.production:
        parts.append(f"[registry: production v{decision.production.version}]({mlflow_version_url(config, candidate.name, decision.production.version)})")
    return "**Open in MLflow:** " + " · ".join(parts)


def evidence_markdown(config: HeartgateConfig, registry: Registry, decision: GateDecision, candidate: RegisteredVersion) -> str:
    """The gate's evidence, whole: what the Prefect artifact holds and the approval form starts with."""
    experiment_id = registry.client.get_run(candidate.run_id).info.experiment_id
    return "\n\n".join(
        [
            links(config, decision, candidate, experiment_id),
            decision.markdown(),
            per_class_table(decision),
            confusion_matrices(decision),
            "### Error histograms",
            histogram_image(registry, candidate.run_id),
        ]
    )

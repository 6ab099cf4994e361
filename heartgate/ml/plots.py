"""The figures a reviewer reads: made in memory (matplotlib's Figure, no pyplot state), logged to
the MLflow run, and shown on the approval page as PNG (docs/decisions.md #7)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from heartgate.core.contracts import Metrics
from heartgate.ml.metrics import pr_points, roc_points

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn, not with this module
    from matplotlib.figure import Figure


# histtype="stepfilled": one polygon per class, not one rectangle per bin (60 patches each took
# about a second of CPU to lay out and draw, in every run).
def error_histogram(errors: np.ndarray, abnormal: np.ndarray, threshold: float) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    bins = np.linspace(errors.min(), np.quantile(errors, 0.995), 60)
    axes.hist(errors[~abnormal], bins=bins, histtype="stepfilled", alpha=0.6, label="normal (label 1)")
    axes.hist(errors[abnormal], bins=bins, histtype="stepfilled", alpha=0.6, label="abnormal (labels 2..5)")
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    axes.set_xlabel("reconstruction error (MSE, scaled)")
    axes.set_ylabel("beats")
    axes.set_title("Test split: reconstruction error by class")
    axes.legend()
    figure.tight_layout()
    return figure


def roc_pr_curves(errors: np.ndarray, abnormal: np.ndarray, metrics: Metrics) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4))
    roc_axes, pr_axes = figure.subplots(1, 2)
    fpr, tpr = roc_points(errors, abnormal)
    roc_axes.plot(fpr, tpr)
    roc_axes.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_axes.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC (AUC {metrics.roc_auc:.4f})")
    recall, precision = pr_points(errors, abnormal)
    pr_axes.plot(recall, precision)
    pr_axes.set(xlabel="recall", ylabel="precision", title=f"Precision-recall (AP {metrics.pr_auc:.4f})")
    figure.tight_layout()
    return figure


def gate_histograms(errors: dict[str, np.ndarray], thresholds: dict[str, float], abnormal: np.ndarray) -> Figure:
    """One panel per model ("candidate v3", "production v2"): its test-split errors by class and its
    own threshold. A threshold belongs to its model's error scale, so each is drawn on its own panel."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 2.6 * len(errors)))
    panels = np.atleast_1d(figure.subplots(len(errors), 1, sharex=True))
    everything = np.concatenate(list(errors.values()))
    bins = np.linspace(everything.min(), np.quantile(everything, 0.995), 60)
    for axes, (name, model_errors) in zip(panels, errors.items(), strict=True):
        axes.hist(model_errors[~abnormal], bins=bins, histtype="stepfilled", alpha=0.6, label="normal (label 1)")
        axes.hist(model_errors[abnormal], bins=bins, histtype="stepfilled", alpha=0.6, label="abnormal (labels 2..5)")
        axes.axvline(thresholds[name], color="black", linestyle="--", label=f"threshold {thresholds[name]:.4g}")
        axes.set_title(f"{name}: test-split reconstruction error", fontsize=10)
        axes.set_ylabel("beats")
        axes.legend(fontsize=8)
    panels[-1].set_xlabel("reconstruction error (MSE, scaled); beats right of the threshold are flagged")
    figure.tight_layout()
    return figure


def png_bytes(figure: Figure, dpi: int = 72) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()

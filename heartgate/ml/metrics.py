"""Pure metric helpers and the threshold rules. Abnormal beats (UCR labels 2..5) are the positive
class everywhere: a beat is flagged abnormal when its reconstruction error is strictly greater
than the threshold."""

from __future__ import annotations

import numpy as np

from heartgate.core.config import ThresholdConfig
from heartgate.core.contracts import ClassRecall, Metrics
from heartgate.core.ecg import LABELS


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both classes")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties (Mann-Whitney U).
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _descending_counts(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each distinct score, high to low: the score, and TP/FP counts when flagging >= it."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_positive = scores[order], positive[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    true_positives = np.cumsum(sorted_positive)[last_of_group]
    false_positives = (last_of_group + 1) - true_positives
    return sorted_scores[last_of_group], true_positives, false_positives


def pr_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision: sum over thresholds of precision times the recall gained there."""
    _, tp, fp = _descending_counts(scores, positive)
    recall = tp / max(int(positive.sum()), 1)
    precision = tp / (tp + fp)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_points(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, tp, fp = _descending_counts(scores, positive)
    return np.r_[0.0, fp / max(int((~positive).sum()), 1)], np.r_[0.0, tp / max(int(positive.sum()), 1)]


def pr_points(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, tp, fp = _descending_counts(scores, positive)
    return tp / max(int(positive.sum()), 1), tp / (tp + fp)


def classification_metrics(errors: np.ndarray, abnormal: np.ndarray, threshold: float) -> Metrics:
    predicted = errors > threshold
    tp = int(np.sum(predicted & abnormal))
    fp = int(np.sum(predicted & ~abnormal))
    fn = int(np.sum(~predicted & abnormal))
    tn = int(np.sum(~predicted & ~abnormal))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return Metrics(
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        accuracy=_ratio(tp + tn, len(errors)),
        roc_auc=roc_auc(errors, abnormal),
        pr_auc=pr_auc(errors, abnormal),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
    )


def class_recalls(errors: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[ClassRecall, ...]:
    """Per class, how many beats are flagged (error strictly above the threshold)."""
    flagged = errors > threshold
    return tuple(ClassRecall(label=label, beats=int((labels == label).sum()), flagged=int((flagged & (labels == label)).sum())) for label in sorted(LABELS))


def pick_threshold(errors: np.ndarray, abnormal: np.ndarray, config: ThresholdConfig) -> float:
    """The threshold, from validation errors only.

    max_f1: among cuts between consecutive distinct errors, the one with the best F1 (ties: the
    lowest cut); the threshold sits halfway between the two errors around the cut, so it does not
    sit on a training example. normal_quantile: that quantile of the normal beats' errors.
    """
    if config.rule == "normal_quantile":
        return float(np.quantile(errors[~abnormal], config.normal_quantile))
    if not abnormal.any() or abnormal.all():
        raise ValueError("max_f1 needs normal and abnormal validation beats")
    distinct, tp, fp = _descending_counts(errors, abnormal)
    precision = tp / (tp + fp)
    recall = tp / int(abnormal.sum())
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0)
    best = int(np.argmax(f1))  # flag every beat with error >= distinct[best]
    below = distinct[best + 1] if best + 1 < len(distinct) else distinct[best] - 1.0
    return float((distinct[best] + below) / 2.0)

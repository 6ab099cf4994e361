import numpy as np
import pytest
from sklearn import metrics as sk

from heartgate.core.config import ThresholdConfig
from heartgate.ml.metrics import class_recalls, classification_metrics, pick_threshold, pr_auc, roc_auc
from heartgate.ml.plots import error_histogram, gate_histograms, png_bytes, roc_pr_curves


@pytest.fixture
def scored():
    rng = np.random.default_rng(7)
    abnormal = rng.random(400) < 0.4
    errors = np.where(abnormal, rng.normal(2.0, 1.0, 400), rng.normal(0.0, 1.0, 400))
    return np.round(errors, 1), abnormal  # rounding makes ties, the hard case


def test_roc_auc_matches_scikit_learn(scored):
    errors, abnormal = scored
    assert roc_auc(errors, abnormal) == pytest.approx(sk.roc_auc_score(abnormal, errors), abs=1e-12)


def test_pr_auc_matches_scikit_learn_average_precision(scored):
    errors, abnormal = scored
    assert pr_auc(errors, abnormal) == pytest.approx(sk.average_precision_score(abnormal, errors), abs=1e-12)


def test_classification_metrics_match_scikit_learn(scored):
    errors, abnormal = scored
    m = classification_metrics(errors, abnormal, threshold=1.0)
    predicted = errors > 1.0
    assert m.precision == pytest.approx(sk.precision_score(abnormal, predicted))
    assert m.recall == pytest.approx(sk.recall_score(abnormal, predicted))
    assert m.f1 == pytest.approx(sk.f1_score(abnormal, predicted))
    assert m.accuracy == pytest.approx(sk.accuracy_score(abnormal, predicted))
    tn, fp, fn, tp = sk.confusion_matrix(abnormal, predicted).ravel()
    assert (m.tn, m.fp, m.fn, m.tp) == (tn, fp, fn, tp)


def test_abnormal_is_the_positive_class():
    errors = np.array([0.1, 0.2, 0.9, 1.0])
    abnormal = np.array([False, False, True, True])
    m = classification_metrics(errors, abnormal, threshold=0.5)
    assert (m.tp, m.tn, m.fp, m.fn) == (2, 2, 0, 0)
    assert m.roc_auc == 1.0


def test_nothing_flagged_gives_zero_precision_not_a_crash():
    m = classification_metrics(np.array([0.1, 0.9]), np.array([False, True]), threshold=5.0)
    assert (m.precision, m.recall, m.f1) == (0.0, 0.0, 0.0)


def test_max_f1_threshold_separates_separable_classes_halfway():
    errors = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    abnormal = np.array([False, False, False, True, True])
    assert pick_threshold(errors, abnormal, ThresholdConfig(rule="max_f1")) == pytest.approx(0.5)


def test_max_f1_threshold_is_the_best_over_all_cuts(scored):
    errors, abnormal = scored
    threshold = pick_threshold(errors, abnormal, ThresholdConfig(rule="max_f1"))
    best = max(sk.f1_score(abnormal, errors >= cut) for cut in np.unique(errors))
    assert sk.f1_score(abnormal, errors > threshold) == pytest.approx(best)
    assert threshold not in set(errors.tolist())  # halfway between two observed errors


def test_max_f1_when_every_beat_should_be_flagged():
    errors = np.array([0.5, 0.6, 0.7])
    abnormal = np.array([True, True, False])
    threshold = pick_threshold(errors, abnormal, ThresholdConfig(rule="max_f1"))
    assert classification_metrics(errors, abnormal, threshold).f1 == pytest.approx(0.8)


def test_normal_quantile_threshold_uses_normal_beats_only():
    errors = np.r_[np.arange(101.0), [1000.0, 2000.0]]
    abnormal = np.r_[np.zeros(101, bool), [True, True]]
    assert pick_threshold(errors, abnormal, ThresholdConfig(rule="normal_quantile", normal_quantile=0.9)) == 90.0


def test_max_f1_needs_both_classes():
    with pytest.raises(ValueError, match="normal and abnormal"):
        pick_threshold(np.array([0.1, 0.2]), np.array([False, False]), ThresholdConfig())


def test_plots_render(scored):
    errors, abnormal = scored
    m = classification_metrics(errors, abnormal, 1.0)
    assert len(error_histogram(errors, abnormal, 1.0).axes) == 1
    assert len(roc_pr_curves(errors, abnormal, m).axes) == 2
    two = gate_histograms({"candidate v2": errors, "production v1": errors * 1.1}, {"candidate v2": 1.0, "production v1": 1.1}, abnormal)
    assert [axes.get_title() for axes in two.axes] == ["candidate v2: test-split reconstruction error", "production v1: test-split reconstruction error"]
    assert png_bytes(two).startswith(b"\x89PNG")
    assert len(gate_histograms({"candidate v1": errors}, {"candidate v1": 1.0}, abnormal).axes) == 1


def test_class_recalls_count_flagged_beats_per_class():
    errors = np.array([0.1, 0.9, 0.8, 0.2, 0.95, 0.5, 0.99])
    labels = np.array([1, 1, 2, 2, 3, 4, 5])
    recalls = {r.label: (r.beats, r.flagged) for r in class_recalls(errors, labels, threshold=0.5)}
    assert recalls == {1: (2, 1), 2: (2, 1), 3: (1, 1), 4: (1, 0), 5: (1, 1)}  # 0.5 is not above 0.5
    assert class_recalls(errors, labels, 0.5)[1].share == 0.5

import numpy as np
import pytest

from heartgate.core.config import GateConfig
from heartgate.core.contracts import Metrics, ModelScore
from heartgate.ml.gate import decide, paired_bootstrap
from heartgate.ml.metrics import classification_metrics


def score(version: str, precision: float, recall: float) -> ModelScore:
    metrics = Metrics(precision=precision, recall=recall, f1=0.0, accuracy=0.0, roc_auc=0.0, pr_auc=0.0, tp=0, fp=0, tn=0, fn=0)
    return ModelScore(version=version, threshold=0.1, metrics=metrics)


STRICT = GateConfig()


def test_better_on_both_is_promotable():
    decision = decide(score("2", 0.97, 0.96), score("1", 0.95, 0.94), STRICT)
    assert decision.promotable
    assert decision.production_version == "1"
    assert decision.reasons == (
        "precision 0.9700 vs 0.9500 (+0.0200): better",
        "recall 0.9600 vs 0.9400 (+0.0200): better",
    )


@pytest.mark.parametrize(
    ("precision", "recall"),
    [(0.97, 0.93), (0.94, 0.96), (0.95, 0.94), (0.95, 0.96), (0.90, 0.90)],
    ids=["better-precision-only", "better-recall-only", "equal", "equal-precision", "worse"],
)
def test_anything_short_of_strictly_better_on_both_is_not(precision, recall):
    decision = decide(score("2", precision, recall), score("1", 0.95, 0.94), STRICT)
    assert not decision.promotable
    assert any("not better" in reason for reason in decision.reasons)


def test_no_production_means_the_first_candidate_is_promotable():
    decision = decide(score("1", 0.1, 0.1), None, STRICT)
    assert decision.promotable and decision.production is None
    assert "approval still required" in decision.reasons[0]
    assert decision.as_tags()["gate.production_version"] == "none"


def test_margin_must_be_exceeded():
    with_margin = GateConfig(margin=0.01)
    assert not decide(score("2", 0.96, 0.95), score("1", 0.95, 0.94), with_margin).promotable  # +0.01 is not more
    decision = decide(score("2", 0.97, 0.96), score("1", 0.95, 0.94), with_margin)
    assert decision.promotable
    assert decision.reasons[0].endswith("better by more than the margin 0.01")


@pytest.fixture
def labelled_test_rows():
    rng = np.random.default_rng(3)
    abnormal = rng.random(1000) < 0.4
    return abnormal


def _with_errors(abnormal: np.ndarray, error_rate: float, seed: int) -> np.ndarray:
    flip = np.random.default_rng(seed).random(len(abnormal)) < error_rate
    return abnormal ^ flip


def test_bootstrap_promotes_a_clearly_better_model(labelled_test_rows):
    abnormal = labelled_test_rows
    candidate, production = _with_errors(abnormal, 0.01, 1), _with_errors(abnormal, 0.10, 2)
    config = GateConfig(bootstrap=True, bootstrap_samples=500)
    bounds = paired_bootstrap(candidate, production, abnormal, config)
    assert bounds.precision_lower > 0.03 and bounds.recall_lower > 0.03
    decision = decide(_score(candidate, abnormal, "2"), _score(production, abnormal, "1"), config, bounds)
    assert decision.promotable
    assert "lower bound (95%, 500 paired resamples)" in decision.reasons[2]


def test_bootstrap_stops_a_model_better_only_by_luck(labelled_test_rows):
    """One extra correct row makes the point estimates better, but not the lower bounds."""
    abnormal = labelled_test_rows
    production = _with_errors(abnormal, 0.05, 4)
    candidate = production.copy()
    wrong = np.flatnonzero(candidate != abnormal)
    candidate[wrong[:2]] = abnormal[wrong[:2]]  # fix one missed abnormal and one false alarm
    config = GateConfig(bootstrap=True, bootstrap_samples=500)
    strict = decide(_score(candidate, abnormal, "2"), _score(production, abnormal, "1"), STRICT)
    assert strict.promotable, strict.reasons  # the user's rule alone would promote it
    bounds = paired_bootstrap(candidate, production, abnormal, config)
    decision = decide(_score(candidate, abnormal, "2"), _score(production, abnormal, "1"), config, bounds)
    assert not decision.promotable
    assert bounds.precision_lower <= 0 or bounds.recall_lower <= 0


def test_identical_models_have_zero_width_improvement(labelled_test_rows):
    flags = _with_errors(labelled_test_rows, 0.05, 5)
    bounds = paired_bootstrap(flags, flags, labelled_test_rows, GateConfig(bootstrap=True, bootstrap_samples=200))
    assert bounds.precision_lower == 0.0 and bounds.recall_lower == 0.0


def test_bootstrap_is_reproducible(labelled_test_rows):
    a, b = _with_errors(labelled_test_rows, 0.03, 6), _with_errors(labelled_test_rows, 0.06, 7)
    config = GateConfig(bootstrap=True, bootstrap_samples=200, seed=9)
    assert paired_bootstrap(a, b, labelled_test_rows, config) == paired_bootstrap(a, b, labelled_test_rows, config)


def test_bootstrap_mode_needs_bounds():
    with pytest.raises(ValueError, match="bootstrap bounds"):
        decide(score("2", 0.97, 0.96), score("1", 0.95, 0.94), GateConfig(bootstrap=True))


def _score(flags: np.ndarray, abnormal: np.ndarray, version: str) -> ModelScore:
    errors = flags.astype(float)  # flagged rows have error 1 > threshold 0.5
    return ModelScore(version=version, threshold=0.5, metrics=classification_metrics(errors, abnormal, 0.5))


def test_markdown_puts_both_models_side_by_side():
    text = decide(score("2", 0.97, 0.96), score("1", 0.95, 0.94), STRICT).markdown()
    assert "| metric | candidate v2 | production v1 | change |" in text
    assert "| precision | 0.9700 | 0.9500 | +0.0200 |" in text
    assert "PASSED" in text


def test_tags_record_both_scores():
    tags = decide(score("2", 0.97, 0.93), score("1", 0.95, 0.94), STRICT).as_tags()
    assert tags["gate.promotable"] == "false"
    assert tags["gate.candidate_recall"] == "0.930000" and tags["gate.production_recall"] == "0.940000"

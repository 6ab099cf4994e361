import numpy as np

from heartgate.serving.smoke import pick_smoke_beats, smoke_problems


def test_smoke_beats_are_the_clearest_cases():
    errors = np.array([0.5, 0.1, 0.9, 0.3, 0.2])
    abnormal = np.array([False, False, True, True, False])
    assert pick_smoke_beats(errors, abnormal) == (1, 2)


def test_a_right_answer_has_no_problems():
    body = {"model_version": "3", "predictions": [{"anomaly": False}, {"anomaly": True}]}
    assert smoke_problems(200, body, "3") == []


def test_wrong_version_labels_or_status_are_each_named():
    body = {"model_version": "2", "predictions": [{"anomaly": True}, {"anomaly": True}]}
    assert smoke_problems(200, body, "3") == [
        "served model_version '2', expected '3'",
        "known-normal and known-abnormal beats came back as [True, True], expected [False, True]",
    ]
    assert smoke_problems(413, {"error": "too big"}, "3") == ["/predict answered HTTP 413: too big"]

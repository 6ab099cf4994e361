"""Training on synthetic beats for a few epochs: fast, but real Keras, TensorFlow and ONNX."""

import numpy as np
import pytest

from heartgate.config import TrainConfig
from heartgate.ecg import parse_canonical_csv
from heartgate.scorer import OnnxScorer
from heartgate.splits import SplitArrays
from heartgate.training import Scaling, build_scorer, export_onnx, fit_autoencoder, reconstruction_error
from tests.conftest import synthetic_csv

pytestmark = pytest.mark.slow

SMALL = TrainConfig(hidden_units=(16,), latent_units=4, epochs=3, batch_size=16, seed=5)


@pytest.fixture(scope="module")
def arrays() -> SplitArrays:
    table = parse_canonical_csv(synthetic_csv({1: 80, 2: 40}))
    half = len(table) // 2
    return SplitArrays(
        train_normal=table.beats[:half][~table.abnormal[:half]],
        validation=table.beats[half:],
        validation_abnormal=table.abnormal[half:],
        test=table.beats[half:],
        test_abnormal=table.abnormal[half:],
        test_labels=table.labels[half:],
    )


def _weights(model) -> list[np.ndarray]:
    return [w.copy() for w in model.get_weights()]


def test_training_is_deterministic_given_the_seed(arrays):
    first, _, history_a = fit_autoencoder(arrays, SMALL, progress=lambda _: None)
    second, _, history_b = fit_autoencoder(arrays, SMALL, progress=lambda _: None)
    other, _, _ = fit_autoencoder(arrays, SMALL.model_copy(update={"seed": 6}), progress=lambda _: None)
    assert history_a == history_b
    assert all(np.array_equal(a, b) for a, b in zip(_weights(first), _weights(second)))
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(first), _weights(other)))


def test_scaling_is_fitted_on_training_beats_only(arrays):
    _, scaling, _ = fit_autoencoder(arrays, SMALL, progress=lambda _: None)
    assert scaling == Scaling(float(arrays.train_normal.min()), float(arrays.train_normal.max()))


def test_progress_reports_epochs(arrays):
    seen: list[str] = []
    fit_autoencoder(arrays, SMALL, progress=seen.append)
    assert seen == [seen[-1]] and seen[-1].startswith("epoch 3/3: loss ")


def test_scorer_computes_the_reconstruction_error_and_onnx_agrees(arrays, tmp_path):
    autoencoder, scaling, _ = fit_autoencoder(arrays, SMALL, progress=lambda _: None)
    scorer = build_scorer(autoencoder, scaling)
    beats = arrays.test.astype(np.float32)
    scaled = scaling.apply(beats).astype(np.float32)
    expected = reconstruction_error(scaled, autoencoder.predict(scaled, verbose=0))
    keras_errors = scorer.predict(beats, verbose=0).reshape(-1)
    np.testing.assert_allclose(keras_errors, expected, rtol=1e-5, atol=1e-7)

    export_onnx(scorer, tmp_path / "scorer.onnx")
    onnx_errors = OnnxScorer(tmp_path / "scorer.onnx").errors(beats)
    np.testing.assert_allclose(onnx_errors, keras_errors, atol=1e-5)
    assert onnx_errors.shape == (len(beats),)

"""Training on synthetic beats for a few epochs: fast, but real Keras, TensorFlow and ONNX."""

from pathlib import Path

import numpy as np
import pytest

from heartgate.adapters.registry import Registry
from heartgate.core.config import TrainConfig, load_config
from heartgate.core.ecg import parse_canonical_csv
from heartgate.core.lineage import Lineage
from heartgate.ml.splits import SplitArrays
from heartgate.ml.training import (
    Scaling,
    build_scorer,
    cache_key,
    config_params,
    export_onnx,
    fit_autoencoder,
    reconstruction_error,
    train,
)
from heartgate.serving.scorer import OnnxScorer
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
    assert all(np.array_equal(a, b) for a, b in zip(_weights(first), _weights(second), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(first), _weights(other), strict=True))


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


def _train_in(state: Path, arrays: SplitArrays, cache: Path | None, progress=lambda _: None):
    overrides = {"state_dir": str(state), "data": {"source": "unused"}, "train": {**SMALL.model_dump(), "cache_dir": str(cache) if cache else None}}
    config = load_config(overrides=overrides)
    registry = Registry.for_config(config)
    lineage = Lineage(data_md5="d" * 32, split_md5="s" * 32, data_source="synthetic", git_commit="abc", config_hash=config.model_hash())
    return registry, train(config.train, registry, arrays, lineage, config_params(config), progress=progress)


def _onnx_bytes(registry: Registry, trained) -> bytes:
    return registry.artifact(trained.run_id, trained.onnx_artifact).read_bytes()


def test_a_cached_training_gives_another_registry_the_same_model_and_curve(arrays, tmp_path):
    cache = tmp_path / "cache"
    first_registry, first = _train_in(tmp_path / "a", arrays, cache)
    seen: list[str] = []
    second_registry, second = _train_in(tmp_path / "b", arrays, cache, progress=seen.append)  # another state dir, another store

    assert first.reused_from is None and second.reused_from == cache_key(SMALL, arrays)
    assert seen == [f"reused the model trained before on the same inputs (3 epochs, cache entry {second.reused_from[:12]})"]
    assert "reused from the training cache" in second.describe() and "reused" not in first.describe()
    assert _onnx_bytes(second_registry, second) == _onnx_bytes(first_registry, first)
    run = second_registry.client.get_run(second.run_id)
    assert run.data.tags["heartgate.train.reused"] == second.reused_from
    assert "train.cache_dir" not in run.data.params  # where it is kept is not what trained it
    for key in ("loss", "val_loss"):
        curve = [(m.step, m.value) for m in second_registry.client.get_metric_history(second.run_id, key)]
        assert sorted(curve) == sorted((m.step, m.value) for m in first_registry.client.get_metric_history(first.run_id, key))
        assert len(curve) == SMALL.epochs

    import mlflow.keras  # the keras model is the second run's own, and scores as its ONNX export does

    logged = second_registry.client.get_logged_model(second.model_uri.removeprefix("models:/"))
    assert logged.source_run_id == second.run_id
    model = mlflow.keras.load_model(logged.artifact_location)
    beats = arrays.test.astype(np.float32)
    onnx_path = second_registry.artifact(second.run_id, second.onnx_artifact)
    np.testing.assert_allclose(OnnxScorer(onnx_path).errors(beats), model.predict(beats, verbose=0).reshape(-1), atol=1e-5)


def test_other_inputs_train_again_and_a_tampered_entry_is_not_used(arrays, tmp_path):
    cache = tmp_path / "cache"
    _train_in(tmp_path / "a", arrays, cache)
    fewer = SplitArrays(**{**arrays.__dict__, "train_normal": arrays.train_normal[:-1]})
    assert cache_key(SMALL, fewer) != cache_key(SMALL, arrays)
    assert cache_key(SMALL.model_copy(update={"epochs": 4}), arrays) != cache_key(SMALL, arrays)
    assert cache_key(SMALL.model_copy(update={"cache_dir": tmp_path}), arrays) == cache_key(SMALL, arrays)

    (entry,) = [path for path in cache.iterdir() if not path.name.startswith(".")]
    (entry / "scorer.onnx").write_bytes(b"not the model that was trained")
    _, again = _train_in(tmp_path / "b", arrays, cache)
    assert again.reused_from is None  # trained for real


def test_without_a_cache_dir_nothing_is_kept(arrays, tmp_path):
    _, trained = _train_in(tmp_path / "a", arrays, None)
    assert trained.reused_from is None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a"]

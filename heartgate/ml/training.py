"""train: a dense Keras autoencoder on the normal beats of the train split, tracked in MLflow.

What gets logged is the *scorer*: raw beats in, reconstruction error out, with the min-max scaling
(fitted on the training beats only) and the error inside the graph. The same graph is exported to
ONNX, which is what evaluation and serving run.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from heartgate.adapters.registry import Registry
from heartgate.core.config import NOT_MODEL_INPUTS, HeartgateConfig, TrainConfig
from heartgate.core.contracts import RunOrigin, TrainResult
from heartgate.core.ecg import SAMPLES_PER_BEAT
from heartgate.core.lineage import Lineage
from heartgate.core.quiet import import_tensorflow
from heartgate.ml.splits import SplitArrays
from heartgate.ml.training_cache import TrainedFiles, TrainingCache, training_key

if TYPE_CHECKING:  # keras is imported after TensorFlow's banner is silenced (import_tensorflow)
    import keras

MODEL_ARTIFACT = "model"
ONNX_ARTIFACT = "onnx/scorer.onnx"
# Given explicitly, so MLflow does not infer requirements by loading the model (slow and noisy).
MODEL_REQUIREMENTS = ("keras", "tensorflow-cpu", "numpy")


@dataclass(frozen=True)
class Scaling:
    """Min-max scaling to [0, 1], fitted on the training beats (one min and max for all samples)."""

    low: float
    high: float

    @classmethod
    def fit(cls, beats: np.ndarray) -> Scaling:
        return cls(low=float(beats.min()), high=float(beats.max()))

    def apply(self, beats: np.ndarray) -> np.ndarray:
        return (beats - self.low) / (self.high - self.low)


def reconstruction_error(scaled: np.ndarray, reconstructed: np.ndarray) -> np.ndarray:
    """Mean squared error per beat, in the scaled space. The scorer graph computes exactly this."""
    return np.mean((reconstructed - scaled) ** 2, axis=1)


def build_autoencoder(config: TrainConfig) -> keras.Model:
    import_tensorflow()  # before keras imports it: without its C++ banner
    import keras

    inputs = keras.Input((SAMPLES_PER_BEAT,), name="scaled_beats")
    # Active in training only; learning to undo the noise made the errors separate the classes
    # better on the validation split (AUC ~0.988 -> ~0.993).
    hidden = keras.layers.GaussianNoise(config.noise_std)(inputs) if config.noise_std else inputs
    for units in config.hidden_units:
        hidden = keras.layers.Dense(units, activation="relu")(hidden)
    hidden = keras.layers.Dense(config.latent_units, activation="relu", name="latent")(hidden)
    for units in reversed(config.hidden_units):
        hidden = keras.layers.Dense(units, activation="relu")(hidden)
    outputs = keras.layers.Dense(SAMPLES_PER_BEAT, activation="sigmoid", name="reconstruction")(hidden)
    model = keras.Model(inputs, outputs, name="autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
    return model


def build_scorer(autoencoder: keras.Model, scaling: Scaling) -> keras.Model:
    """Wrap the autoencoder: raw beats -> scaled -> reconstructed -> per-beat MSE. Built-in layers
    only, so the saved model loads anywhere without custom objects."""
    import_tensorflow()  # before keras imports it: without its C++ banner
    import keras

    beats = keras.Input((SAMPLES_PER_BEAT,), name="beats")
    scaled = keras.layers.Rescaling(scale=1.0 / (scaling.high - scaling.low), offset=-scaling.low / (scaling.high - scaling.low))(beats)
    residual = keras.layers.Subtract()([autoencoder(scaled), scaled])
    squared = keras.layers.Multiply()([residual, residual])
    per_sample = keras.layers.Reshape((SAMPLES_PER_BEAT, 1))(squared)
    error = keras.layers.GlobalAveragePooling1D(name="error")(per_sample)
    return keras.Model(beats, error, name="scorer")


EpochLog = Callable[[int, dict[str, float]], None]


def fit_autoencoder(
    arrays: SplitArrays, config: TrainConfig, progress: Callable[[str], None], on_epoch: EpochLog = lambda epoch, logs: None
) -> tuple[object, Scaling, dict[str, list[float]]]:
    """Deterministic given config.seed: seeded weights and shuffling, deterministic TF ops.
    `on_epoch(epoch, {"loss": ..., "val_loss": ...})` after each epoch (MLflow's live curve)."""
    tf = import_tensorflow()  # before keras imports it: without its C++ banner
    import keras

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    scaling = Scaling.fit(arrays.train_normal)
    train = scaling.apply(arrays.train_normal).astype(np.float32)
    validation = scaling.apply(arrays.validation[~arrays.validation_abnormal]).astype(np.float32)

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            on_epoch(epoch, {key: float(logs[key]) for key in ("loss", "val_loss")})
            if (epoch + 1) % 10 == 0 or epoch + 1 == config.epochs:
                progress(f"epoch {epoch + 1}/{config.epochs}: loss {logs['loss']:.5f}, val_loss {logs['val_loss']:.5f}")

    autoencoder = build_autoencoder(config)
    history = autoencoder.fit(
        train,
        train,
        validation_data=(validation, validation),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[Progress()],
    )
    return autoencoder, scaling, history.history


def config_params(config: HeartgateConfig) -> dict[str, str]:
    """What a training run records of the config it ran with (its MLflow params): the settings
    that decide the model, from the train, split and threshold sections."""
    params = {f"train.{key}": value for key, value in config.train.model_dump(exclude=NOT_MODEL_INPUTS["train"]).items()}
    params |= {f"split.{key}": value for key, value in config.split.model_dump().items()}
    return {key: str(value) for key, value in (params | {"threshold.rule": config.threshold.rule}).items()}


def training_params(recorded: Mapping[str, str], lineage: Lineage, scaling: Scaling, n_train: int) -> dict[str, str]:
    params = {"scaling.low": scaling.low, "scaling.high": scaling.high, "train.normal_beats": n_train, **lineage.as_tags()}
    return dict(recorded) | {key: str(value) for key, value in params.items()}


def export_onnx(scorer: keras.Model, path: Path) -> None:
    # Keras refuses to export a model that was never called (field notes); a dummy batch does it.
    scorer(np.zeros((1, SAMPLES_PER_BEAT), dtype=np.float32))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="In the future `np.object`", category=FutureWarning)
        scorer.export(str(path), format="onnx", verbose=False)


def save_keras_model(scorer: keras.Model, path: Path, sample: np.ndarray) -> None:
    """The keras flavor of `scorer` as an MLflow model directory, tied to no run yet."""
    import mlflow.keras
    from mlflow.models import infer_signature

    mlflow.keras.save_model(
        scorer,
        str(path),
        signature=infer_signature(sample, scorer.predict(sample, verbose=0)),
        pip_requirements=[f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS],
    )


def _log_keras_model(registry: Registry, experiment_id: str, run_id: str, model_dir: Path) -> str:
    """A saved keras model directory as an MLflow logged model of the run (what
    `mlflow.keras.log_model` does, through the explicit client). Returns its `models:/` URI."""
    from mlflow.models import Model

    client = registry.client
    logged = client.create_logged_model(experiment_id, name=MODEL_ARTIFACT, source_run_id=run_id)
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / MODEL_ARTIFACT
        shutil.copytree(model_dir, local)
        model = Model.load(str(local / "MLmodel"))  # the run it belongs to, as log_model writes it
        model.run_id, model.model_id, model.artifact_path = run_id, logged.model_id, MODEL_ARTIFACT
        model.utc_time_created, model.model_uuid = str(datetime.now(UTC).replace(tzinfo=None)), uuid.uuid4().hex
        model.save(str(local / "MLmodel"))
        client.log_model_artifacts(logged.model_id, str(local))
    client.finalize_logged_model(logged.model_id, "READY")
    return f"models:/{logged.model_id}"


def _log_training(registry: Registry, run_id: str, params: dict[str, str], seconds: float) -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    metrics = [Metric("train_seconds", seconds, now, 0)]
    registry.client.log_batch(run_id, metrics=metrics, params=[Param(key, value) for key, value in params.items()])


def _epoch_logger(registry: Registry, run_id: str) -> EpochLog:
    """Each epoch's losses as they come, so the MLflow UI draws the curve while the model trains."""
    from mlflow.entities import Metric

    def log_epoch(epoch: int, losses: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        registry.client.log_batch(run_id, metrics=[Metric(key, value, now, epoch) for key, value in losses.items()])

    return log_epoch


def run_tags(lineage: Lineage, origin: RunOrigin | None) -> dict[str, str]:
    """The training run's tags: the lineage, the Prefect flow run it belongs to, and a Source that
    names heartgate's flow (MLflow would otherwise show the Prefect engine's file)."""
    tags = {"heartgate.step": "train", **{f"lineage.{k}": v for k, v in lineage.as_tags().items()}}
    tags |= {"mlflow.source.type": "LOCAL", "mlflow.source.git.commit": lineage.git_commit}
    if origin:
        tags |= {"mlflow.source.name": origin.source, **origin.as_tags()}
    return tags


def train_to_files(arrays: SplitArrays, config: TrainConfig, out: Path, progress: Callable[[str], None], on_epoch: EpochLog) -> TrainedFiles:
    """Fit the autoencoder, wrap it in the scorer, and save both forms of it under `out`."""
    started = time.perf_counter()
    autoencoder, scaling, history = fit_autoencoder(arrays, config, progress, on_epoch=on_epoch)
    train_seconds = time.perf_counter() - started
    scorer = build_scorer(autoencoder, scaling)
    model_dir, onnx = out / MODEL_ARTIFACT, out / Path(ONNX_ARTIFACT).name
    save_keras_model(scorer, model_dir, signature_sample(arrays))
    export_onnx(scorer, onnx)
    return TrainedFiles(
        model_dir=model_dir,
        onnx=onnx,
        history=history,
        scaling=(scaling.low, scaling.high),
        normal_beats=len(arrays.train_normal),
        train_seconds=train_seconds,
    )


def signature_sample(arrays: SplitArrays) -> np.ndarray:
    return arrays.validation[:4].astype(np.float32)


def cache_key(config: TrainConfig, arrays: SplitArrays) -> str:
    """What the training sees: its settings and the beats fit_autoencoder and the signature read."""
    settings = config.model_dump(mode="json", exclude=NOT_MODEL_INPUTS["train"])
    return training_key(settings, arrays.train_normal, arrays.validation[~arrays.validation_abnormal], signature_sample(arrays))


def _log_history(registry: Registry, run_id: str, history: dict[str, list[float]]) -> None:
    """A reused model's loss curve, as its training logged it epoch by epoch."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, epoch) for key, values in history.items() for epoch, value in enumerate(values)]
    for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
        registry.client.log_batch(run_id, metrics=metrics[start : start + 1000])


def train(
    settings: TrainConfig,
    registry: Registry,
    arrays: SplitArrays,
    lineage: Lineage,
    recorded: Mapping[str, str],
    progress: Callable[[str], None] = print,
    origin: RunOrigin | None = None,
) -> TrainResult:
    """The MLflow run opens before the first epoch (its Duration is the training's) and closes
    once the model and its ONNX export are logged; `recorded` (`config_params`) goes into its
    params. With `train.cache_dir` set, a model trained before on exactly these inputs is reused
    (heartgate.ml.training_cache)."""
    experiment_id = registry.experiment_id()
    cache = TrainingCache(settings.cache_root) if settings.cache_root else None
    key = cache_key(settings, arrays) if cache else ""
    reused = cache.get(key) if cache else None
    tags = run_tags(lineage, origin) | ({"heartgate.train.reused": key} if reused else {})
    run = registry.client.create_run(experiment_id, run_name=f"train-{lineage.data_md5[:8]}", tags=tags)
    run_id = run.info.run_id
    try:
        with tempfile.TemporaryDirectory() as scratch:
            if reused:
                progress(f"reused the model trained before on the same inputs ({settings.epochs} epochs, cache entry {key[:12]})")
                _log_history(registry, run_id, reused.history)
                trained = reused
            else:
                trained = train_to_files(arrays, settings, Path(scratch), progress, on_epoch=_epoch_logger(registry, run_id))
                if cache:
                    cache.put(key, trained)
            scaling = Scaling(*trained.scaling)
            _log_training(registry, run_id, training_params(recorded, lineage, scaling, trained.normal_beats), trained.train_seconds)
            model_uri = _log_keras_model(registry, experiment_id, run_id, trained.model_dir)
            registry.log_file(run_id, ONNX_ARTIFACT, trained.onnx)  # kept in the local artifact cache (no download later)
    except BaseException:
        registry.client.set_terminated(run_id, "FAILED")
        raise
    registry.client.set_terminated(run_id)
    return TrainResult(
        run_id=run_id,
        model_uri=model_uri,
        onnx_artifact=ONNX_ARTIFACT,
        epochs=len(trained.history["loss"]),
        final_loss=trained.history["loss"][-1],
        final_val_loss=trained.history["val_loss"][-1],
        train_seconds=trained.train_seconds,
        experiment_id=experiment_id,
        reused_from=key if reused else None,
    )

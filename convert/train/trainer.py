"""Training the reference classifier and writing it with its ``cadr-train.json`` sidecar.

The saved ``.keras`` model takes *normalised* float input of shape (height, width, 3);
the sidecar records which normalisation, the labels, the input size and the crop, and
``cadr-convert`` reads it and folds the normalisation into the int8 graph. Training is
seeded and runs with TensorFlow's op determinism, so the same data, seed and software
versions give the same weights on the same kind of CPU.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadr_convert.folding import NORMALISATIONS, normalise
from cadr_convert.metrics import roc_auc
from cadr_convert.train.augment import Augmentation, augment_example, normalise_tensor
from cadr_convert.train.data import (
    LabelledInputs,
    TrainingDataError,
    find_labels,
    load_labelled,
    split_validation,
)
from cadr_convert.train.model import build_model
from cadr_device.preprocess import PreprocessRule

logger = logging.getLogger(__name__)

#: File name of the sidecar written beside the model; ``cadr-convert`` looks for it there.
SIDECAR_NAME = "cadr-train.json"

#: Batch size used to predict the validation set, in images.
PREDICT_BATCH = 64


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run.

    Attributes:
        data: Folder with one subfolder per label.
        out: Path of the ``.keras`` file to write.
        val: Separate validation folder, or None to split ``val_fraction`` off ``data``.
        labels: ``(negative, positive)``, or None for the two subfolders in sorted order.
        input_size: Model input side in pixels (square).
        crop_fraction: The device's centred square crop, as a fraction of the shorter side.
        resample: The device's resize filter name.
        architecture: Backbone, ``separable`` or ``mobilenetv2``.
        alpha: Width multiplier of the backbone.
        normalisation: One of ``mobilenet``, ``unit``, ``imagenet``, ``none``.
        epochs: Largest number of epochs.
        patience: Epochs without a better validation ROC AUC before stopping.
        batch_size: Training batch size in images.
        learning_rate: Initial Adam learning rate; it follows a cosine decay to zero.
        dropout: Dropout rate before the output unit.
        label_smoothing: Share of each target moved towards 0.5 (targets become
            ``label_smoothing / 2`` and ``1 - label_smoothing / 2``). It keeps the
            probabilities of easy images off 0 and 1, and so off the int8 output's end steps.
        seed: Seed of weights, shuffling, augmentation and the validation split.
        val_fraction: Validation share split off ``data`` when ``val`` is None.
        init_weights: Optional starting weights file; see :func:`build_model`.
        augmentation: The augmentation ranges.
    """

    data: Path
    out: Path
    val: Path | None = None
    labels: tuple[str, str] | None = None
    input_size: int = 128
    crop_fraction: float = 0.8
    resample: str = "bilinear"
    architecture: str = "separable"
    alpha: float = 1.0
    normalisation: str = "mobilenet"
    epochs: int = 30
    patience: int = 6
    batch_size: int = 32
    learning_rate: float = 2e-3
    dropout: float = 0.2
    label_smoothing: float = 0.1
    seed: int = 0
    val_fraction: float = 0.15
    init_weights: Path | None = None
    augmentation: Augmentation = field(default_factory=Augmentation)

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, "
                             f"got {self.normalisation!r}")
        if self.out.suffix != ".keras":
            raise ValueError(f"output must be a .keras file, got {self.out}")
        if self.input_size < 32:
            raise ValueError(f"input size must be at least 32 pixels, got {self.input_size}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("epochs", "patience", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class TrainResult:
    """Outputs of one run: the model path, the sidecar and the validation scores."""

    model_path: Path
    sidecar_path: Path
    val_auc: float
    best_epoch: int
    epochs_run: int
    sidecar: dict[str, Any]


def train(config: TrainConfig) -> TrainResult:
    """Train, keep the epoch with the best validation ROC AUC, save the model and sidecar.

    Raises:
        TrainingDataError: If a folder or image cannot be used.
        ValueError: If a setting is invalid or the initial weights do not fit.
    """
    import keras  # noqa: PLC0415 - TensorFlow loads only for training
    import tensorflow as tf  # noqa: PLC0415

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    labels = config.labels or find_labels(config.data)
    rule = PreprocessRule(width=config.input_size, height=config.input_size,
                          crop_fraction=config.crop_fraction, resample=config.resample)
    train_set, val_set = _load_sets(config, labels, rule)

    model = build_model(config.input_size, config.input_size, config.alpha, config.dropout,
                        init_weights=config.init_weights, architecture=config.architecture)
    steps = math.ceil(len(train_set) / config.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate,
                                                      decay_steps=steps * config.epochs)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.AUC(name="auc", num_thresholds=1000)],
    )

    val_inputs = normalise(val_set.inputs, config.normalisation)
    stopper = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max",
                                            patience=config.patience, restore_best_weights=True)
    logger.info("Training %s on %d images (%d validation), %d steps per epoch",
                model.name, len(train_set), len(val_set), steps)
    history = model.fit(
        _training_dataset(train_set, config),
        steps_per_epoch=steps,
        epochs=config.epochs,
        validation_data=(val_inputs, val_set.targets),
        class_weight=_class_weights(train_set),
        shuffle=False,  # the tf.data pipeline shuffles, seeded
        callbacks=[stopper, keras.callbacks.LambdaCallback(on_epoch_end=_log_epoch)],
        verbose=0,
    )

    # EarlyStopping restores the best weights at the end of training; measure them again
    # with the exact rank-based AUC rather than Keras's thresholded estimate.
    scores = model.predict(val_inputs, batch_size=PREDICT_BATCH, verbose=0).reshape(-1)
    val_auc = roc_auc(val_set.targets, scores)
    val_history = [float(v) for v in history.history.get("val_auc", [])]
    best_epoch = int(np.argmax(val_history)) + 1 if val_history else len(val_history)

    config.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(config.out)
    sidecar = _sidecar(config, labels, train_set, val_set, val_auc=val_auc,
                       best_epoch=best_epoch, val_history=val_history,
                       parameters=model.count_params())
    sidecar_path = config.out.parent / SIDECAR_NAME
    temporary = sidecar_path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, sidecar_path)
    logger.info("Saved %s and %s: validation ROC AUC %.4f at epoch %d of %d",
                config.out, sidecar_path, val_auc, best_epoch, len(val_history))
    return TrainResult(config.out, sidecar_path, val_auc, best_epoch, len(val_history), sidecar)


def _load_sets(config: TrainConfig, labels: tuple[str, str],
               rule: PreprocessRule) -> tuple[LabelledInputs, LabelledInputs]:
    data = load_labelled(config.data, labels, rule)
    if config.val is None:
        return split_validation(data, config.val_fraction, config.seed)
    return data, load_labelled(config.val, labels, rule)


def _class_weights(data: LabelledInputs) -> dict[int, float]:
    """Weight each class by total / (2 * count), so both classes add equally to the loss."""
    negatives, positives = data.class_counts()
    if negatives == 0 or positives == 0:
        raise TrainingDataError("training images of both labels are needed; one class is empty")
    total = negatives + positives
    return {0: total / (2.0 * negatives), 1: total / (2.0 * positives)}


def _training_dataset(data: LabelledInputs, config: TrainConfig) -> Any:
    """Return an endless shuffled, augmented, normalised and batched ``tf.data`` pipeline."""
    import tensorflow as tf  # noqa: PLC0415

    settings = config.augmentation
    seed = config.seed

    def prepare(counter: Any, example: tuple[Any, Any]) -> tuple[Any, Any]:
        pixels, target = example
        example_seed = tf.stack([tf.constant(seed, tf.int64), counter])
        x = augment_example(tf.cast(pixels, tf.float32), example_seed, settings)
        return normalise_tensor(x, config.normalisation), target

    dataset = tf.data.Dataset.from_tensor_slices((data.inputs, data.targets))
    dataset = dataset.shuffle(len(data), seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.enumerate().map(prepare, num_parallel_calls=tf.data.AUTOTUNE,
                                      deterministic=True)
    return dataset.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def _sidecar(config: TrainConfig, labels: tuple[str, str], train_set: LabelledInputs,
             val_set: LabelledInputs, *, val_auc: float, best_epoch: int,
             val_history: list[float], parameters: int) -> dict[str, Any]:
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    negatives, positives = train_set.class_counts()
    val_negatives, val_positives = val_set.class_counts()
    return {
        "normalisation": config.normalisation,
        "labels": list(labels),
        "positive_label": labels[1],
        # [width, height], the order cadr-convert reads; the model is square.
        "input_size": [config.input_size, config.input_size],
        "crop_fraction": config.crop_fraction,
        "resample": config.resample,
        "architecture": config.architecture,
        "alpha": config.alpha,
        "parameters": parameters,
        "seed": config.seed,
        "epochs": config.epochs,
        "epochs_run": len(val_history),
        "best_epoch": best_epoch,
        "val_auc": round(val_auc, 6),
        "val_auc_history": [round(v, 6) for v in val_history],
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "dropout": config.dropout,
        "label_smoothing": config.label_smoothing,
        "augmentation": asdict(config.augmentation),
        "train_images": {labels[0]: negatives, labels[1]: positives},
        "val_images": {labels[0]: val_negatives, labels[1]: val_positives},
        "train_data": str(config.data),
        "val_data": str(config.val) if config.val else f"{config.val_fraction:g} of train_data",
        "init_weights": str(config.init_weights) if config.init_weights else None,
        "toolchain": {"tensorflow": tf.__version__, "keras": keras.__version__,
                      "numpy": np.__version__, "python": platform.python_version(),
                      "machine": platform.machine()},
    }


def _log_epoch(epoch: int, logs: dict[str, float] | None) -> None:
    """Log one line per epoch with the training loss and validation ROC AUC."""
    logs = logs or {}
    logger.info("Epoch %d: loss %.4f, validation loss %.4f, validation ROC AUC %.4f",
                epoch + 1, logs.get("loss", float("nan")), logs.get("val_loss", float("nan")),
                logs.get("val_auc", float("nan")))

"""Folding the input normalisation into the graph, so the model takes raw pixels 0..255.

The device feeds uint8 RGB pixels with identity input quantization (scale 1.0, zero
point 0). The wrapped model starts with the normalisation the source model was trained
with; TFLite then fuses it into the first layer's weights where it can.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Per-channel RGB mean and standard deviation of ImageNet on the 0..1 scale, as
#: torchvision and ``keras.applications`` (mode "torch") use them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Normalisation names accepted by ``--normalisation``.
NORMALISATIONS = ("mobilenet", "unit", "imagenet", "none")


def normalise(pixels: np.ndarray, name: str) -> np.ndarray:
    """Apply normalisation ``name`` to float or uint8 pixels 0..255 with numpy (float32 out).

    This is the reference the folded graph is tested against.
    """
    x = pixels.astype(np.float32)
    if name == "mobilenet":
        return x / np.float32(127.5) - np.float32(1.0)
    if name == "unit":
        return x / np.float32(255.0)
    if name == "imagenet":
        mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
        std = np.asarray(IMAGENET_STD, dtype=np.float32)
        return (x / np.float32(255.0) - mean) / std
    if name == "none":
        return x
    raise ValueError(f"unknown normalisation {name!r}; choose one of {NORMALISATIONS}")


def wrap_with_normalisation(model: Any, normalisation: str, width: int, height: int) -> Any:
    """Build a batch-1 Keras model that takes float pixels 0..255, normalises and runs ``model``.

    Args:
        model: A Keras model (or layer) taking normalised (1, height, width, 3) input.
        normalisation: One of :data:`NORMALISATIONS`.
        width: Input width in pixels.
        height: Input height in pixels.
    """
    import keras  # noqa: PLC0415 - TensorFlow and Keras load only when converting

    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}; choose one of {NORMALISATIONS}")

    pixels = keras.Input(shape=(height, width, 3), batch_size=1, dtype="float32", name="pixels")
    x = pixels
    if normalisation == "mobilenet":
        x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise_mobilenet")(x)
    elif normalisation == "unit":
        x = keras.layers.Rescaling(1.0 / 255.0, name="normalise_unit")(x)
    elif normalisation == "imagenet":
        x = keras.layers.Rescaling(1.0 / 255.0, name="normalise_imagenet_scale")(x)
        x = keras.layers.Normalization(
            axis=-1, mean=list(IMAGENET_MEAN), variance=[s * s for s in IMAGENET_STD],
            name="normalise_imagenet_standardise",
        )(x)

    outputs = model(x)
    if isinstance(outputs, dict):
        # A SavedModel's serving signature returns a mapping; the source has one output.
        outputs = next(iter(outputs.values()))
    return keras.Model(pixels, outputs, name="cadr_wrapped")

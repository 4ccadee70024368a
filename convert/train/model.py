"""The classifier: a small depthwise-separable backbone and one sigmoid unit.

Two backbones are offered. ``separable`` (the default) is a six-stage MobileNet-style
stack of depthwise-separable convolutions that trains from scratch in minutes on a CPU.
``mobilenetv2`` is ``keras.applications.MobileNetV2``. Both use ReLU6, batch
normalisation and depthwise convolutions, which full-integer int8 conversion handles
well. Nothing is downloaded (``weights=None``); initial weights come only from a file the
user passes.

NOTE: ``mobilenetv2`` from scratch gave constant inference-mode outputs after a short
run (120 generated images, 3 epochs), probably because its batch-normalisation
statistics had not settled. It has not been trained to completion; prefer it with
``--init-weights``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Batch-normalisation momentum for training from scratch. Keras's MobileNetV2 uses
#: 0.999, whose moving statistics average over about a thousand steps, longer than a
#: short CPU training run.
BATCH_NORM_MOMENTUM = 0.9

#: Name of the output layer; its single unit is P(positive label).
OUTPUT_NAME = "positive_probability"


#: Backbone names accepted by :func:`build_model`.
ARCHITECTURES = ("separable", "mobilenetv2")

#: (output channels at alpha 1, stride) of each depthwise-separable stage of ``separable``.
SEPARABLE_STAGES = ((64, 2), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2))

#: Output channels of the stride-2 stem convolution at alpha 1.
SEPARABLE_STEM = 32


def build_model(height: int, width: int, alpha: float, dropout: float, *,
                init_weights: Path | None = None, architecture: str = "separable") -> Any:
    """Build the uncompiled classifier taking normalised (height, width, 3) float input.

    Args:
        height: Input height in pixels.
        width: Input width in pixels.
        alpha: Width multiplier of the backbone's channel counts.
        dropout: Dropout rate before the output unit.
        init_weights: Optional starting weights: a ``.keras`` model whose layers are
            matched by name and shape, or a Keras weights file of the backbone (for
            example MobileNetV2 "no top" weights with the same alpha).
        architecture: One of :data:`ARCHITECTURES`.

    Raises:
        ValueError: If ``init_weights`` cannot be read or matches no layer.
    """
    import keras  # noqa: PLC0415 - TensorFlow loads only for training

    if architecture == "mobilenetv2":
        backbone = keras.applications.MobileNetV2(
            input_shape=(height, width, 3), alpha=alpha, include_top=False, weights=None,
            pooling="avg",
        )
    elif architecture == "separable":
        backbone = _separable_backbone(height, width, alpha)
    else:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BATCH_NORM_MOMENTUM

    inputs = keras.Input(shape=(height, width, 3), name="normalised_pixels")
    features = backbone(inputs)
    features = keras.layers.Dropout(dropout, name="dropout")(features)
    outputs = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_NAME)(features)
    model = keras.Model(inputs, outputs, name=f"cadr_{architecture}_{alpha:g}_{height}x{width}")

    if init_weights is not None:
        _load_initial_weights(model, backbone, init_weights)
    return model


def _separable_backbone(height: int, width: int, alpha: float) -> Any:
    """Build the ``separable`` backbone, ending in global average pooling."""
    import keras  # noqa: PLC0415

    def channels(base: int) -> int:
        return max(8, int(round(base * alpha / 8.0)) * 8)

    inputs = keras.Input(shape=(height, width, 3))
    x = keras.layers.Conv2D(channels(SEPARABLE_STEM), 3, strides=2, padding="same",
                            use_bias=False, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(6.0, name="stem_relu")(x)

    for index, (base, stride) in enumerate(SEPARABLE_STAGES, start=1):
        x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                         name=f"stage{index}_depthwise")(x)
        x = keras.layers.BatchNormalization(name=f"stage{index}_depthwise_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"stage{index}_depthwise_relu")(x)
        x = keras.layers.Conv2D(channels(base), 1, use_bias=False,
                                name=f"stage{index}_pointwise")(x)
        x = keras.layers.BatchNormalization(name=f"stage{index}_pointwise_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"stage{index}_pointwise_relu")(x)

    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, x, name=f"separable_{alpha:g}")


def _load_initial_weights(model: Any, backbone: Any, path: Path) -> None:
    import keras  # noqa: PLC0415

    if not path.is_file():
        raise ValueError(f"{path}: initial weights file not found")

    if path.suffix == ".keras":
        try:
            source = keras.models.load_model(path, compile=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot load as a Keras model ({e})") from e
        copied = _copy_matching(source, model)
        if copied == 0:
            raise ValueError(f"{path}: no layer matches this model by name and weight shapes; "
                             "pass a model of the same architecture, alpha and input size")
        logger.info("Copied weights of %d layers from %s", copied, path)
        return

    try:
        backbone.load_weights(path)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"{path}: cannot load as backbone weights ({e}); pass MobileNetV2 no-top weights "
            "with the same alpha, or a .keras model"
        ) from e
    logger.info("Loaded backbone weights from %s", path)


def _copy_matching(source: Any, target: Any) -> int:
    """Copy weights between layers of the same name and shapes, also inside nested models."""
    source_layers = {layer.name: layer for layer in _walk(source)}
    copied = 0
    for layer in _walk(target):
        match = source_layers.get(layer.name)
        if match is None or not layer.weights:
            continue
        values = match.get_weights()
        if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            continue
        layer.set_weights(values)
        copied += 1
    return copied


def _walk(model: Any) -> list[Any]:
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if hasattr(layer, "layers"):
            layers.extend(_walk(layer))
    return layers

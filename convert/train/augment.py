"""Seeded training augmentations and the input normalisation, as TensorFlow ops.

Every random choice uses a stateless op seeded by ``(seed, example counter)``, so a run
with the same seed sees the same augmented images in the same order. The
normalisations match :func:`cadr_convert.folding.normalise`, which the converter folds
into the int8 graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cadr_convert.folding import IMAGENET_MEAN, IMAGENET_STD, NORMALISATIONS


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random changes applied to each training image.

    Attributes:
        min_crop: Smallest random crop side as a fraction of the input side; the crop is
            resized back to the input size (a zoom of up to 1 / min_crop).
        brightness: Largest brightness shift, in pixel values 0..255.
        contrast: Contrast factor range is [1 - contrast, 1 + contrast].
        saturation: Saturation factor range is [1 - saturation, 1 + saturation].
        hue: Largest hue shift, as a fraction of the colour circle.
    """

    min_crop: float = 0.8
    brightness: float = 25.0
    contrast: float = 0.2
    saturation: float = 0.15
    hue: float = 0.02


def augment_example(pixels: Any, seed: Any, settings: Augmentation) -> Any:
    """Augment one (height, width, 3) float32 image of pixel values 0..255.

    Args:
        pixels: The image tensor.
        seed: A shape (2,) int tensor; distinct per example and epoch.
        settings: The augmentation ranges.

    Returns:
        The augmented image, clipped to 0..255.
    """
    import tensorflow as tf  # noqa: PLC0415 - TensorFlow loads only for training

    height, width = pixels.shape[0], pixels.shape[1]
    seeds = tf.random.experimental.stateless_split(seed, num=8)

    # Flips and quarter turns: a close-up of skin has no upright orientation.
    x = tf.image.stateless_random_flip_left_right(pixels, seeds[0])
    x = tf.image.stateless_random_flip_up_down(x, seeds[1])
    turns = tf.random.stateless_uniform([], seeds[2], 0, 4, dtype=tf.int32)
    x = tf.image.rot90(x, turns)

    # Random crop, resized back: the camera distance varies.
    fraction = tf.random.stateless_uniform([], seeds[3], settings.min_crop, 1.0)
    side = tf.cast(tf.round(fraction * min(height, width)), tf.int32)
    x = tf.image.stateless_random_crop(x, tf.stack([side, side, 3]), seeds[4])
    x = tf.image.resize(x, (height, width), method="bilinear")

    # Exposure and white balance.
    x = tf.image.stateless_random_brightness(x, settings.brightness, seeds[5])
    x = tf.image.stateless_random_contrast(x, 1.0 - settings.contrast, 1.0 + settings.contrast,
                                           seeds[6])
    x = tf.clip_by_value(x, 0.0, 255.0) / 255.0
    x = tf.image.stateless_random_saturation(x, 1.0 - settings.saturation,
                                             1.0 + settings.saturation, seeds[7])
    x = tf.image.stateless_random_hue(x, settings.hue, seeds[0][::-1])
    return tf.clip_by_value(x * 255.0, 0.0, 255.0)


def normalise_tensor(pixels: Any, name: str) -> Any:
    """Apply normalisation ``name`` to float pixels 0..255, as the converter folds it."""
    import tensorflow as tf  # noqa: PLC0415

    if name == "mobilenet":
        return pixels / 127.5 - 1.0
    if name == "unit":
        return pixels / 255.0
    if name == "imagenet":
        mean = tf.constant(IMAGENET_MEAN, dtype=tf.float32)
        std = tf.constant(IMAGENET_STD, dtype=tf.float32)
        return (pixels / 255.0 - mean) / std
    if name == "none":
        return pixels
    raise ValueError(f"unknown normalisation {name!r}; choose one of {NORMALISATIONS}")

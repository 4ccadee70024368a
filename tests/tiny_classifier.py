"""Synthetic skin images and a tiny trained Keras classifier for the converter tests.

Positive images ("severe") show pink skin with a few large dark dusky blobs; negative
images ("mild") show the same skin with many small red dots. The classes are easy to
separate, so a two-layer CNN learns them in a few seconds and the int8 conversion has a
real, non-constant model to preserve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cadr_convert.folding import normalise
from cadr_device.images import iter_image_files, load_rgb
from cadr_device.preprocess import PreprocessRule, model_input

LABELS = ("mild", "severe")
IMAGE_SIDE = 80
INPUT_SIZE = 32


def make_image(label: str, rng: np.random.Generator, side: int = IMAGE_SIDE) -> Image.Image:
    """Draw one synthetic skin photograph of class ``label``."""
    base = np.array([226, 170, 160]) + rng.integers(-20, 20, 3)
    noise = rng.normal(0.0, 8.0, (side, side, 3))
    skin = np.clip(base + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(skin)
    draw = ImageDraw.Draw(image)

    if label == "severe":
        for _ in range(int(rng.integers(2, 5))):
            radius = int(rng.integers(side // 10, side // 5))
            cx, cy = rng.integers(radius, side - radius, 2)
            shade = tuple(int(v) for v in np.array([95, 60, 85]) + rng.integers(-15, 15, 3))
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=shade)
    else:
        for _ in range(int(rng.integers(10, 25))):
            radius = int(rng.integers(1, 3))
            cx, cy = rng.integers(2, side - 2, 2)
            shade = tuple(int(v) for v in np.array([200, 40, 50]) + rng.integers(-20, 20, 3))
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=shade)
    return image.filter(ImageFilter.GaussianBlur(0.8))


def write_image_folder(root: Path, per_label: int, seed: int) -> Path:
    """Write ``per_label`` images per label into ``root/<label>/``, alternating JPEG and PNG."""
    rng = np.random.default_rng(seed)
    for label in LABELS:
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            image = make_image(label, rng)
            if i % 2:
                image.save(folder / f"{label}_{i:03d}.png")
            else:
                image.save(folder / f"{label}_{i:03d}.jpg", quality=92)
    return root


def load_folder(root: Path, crop_fraction: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Read a labelled folder into uint8 model inputs and 0/1 labels (1 for ``severe``)."""
    rule = PreprocessRule(INPUT_SIZE, INPUT_SIZE, crop_fraction=crop_fraction)
    inputs, labels = [], []
    for label_index, label in enumerate(LABELS):
        for path in iter_image_files(root / label):
            inputs.append(model_input(load_rgb(path), rule))
            labels.append(label_index)
    return np.stack(inputs), np.asarray(labels)


def build_model(normalisation: str = "mobilenet") -> object:
    """Return an untrained tiny CNN taking normalised (None, 32, 32, 3) input, one sigmoid unit."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def train_model(train_dir: Path, model_path: Path, normalisation: str = "mobilenet",
                epochs: int = 25) -> Path:
    """Train the tiny CNN on ``train_dir`` with ``normalisation`` applied in numpy and save it."""
    model = build_model(normalisation)
    inputs, labels = load_folder(train_dir)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(normalise(inputs, normalisation), labels.astype(np.float32), epochs=epochs,
              batch_size=16, verbose=0)
    model.save(model_path)
    return model_path


def image_count(root: Path) -> int:
    """Return the number of image files under ``root``."""
    return len(iter_image_files(root))

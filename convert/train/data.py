"""Labelled image folders turned into model inputs with the device's own preprocessing.

Every training and validation image goes through :func:`cadr_device.images.load_rgb`
and :func:`cadr_device.preprocess.model_input`, the functions the device and the
converter use, so the model is trained on exactly the crop and resize it will see.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cadr_device.errors import ImageError
from cadr_device.images import iter_image_files, load_rgb
from cadr_device.preprocess import PreprocessRule, model_input

logger = logging.getLogger(__name__)


class TrainingDataError(Exception):
    """A training or validation folder is missing, mislabelled or holds an unreadable image."""


@dataclass(frozen=True)
class LabelledInputs:
    """Model inputs of a labelled folder.

    Attributes:
        inputs: (N, height, width, 3) uint8 RGB after the device's crop and resize.
        targets: (N,) float32, 1.0 for the positive label.
        paths: Source file of each row.
    """

    inputs: np.ndarray
    targets: np.ndarray
    paths: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, rows: np.ndarray) -> LabelledInputs:
        """Return the rows with the given indices."""
        return LabelledInputs(self.inputs[rows], self.targets[rows],
                              tuple(self.paths[i] for i in rows))

    def class_counts(self) -> tuple[int, int]:
        """Return the number of negative and positive rows."""
        positives = int(self.targets.sum())
        return len(self) - positives, positives


def find_labels(folder: Path) -> tuple[str, str]:
    """Return the two label subfolders of ``folder`` in sorted order (negative first).

    Raises:
        TrainingDataError: If the folder does not have exactly two non-hidden subfolders.
    """
    if not folder.is_dir():
        raise TrainingDataError(f"{folder}: image folder not found")
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) != 2:
        raise TrainingDataError(
            f"{folder}: found subfolders {names}; a binary classifier needs exactly two, "
            "one per label (for example non_severe/ and severe/)"
        )
    return names[0], names[1]


def load_labelled(folder: Path, labels: Sequence[str], rule: PreprocessRule) -> LabelledInputs:
    """Load every image of ``folder/<label>/`` (searched recursively) as a model input.

    Args:
        folder: A folder with one subfolder per label.
        labels: ``[negative, positive]``.
        rule: The crop and resize the device applies.

    Raises:
        TrainingDataError: If a label's subfolder is missing or empty, or an image cannot
            be decoded (naming the file).
    """
    entries: list[tuple[Path, float]] = []
    for target, label in enumerate(labels):
        sub = folder / label
        if not sub.is_dir():
            raise TrainingDataError(f"{sub}: missing; {folder} needs one subfolder per label "
                                    f"{list(labels)}")
        files = iter_image_files(sub)
        if not files:
            raise TrainingDataError(f"{sub}: no images found (JPEG, PNG, WebP, BMP or TIFF)")
        entries.extend((path, float(target)) for path in files)

    inputs = np.empty((len(entries), rule.height, rule.width, 3), dtype=np.uint8)
    for row, (path, _) in enumerate(entries):
        try:
            inputs[row] = model_input(load_rgb(path), rule)
        except ImageError as e:
            raise TrainingDataError(f"{e}; fix or remove the file and run again") from e

    targets = np.asarray([t for _, t in entries], dtype=np.float32)
    logger.info("Loaded %d images from %s (%d %s, %d %s)", len(entries), folder,
                int((targets == 0).sum()), labels[0], int(targets.sum()), labels[1])
    return LabelledInputs(inputs, targets, tuple(p for p, _ in entries))


def split_validation(data: LabelledInputs, fraction: float,
                     seed: int) -> tuple[LabelledInputs, LabelledInputs]:
    """Split off a stratified, seeded validation part of ``data``.

    Raises:
        TrainingDataError: If a class has too few images to give both parts one.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    train_rows: list[np.ndarray] = []
    val_rows: list[np.ndarray] = []
    for target in (0.0, 1.0):
        rows = np.flatnonzero(data.targets == target)
        rng.shuffle(rows)
        count = round(len(rows) * fraction)
        if count == 0 or count == len(rows):
            raise TrainingDataError(
                f"class {int(target)} has {len(rows)} images, too few to split off a "
                f"{fraction:.0%} validation part; pass --val with a separate folder"
            )
        val_rows.append(rows[:count])
        train_rows.append(rows[count:])
    return (data.subset(np.sort(np.concatenate(train_rows))),
            data.subset(np.sort(np.concatenate(val_rows))))

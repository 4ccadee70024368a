"""Calibration and validation image sets, read with the device's own decoder and crop.

Every image goes through :func:`cadr_device.images.load_rgb` (EXIF orientation applied)
and :func:`cadr_device.preprocess.model_input`, so calibration and validation see the
pixels the device will see. An unreadable file is an error naming the file: a folder
that silently shrinks would make the report describe images it never used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cadr_convert.conversion_errors import InputError
from cadr_convert.progress import Progress
from cadr_device.errors import ImageError
from cadr_device.images import iter_image_files, load_rgb
from cadr_device.preprocess import PreprocessRule, model_input

logger = logging.getLogger(__name__)

#: Fewest calibration images accepted without ``--allow-small-calibration``. Post-training
#: quantization takes each activation range from the calibration set's min and max; with
#: fewer images the ranges miss the tails that real photographs reach.
MIN_CALIBRATION_IMAGES = 100

#: Stratum name for calibration images that sit directly in the calibration folder.
TOP_LEVEL_STRATUM = "."


@dataclass(frozen=True)
class ImageSet:
    """Model inputs read from files, with where they came from.

    Attributes:
        files: Source files, one per input, in input order.
        groups: The class folder (or stratum) of each file.
        inputs: uint8 array (count, height, width, 3).
    """

    files: tuple[Path, ...]
    groups: tuple[str, ...]
    inputs: np.ndarray

    def counts(self) -> dict[str, int]:
        """Return the number of images per group, sorted by group name."""
        names, counts = np.unique(np.asarray(self.groups, dtype=object), return_counts=True)
        return {str(n): int(c) for n, c in zip(names, counts, strict=True)}


def sample_calibration_files(folder: Path, count: int, seed: int) -> list[tuple[Path, str]]:
    """Pick up to ``count`` calibration files, seeded, balanced across class subfolders.

    Each first-level subfolder is a stratum (files directly in ``folder`` form one more).
    Every stratum gets an equal share; a stratum with too few files gives its unused share
    to the others. Within a stratum the files are shuffled with ``numpy.random.default_rng
    (seed)`` from their sorted order, so the same folder and seed give the same sample.

    Raises:
        InputError: If the folder is missing or contains no image files.
    """
    strata = _strata(folder)
    rng = np.random.default_rng(seed)
    shuffled = {name: [files[i] for i in rng.permutation(len(files))]
                for name, files in sorted(strata.items())}

    quota = dict.fromkeys(shuffled, 0)
    remaining = min(count, sum(len(f) for f in shuffled.values()))
    while remaining > 0:
        open_strata = [n for n in shuffled if quota[n] < len(shuffled[n])]
        share = max(1, remaining // len(open_strata))
        for name in open_strata:
            take = min(share, len(shuffled[name]) - quota[name], remaining)
            quota[name] += take
            remaining -= take
            if remaining == 0:
                break

    return [(path, name) for name in shuffled for path in shuffled[name][:quota[name]]]


def _strata(folder: Path) -> dict[str, list[Path]]:
    if not folder.is_dir():
        raise InputError(f"{folder}: calibration folder not found; pass a folder of images")
    files = iter_image_files(folder)
    if not files:
        raise InputError(f"{folder}: no JPEG or PNG images found (searched recursively)")

    strata: dict[str, list[Path]] = {}
    for path in files:
        parts = path.relative_to(folder).parts
        name = parts[0] if len(parts) > 1 else TOP_LEVEL_STRATUM
        strata.setdefault(name, []).append(path)
    return strata


def labelled_files(folder: Path, labels: Sequence[str]) -> list[tuple[Path, str]]:
    """List a validation folder that has one subfolder per label, searched recursively.

    Raises:
        InputError: If the folder, a label's subfolder or its images are missing, or a
            subfolder is not one of the labels.
    """
    if not folder.is_dir():
        raise InputError(f"{folder}: validation folder not found")
    extra = sorted(p.name for p in folder.iterdir()
                   if p.is_dir() and not p.name.startswith(".") and p.name not in labels)
    if extra:
        raise InputError(f"{folder}: subfolder {extra[0]!r} is not one of the labels "
                         f"{list(labels)}; the validation folder needs one subfolder per label")

    found: list[tuple[Path, str]] = []
    for label in labels:
        sub = folder / label
        if not sub.is_dir():
            raise InputError(f"{sub}: missing; the validation folder needs one subfolder "
                             f"per label {list(labels)}")
        files = iter_image_files(sub)
        if not files:
            raise InputError(f"{sub}: no images found; each label needs validation images")
        found.extend((path, label) for path in files)
    return found


def load_inputs(entries: Sequence[tuple[Path, str]], rule: PreprocessRule, label: str) -> ImageSet:
    """Decode, crop and resize each file into the model input, showing progress.

    Raises:
        InputError: Naming the first file that cannot be decoded.
    """
    inputs = np.empty((len(entries), rule.height, rule.width, 3), dtype=np.uint8)
    progress = Progress(label, len(entries))
    for i, (path, _) in enumerate(entries):
        try:
            inputs[i] = model_input(load_rgb(path), rule)
        except ImageError as e:
            raise InputError(f"{e}; fix or remove the file and run again") from e
        progress.advance()

    return ImageSet(tuple(p for p, _ in entries), tuple(g for _, g in entries), inputs)

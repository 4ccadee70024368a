"""Seeded generation of schematic lesion images and of whole labelled image folders.

Each image has its own random stream, derived from ``(seed, class, index)`` with
:class:`numpy.random.SeedSequence`, so an image's bytes depend only on those three
numbers and the numpy and Pillow versions: the same seed gives byte-identical files
whatever the number of worker processes.

The images are schematic drawings of textbook lesion descriptions, not clinical
photographs. They exist to exercise the training, conversion and device pipeline.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cadr_convert.lesions import camera, patterns, skin

logger = logging.getLogger(__name__)

#: Class folder names, negative first; the trainer's label order.
LABELS = ("non_severe", "severe")

#: Side of a generated image in pixels, unless the caller picks another.
DEFAULT_SIZE = 256

#: Drawing happens on a larger square so rotation never shows a corner.
ROTATION_MARGIN = 1.45

#: Range of the lesion size multiplier (camera distance).
SCALE_RANGE = (0.7, 1.5)

#: Share of the lesions' darkening (in log luma) that auto-exposure takes back. A camera
#: metering the whole frame exposes a frame with large dark lesions longer, so severe
#: drawings are not darker overall than non-severe ones on the same skin.
METERING_STRENGTH = 0.9

#: Limits of the auto-exposure gain.
METERING_GAIN = (0.8, 1.5)

#: Auto-exposure never raises the 99th percentile of the brightest channel above this
#: level (0..1), as a camera protects highlights from clipping.
METERING_HIGHLIGHT = 0.9

INDEX_NAME = "lesions.csv"


@dataclass(frozen=True)
class RenderedImage:
    """One drawn frame before JPEG encoding, with what was drawn on it.

    Attributes:
        rgb: (size, size, 3) float32 sRGB in 0..1 after camera effects.
        features: Coverage of each feature layer, in the same frame as ``rgb``; empty
            unless requested.
        fitzpatrick: Skin type 1..6.
        pattern_names: The lesion patterns drawn.
        jpeg_quality: The quality the file is saved with.
    """

    rgb: np.ndarray
    features: dict[str, np.ndarray]
    fitzpatrick: int
    pattern_names: tuple[str, ...]
    jpeg_quality: int


def image_rng(seed: int, label: str, index: int) -> np.random.Generator:
    """Return the random stream of image ``index`` of class ``label`` under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, LABELS.index(label), index]))


def render(rng: np.random.Generator, label: str, size: int = DEFAULT_SIZE,
           with_features: bool = False) -> RenderedImage:
    """Draw one image of class ``label``: skin, lesions, lighting, then camera effects.

    Args:
        rng: The image's random stream, from :func:`image_rng`.
        label: One of :data:`LABELS`.
        size: Side of the square image in pixels.
        with_features: Also return the feature coverage layers (slower); they do not
            change the drawn pixels.
    """
    canvas_size = int(np.ceil(size * ROTATION_MARGIN))
    scale = float(rng.uniform(*SCALE_RANGE)) * size / DEFAULT_SIZE
    skin_params = skin.choose_skin(rng, scale)
    canvas = patterns.Canvas(skin.render_skin(rng, canvas_size, skin_params), scale)
    bare_luma = _mean_luma(canvas.rgb)

    names = patterns.choose_patterns(rng, label)
    table = patterns.NON_SEVERE_PATTERNS if label == "non_severe" else patterns.SEVERE_PATTERNS
    for name in names:
        table[name](canvas, rng)
    patterns.shade_relief(canvas, light_angle=float(rng.uniform(0.0, 2.0 * np.pi)))
    canvas.rgb *= _metering_gain(canvas.rgb, bare_luma)
    canvas.rgb *= skin.illumination(rng, canvas_size)[..., None]

    settings = camera.choose_camera(rng)
    rgb = camera.rotate_crop(canvas.rgb, settings.rotation_deg, size)
    features = {}
    if with_features:
        features = {name: camera.rotate_crop_layer(layer, settings.rotation_deg, size)
                    for name, layer in canvas.features.items()}
    rgb = camera.apply_optics(rgb, settings)
    rgb = camera.apply_sensor(rng, rgb, settings)
    return RenderedImage(rgb, features, skin_params.fitzpatrick, tuple(names),
                         settings.jpeg_quality)


def _mean_luma(rgb: np.ndarray) -> float:
    """Return the mean Rec. 601 luma of a float sRGB image."""
    return float((rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).mean())


def _metering_gain(rgb: np.ndarray, bare_luma: float) -> float:
    """Return the auto-exposure gain that takes back most of the lesions' change of luma."""
    gain = (bare_luma / max(_mean_luma(rgb), 1e-6)) ** METERING_STRENGTH
    highlight = float(np.percentile(rgb.max(axis=-1), 99.0))
    if gain > 1.0:
        gain = min(gain, max(1.0, METERING_HIGHLIGHT / max(highlight, 1e-6)))
    return float(np.clip(gain, *METERING_GAIN))


def generate_jpeg(seed: int, label: str, index: int, size: int = DEFAULT_SIZE) -> bytes:
    """Return the JPEG bytes of image ``index`` of class ``label`` under ``seed``."""
    image = render(image_rng(seed, label, index), label, size)
    return camera.encode_jpeg(image.rgb, image.jpeg_quality)


@dataclass(frozen=True)
class _Job:
    out: Path
    seed: int
    label: str
    index: int
    size: int


def _write_one(job: _Job) -> tuple[str, str, int, str]:
    """Render and write one file; return its index row (file, label, Fitzpatrick, patterns)."""
    image = render(image_rng(job.seed, job.label, job.index), job.label, job.size)
    name = f"{job.label}/{job.label}_{job.index:05d}.jpg"
    path = job.out / name
    temporary = path.with_suffix(".jpg.tmp")
    temporary.write_bytes(camera.encode_jpeg(image.rgb, image.jpeg_quality))
    os.replace(temporary, path)
    return name, job.label, image.fitzpatrick, "+".join(image.pattern_names)


def write_dataset(out: Path, count: int, seed: int, size: int = DEFAULT_SIZE,
                  jobs: int = 1) -> Path:
    """Write ``count`` images per class into ``out/<label>/`` and an index ``out/lesions.csv``.

    Args:
        out: Output folder; created if missing. Existing files of the same names are
            replaced, other files are left alone.
        count: Images per class.
        seed: Seed of the whole set; use different seeds for training, validation and test.
        size: Side of each square image in pixels.
        jobs: Worker processes; the files do not depend on it.

    Returns:
        The path of the index file.
    """
    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    if jobs <= 0:
        raise ValueError(f"jobs must be positive, got {jobs}")

    for label in LABELS:
        (out / label).mkdir(parents=True, exist_ok=True)
    work = [_Job(out, seed, label, i, size) for label in LABELS for i in range(count)]
    logger.info("Generating %d images per class (seed %d, %d px, %d jobs) into %s",
                count, seed, size, jobs, out)

    if jobs == 1:
        rows = [_write_one(job) for job in work]
    else:
        # Fork is not used: TensorFlow or other threads in the parent make forking unsafe.
        context = multiprocessing.get_context("spawn")
        with context.Pool(jobs) as pool:
            rows = pool.map(_write_one, work, chunksize=16)

    index = out / INDEX_NAME
    with index.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "label", "fitzpatrick", "patterns", "seed"])
        for row in rows:
            writer.writerow([*row, seed])
    logger.info("Wrote %d images and %s", len(rows), index)
    return index

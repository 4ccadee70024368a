"""The schematic lesion generator: reproducibility, class features and image statistics."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadr_convert.lesions import generator
from cadr_convert.lesions.generator import LABELS, generate_jpeg, image_rng, render, write_dataset

# Images per class for the statistical checks: enough that every pattern appears often.
SAMPLE = 40

# Images per class, side in pixels and seed of the brightness comparison.
BRIGHTNESS_SAMPLE = 300
BRIGHTNESS_SIDE = 48
BRIGHTNESS_SEED = 12

# Largest allowed difference of mean Rec. 601 luma (0..1) between the classes, about 5 of
# 255 levels. Before auto-exposure metering the severe class was about 0.05 darker.
MAX_LUMA_DIFFERENCE = 0.02


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[generator.RenderedImage]]:
    return {
        label: [render(image_rng(7, label, i), label, 128, with_features=True)
                for i in range(SAMPLE)]
        for label in LABELS
    }


def _coverage(images: list[generator.RenderedImage], feature: str) -> np.ndarray:
    """Return the fraction of each image covered (above 0.3) by ``feature``."""
    return np.array([float((image.features[feature] > 0.3).mean()) for image in images])


def _pixel_fractions(rgb: np.ndarray) -> dict[str, float]:
    """Measure colour classes in the pixels alone, relative to the image's median skin."""
    value = rgb.max(axis=-1)
    saturation = (value - rgb.min(axis=-1)) / np.maximum(value, 1e-6)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    median_value = float(np.median(value))
    median_blue_ratio = float(np.median(blue / np.maximum(red, 1e-6)))

    grey_white = (saturation < 0.2) & (value > median_value * 1.08)
    # Dusky: darker than the skin around it and shifted towards violet (more blue per red).
    dusky = (value < median_value * 0.8) & (blue / np.maximum(red, 1e-6) > median_blue_ratio + 0.08)
    # Saturated red (erythema or a raw erosion): green far below red.
    raw_red = (saturation > 0.55) & (green < 0.45 * red) & (value > median_value * 0.6)
    return {
        "grey_white": float(grey_white.mean()),
        "dusky": float(dusky.mean()),
        "raw_red": float(raw_red.mean()),
        "mean_luma": float((0.299 * red + 0.587 * green + 0.114 * blue).mean()),
        "contrast": float(value.std()),
    }


def test_same_seed_gives_identical_bytes() -> None:
    for label in LABELS:
        assert generate_jpeg(5, label, 3, 96) == generate_jpeg(5, label, 3, 96)


def test_other_seed_or_index_differs() -> None:
    reference = generate_jpeg(5, "severe", 3, 96)
    assert generate_jpeg(6, "severe", 3, 96) != reference
    assert generate_jpeg(5, "severe", 4, 96) != reference
    assert generate_jpeg(5, "non_severe", 3, 96) != reference


def test_dataset_independent_of_jobs(tmp_path: Path) -> None:
    write_dataset(tmp_path / "one", count=3, seed=9, size=64, jobs=1)
    write_dataset(tmp_path / "two", count=3, seed=9, size=64, jobs=2)

    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.jpg"))
    assert len(files) == 6
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    index_one = (tmp_path / "one" / "lesions.csv").read_text()
    assert index_one == (tmp_path / "two" / "lesions.csv").read_text()


def test_dataset_layout_and_index(tmp_path: Path) -> None:
    index = write_dataset(tmp_path, count=4, seed=1, size=64)

    for label in LABELS:
        files = sorted((tmp_path / label).glob("*.jpg"))
        assert [f.name for f in files] == [f"{label}_{i:05d}.jpg" for i in range(4)]
        with Image.open(files[0]) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert image.size == (64, 64)
    with index.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    assert {row["label"] for row in rows} == set(LABELS)
    assert all(1 <= int(row["fitzpatrick"]) <= 6 for row in rows)
    assert not list(tmp_path.rglob("*.tmp"))


def test_dataset_rejects_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="count"):
        write_dataset(tmp_path, count=0, seed=1)
    with pytest.raises(ValueError, match="size"):
        write_dataset(tmp_path, count=1, seed=1, size=16)
    with pytest.raises(ValueError, match="jobs"):
        write_dataset(tmp_path, count=1, seed=1, jobs=0)


def test_render_rejects_unknown_label() -> None:
    with pytest.raises(ValueError, match="label"):
        render(np.random.default_rng(0), "mild", 64)


def test_severe_features_only_in_severe(rendered: dict[str, list[generator.RenderedImage]]) -> None:
    for feature in ("blister", "erosion", "detached_epidermis", "crust", "dusky"):
        assert _coverage(rendered["non_severe"], feature).max() == 0.0, feature
        # Present in at least a fifth of the severe images.
        assert (_coverage(rendered["severe"], feature) > 0.0).mean() > 0.2, feature


def test_non_severe_features_only_in_non_severe(
        rendered: dict[str, list[generator.RenderedImage]]) -> None:
    for feature in ("target_centre", "wheal"):
        assert _coverage(rendered["severe"], feature).max() == 0.0, feature
        assert (_coverage(rendered["non_severe"], feature) > 0.0).mean() > 0.2, feature


def test_every_severe_image_has_a_severe_sign(
        rendered: dict[str, list[generator.RenderedImage]]) -> None:
    for image in rendered["severe"]:
        assert _coverage([image], "dusky")[0] > 0.0 or _coverage([image], "blister")[0] > 0.0


def test_erythema_shared_by_both_classes(
        rendered: dict[str, list[generator.RenderedImage]]) -> None:
    # The classes must differ by morphology, not merely by the presence of redness.
    assert _coverage(rendered["non_severe"], "erythema").mean() > 0.05
    assert _coverage(rendered["severe"], "erythema").mean() > 0.02


def test_pixel_colour_classes_differ(rendered: dict[str, list[generator.RenderedImage]]) -> None:
    stats = {label: [_pixel_fractions(image.rgb) for image in images]
             for label, images in rendered.items()}

    def mean(label: str, key: str) -> float:
        return float(np.mean([s[key] for s in stats[label]]))

    assert mean("severe", "dusky") > 2.0 * mean("non_severe", "dusky")
    assert mean("severe", "grey_white") > 1.5 * mean("non_severe", "grey_white")
    # Saturated red (erythema, erosions) is common to both: colour alone must not decide.
    assert mean("non_severe", "raw_red") > 0.01
    assert mean("severe", "raw_red") > 0.01


def test_classes_match_in_brightness() -> None:
    """Overall brightness must not separate the classes, within each skin type and overall."""
    luma: dict[str, dict[int, list[float]]] = {label: {} for label in LABELS}
    for label in LABELS:
        for i in range(BRIGHTNESS_SAMPLE):
            image = render(image_rng(BRIGHTNESS_SEED, label, i), label, BRIGHTNESS_SIDE)
            value = float((image.rgb @ np.array([0.299, 0.587, 0.114])).mean())
            luma[label].setdefault(image.fitzpatrick, []).append(value)

    # Compare within each skin type, so that the random mix of skin types in a sample
    # of a few hundred does not hide or fake a difference.
    assert set(luma["severe"]) == set(luma["non_severe"]) == {1, 2, 3, 4, 5, 6}
    per_type = [np.mean(luma["severe"][t]) - np.mean(luma["non_severe"][t]) for t in range(1, 7)]
    assert abs(float(np.mean(per_type))) < MAX_LUMA_DIFFERENCE, per_type

    overall = {label: np.mean([v for values in luma[label].values() for v in values])
               for label in LABELS}
    difference = float(overall["severe"] - overall["non_severe"])
    assert abs(difference) < 1.5 * MAX_LUMA_DIFFERENCE, overall


def test_dark_confounders_only_in_non_severe(
        rendered: dict[str, list[generator.RenderedImage]]) -> None:
    # The dark confounders of the non-severe class never appear in the severe class.
    for feature in ("hyperpigmentation", "fixed_eruption"):
        assert _coverage(rendered["severe"], feature).max() == 0.0, feature
        assert (_coverage(rendered["non_severe"], feature) > 0.0).mean() > 0.15, feature


def test_image_statistics_realistic(rendered: dict[str, list[generator.RenderedImage]]) -> None:
    for label, images in rendered.items():
        for i, image in enumerate(images):
            stats = _pixel_fractions(image.rgb)
            assert 0.06 < stats["mean_luma"] < 0.92, (label, i)
            assert stats["contrast"] > 0.01, (label, i)
            clipped = float((image.rgb >= 0.999).all(axis=-1).mean())
            assert clipped < 0.1, (label, i)


def test_skin_types_and_patterns_vary(rendered: dict[str, list[generator.RenderedImage]]) -> None:
    everything = rendered["non_severe"] + rendered["severe"]
    assert {image.fitzpatrick for image in everything} == {1, 2, 3, 4, 5, 6}
    patterns = {name for image in everything for name in image.pattern_names}
    assert {"morbilliform", "typical_targets", "urticarial_wheals", "atypical_targets",
            "flaccid_blisters", "erosions"} <= patterns


def test_jpeg_decodes_at_requested_size() -> None:
    data = generate_jpeg(1, "non_severe", 0, 200)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (200, 200)
        pixels = np.asarray(image)
    assert pixels.dtype == np.uint8
    assert pixels.std() > 3.0


def test_cli_writes_folders(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cadr_convert.lesions.cli", "--out", str(tmp_path / "set"),
         "--count", "2", "--seed", "4", "--size", "64", "--jobs", "1"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "set" / "severe").glob("*.jpg"))) == 2
    assert len(list((tmp_path / "set" / "non_severe").glob("*.jpg"))) == 2


def test_cli_rejects_zero_count(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cadr_convert.lesions.cli", "--out", str(tmp_path),
         "--count", "0", "--seed", "4"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2
    assert "count must be positive" in result.stderr

"""cadr-train: a short real training run whose model cadr-convert accepts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadr_convert.train.data import (
    TrainingDataError,
    find_labels,
    load_labelled,
    split_validation,
)
from cadr_device.preprocess import PreprocessRule

REPO = Path(__file__).resolve().parents[1]
DEMO_KEY = REPO / "models" / "keys" / "cadr-demo-signing-key.pem"

# An easy two-class task, so that a short run on a few dozen images beats chance reliably:
# plain skin-coloured noise against the same with large dark violet spots. Batch
# normalisation's moving statistics need several dozen steps before inference-mode outputs
# follow the training, hence small batches and ten epochs.
IMAGE_SIDE = 64
SKIN = (205, 160, 130)
SPOT = (95, 50, 85)


def _write_image(path: Path, rng: np.random.Generator, spotted: bool) -> None:
    pixels = np.empty((IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.float32)
    pixels[:] = np.asarray(SKIN, dtype=np.float32) * rng.uniform(0.7, 1.15)
    if spotted:
        ys, xs = np.mgrid[0:IMAGE_SIDE, 0:IMAGE_SIDE]
        for _ in range(int(rng.integers(2, 5))):
            cy, cx = rng.uniform(12, IMAGE_SIDE - 12, 2)
            radius = rng.uniform(5, 10)
            pixels[(ys - cy) ** 2 + (xs - cx) ** 2 < radius ** 2] = SPOT
    pixels += rng.normal(0, 8, pixels.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


def _write_set(folder: Path, count: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(count):
        _write_image(folder / "non_severe" / f"n{i:03d}.jpg", rng, spotted=False)
        _write_image(folder / "severe" / f"s{i:03d}.jpg", rng, spotted=True)
    return folder


def test_find_labels_sorted(tmp_path: Path) -> None:
    (tmp_path / "severe").mkdir()
    (tmp_path / "non_severe").mkdir()
    (tmp_path / ".cache").mkdir()
    assert find_labels(tmp_path) == ("non_severe", "severe")


def test_find_labels_rejects_three_folders(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    with pytest.raises(TrainingDataError, match="exactly two"):
        find_labels(tmp_path)


def test_load_labelled_uses_device_crop(tmp_path: Path) -> None:
    _write_set(tmp_path, count=3, seed=1)
    rule = PreprocessRule(width=32, height=32, crop_fraction=0.5)
    data = load_labelled(tmp_path, ("non_severe", "severe"), rule)
    assert data.inputs.shape == (6, 32, 32, 3)
    assert data.inputs.dtype == np.uint8
    assert data.targets.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.class_counts() == (3, 3)


def test_load_labelled_names_corrupt_file(tmp_path: Path) -> None:
    _write_set(tmp_path, count=2, seed=1)
    broken = tmp_path / "severe" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(TrainingDataError, match="broken.jpg"):
        load_labelled(tmp_path, ("non_severe", "severe"), PreprocessRule(width=32, height=32))


def test_load_labelled_missing_label_folder(tmp_path: Path) -> None:
    _write_set(tmp_path, count=2, seed=1)
    with pytest.raises(TrainingDataError, match="mild"):
        load_labelled(tmp_path, ("non_severe", "mild"), PreprocessRule(width=32, height=32))


def test_split_validation_stratified_and_seeded(tmp_path: Path) -> None:
    _write_set(tmp_path, count=10, seed=1)
    data = load_labelled(tmp_path, ("non_severe", "severe"), PreprocessRule(width=16, height=16))
    train, val = split_validation(data, 0.2, seed=3)
    again_train, again_val = split_validation(data, 0.2, seed=3)
    assert val.class_counts() == (2, 2)
    assert train.class_counts() == (8, 8)
    assert val.paths == again_val.paths
    assert train.paths == again_train.paths
    assert not set(train.paths) & set(val.paths)


def test_cli_rejects_bad_labels(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cadr_convert.train.cli", "--data", str(tmp_path),
         "--out", str(tmp_path / "m.keras"), "--labels", "only_one"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2
    assert "NEGATIVE,POSITIVE" in result.stderr


def test_cli_rejects_label_smoothing_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cadr_convert.train.cli", "--data", str(tmp_path),
         "--out", str(tmp_path / "m.keras"), "--label-smoothing", "1.0"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2
    assert "label smoothing must be in [0, 1)" in result.stderr


@pytest.mark.slow
def test_short_run_converts(tmp_path: Path) -> None:
    train_dir = _write_set(tmp_path / "train", count=48, seed=21)
    val_dir = _write_set(tmp_path / "val", count=20, seed=22)
    model = tmp_path / "model" / "tiny.keras"

    trained = subprocess.run(
        [sys.executable, "-m", "cadr_convert.train.cli", "--data", str(train_dir),
         "--val", str(val_dir), "--out", str(model), "--input-size", "48",
         "--crop-fraction", "1.0", "--alpha", "0.5", "--epochs", "10", "--patience", "10",
         "--batch-size", "8", "--seed", "5"],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert model.is_file()

    sidecar = json.loads((model.parent / "cadr-train.json").read_text(encoding="utf-8"))
    assert sidecar["normalisation"] == "mobilenet"
    assert sidecar["labels"] == ["non_severe", "severe"]
    assert sidecar["positive_label"] == "severe"
    assert sidecar["input_size"] == [48, 48]
    assert sidecar["crop_fraction"] == 1.0
    assert sidecar["seed"] == 5
    assert sidecar["label_smoothing"] == pytest.approx(0.1)
    assert sidecar["epochs_run"] >= 1
    assert sidecar["val_auc"] > 0.8, sidecar["val_auc_history"]

    bundle = tmp_path / "bundle"
    converted = subprocess.run(
        [sys.executable, "-m", "cadr_convert.cli", "--int8", str(model),
         "--calibration", str(train_dir), "--validation", str(val_dir), "--out", str(bundle),
         "--signing-key", str(DEMO_KEY), "--demonstration-only", "--name", "tiny-test",
         "--version", "0.0.1", "--crop-fraction", "1.0", "--calibration-count", "60",
         "--allow-small-calibration"],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert converted.returncode == 0, converted.stderr[-3000:]
    assert (bundle / "manifest.yaml").is_file()
    assert (bundle / "manifest.sig").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["separable", "mobilenetv2"])
def test_build_model_architectures(architecture: str) -> None:
    from cadr_convert.train.model import build_model

    model = build_model(32, 32, 0.35, 0.1, architecture=architecture)
    assert tuple(model.input_shape) == (None, 32, 32, 3)
    assert tuple(model.output_shape) == (None, 1)


@pytest.mark.slow
def test_build_model_rejects_unknown_architecture() -> None:
    from cadr_convert.train.model import build_model

    with pytest.raises(ValueError, match="architecture"):
        build_model(32, 32, 0.5, 0.1, architecture="resnet")


@pytest.mark.slow
def test_init_weights_copied_from_keras(tmp_path: Path) -> None:
    from cadr_convert.train.model import build_model

    source = build_model(32, 32, 0.5, 0.1)
    saved = tmp_path / "source.keras"
    source.save(saved)

    started = build_model(32, 32, 0.5, 0.1, init_weights=saved)
    for expected, actual in zip(source.get_weights(), started.get_weights(), strict=True):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.slow
def test_init_weights_missing_file(tmp_path: Path) -> None:
    from cadr_convert.train.model import build_model

    with pytest.raises(ValueError, match="not found"):
        build_model(32, 32, 0.5, 0.1, init_weights=tmp_path / "absent.keras")


@pytest.mark.slow
def test_init_weights_other_architecture(tmp_path: Path) -> None:
    from cadr_convert.train.model import build_model

    other = build_model(32, 32, 0.35, 0.1, architecture="mobilenetv2")
    saved = tmp_path / "other.keras"
    other.save(saved)
    with pytest.raises(ValueError, match="no layer matches"):
        build_model(32, 32, 0.5, 0.1, init_weights=saved)

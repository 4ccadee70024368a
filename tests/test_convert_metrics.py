"""Metrics, threshold choice and calibration sampling of the converter (no TensorFlow)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadr_convert.context import GateLimits
from cadr_convert.conversion_errors import InputError
from cadr_convert.dataset import labelled_files, sample_calibration_files
from cadr_convert.metrics import operating_point, roc_auc, threshold_for_sensitivity
from cadr_convert.validate import check_gate, compare


def pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    positives = scores[labels == 1]
    negatives = scores[labels == 0]
    wins = 0.0
    for p, n in itertools.product(positives, negatives):
        if p > n:
            wins += 1.0
        elif p == n:
            wins += 0.5
    return wins / (positives.size * negatives.size)


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_pairwise_count_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 60)
    labels[:2] = (0, 1)
    scores = rng.integers(0, 8, 60) / 8.0  # few distinct values, so many ties
    assert roc_auc(labels, scores) == pytest.approx(pairwise_auc(labels, scores))


def test_auc_perfect_inverted_and_constant() -> None:
    labels = np.array([0, 0, 1, 1])
    assert roc_auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(labels, np.full(4, 0.5)) == 0.5


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_auc(np.ones(3), np.array([0.1, 0.2, 0.3]))


def test_threshold_reaches_target_sensitivity() -> None:
    labels = np.array([1] * 10 + [0] * 10)
    scores = np.concatenate([np.linspace(0.1, 1.0, 10), np.linspace(0.0, 0.5, 10)])
    threshold = threshold_for_sensitivity(labels, scores, 0.9)
    point = operating_point(labels, scores, threshold)
    assert point.sensitivity >= 0.9
    assert threshold == pytest.approx(0.2)
    assert operating_point(labels, scores, threshold + 1e-6).sensitivity < 0.9


def test_operating_point_counts_and_empty_rates() -> None:
    labels = np.array([1, 1, 0, 0])
    point = operating_point(labels, np.array([0.9, 0.2, 0.7, 0.1]), 0.5)
    assert (point.true_positives, point.false_negatives) == (1, 1)
    assert (point.false_positives, point.true_negatives) == (1, 1)
    assert point.ppv == 0.5
    assert math.isnan(operating_point(labels, np.full(4, 0.9), 0.5).npv)


def test_gate_flags_constant_output_first() -> None:
    labels = np.array([0, 1] * 10)
    validation = compare(labels, np.full(20, 0.5), np.full(20, 0.5), 0.9)
    failure = check_gate(validation, GateLimits())
    assert failure is not None
    assert failure.option == "--min-output-spread"
    assert "limit 0.0200" in failure.message()


def test_gate_flags_auc_drop_and_agreement() -> None:
    labels = np.array([0, 1] * 10)
    good = np.where(labels == 1, 0.9, 0.1) + np.linspace(0, 0.05, 20)
    shuffled = np.random.default_rng(0).permutation(good)
    validation = compare(labels, good, shuffled, 0.9)
    failure = check_gate(validation, GateLimits())
    assert failure is not None
    assert failure.option == "--max-auc-drop"

    loose = GateLimits(max_auc_drop=1.0)
    failure = check_gate(validation, loose)
    assert failure is not None
    assert failure.option == "--min-agreement"
    assert check_gate(validation, GateLimits(max_auc_drop=1.0, min_agreement=0.0)) is None


def write_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (16, 16), (i % 256, 0, 0)).save(folder / f"{i:03d}.png")


def test_sampling_is_seeded_and_balanced(tmp_path: Path) -> None:
    write_images(tmp_path / "a", 50)
    write_images(tmp_path / "b", 8)
    write_images(tmp_path, 4)

    first = sample_calibration_files(tmp_path, 30, seed=5)
    again = sample_calibration_files(tmp_path, 30, seed=5)
    other = sample_calibration_files(tmp_path, 30, seed=6)
    groups = [group for _, group in first]

    assert first == again
    assert first != other
    assert len(first) == 30
    assert groups.count("b") == 8
    assert groups.count(".") == 4
    assert groups.count("a") == 18


def test_sampling_takes_all_when_count_exceeds(tmp_path: Path) -> None:
    write_images(tmp_path / "a", 5)
    assert len(sample_calibration_files(tmp_path, 300, seed=0)) == 5


def test_sampling_rejects_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no JPEG or PNG images"):
        sample_calibration_files(tmp_path, 10, seed=0)


def test_validation_folder_needs_each_label(tmp_path: Path) -> None:
    write_images(tmp_path / "mild", 3)
    with pytest.raises(InputError, match="severe: missing"):
        labelled_files(tmp_path, ("mild", "severe"))


def test_validation_folder_rejects_unknown_subfolder(tmp_path: Path) -> None:
    for name in ("mild", "severe", "other"):
        write_images(tmp_path / name, 2)
    with pytest.raises(InputError, match="'other' is not one of the labels"):
        labelled_files(tmp_path, ("mild", "severe"))


def test_golden_tolerance_covers_kernel_difference():
    from cadr_convert import goldens

    scale = 1 / 256
    assert goldens.tolerance(scale) == round(4 * scale, 6)
    assert goldens.tolerance(scale, kernel_difference=5 * scale) == round(7 * scale, 6)
    assert goldens.tolerance(0.0, kernel_difference=0.05) == 0.05

"""The committed demonstration bundle models/cadr-demo: signature, model card, self-test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cadr_device.bundle import Bundle, load_bundle
from cadr_device.classifier import Classifier
from cadr_device.selftest import run_selftest
from cadr_device.signing import PACKAGED_KEY_DIR, Keyring

REPO = Path(__file__).resolve().parents[1]
BUNDLE_DIR = REPO / "models" / "cadr-demo"
MODEL_CARD = REPO / "models" / "README.md"

# Card numbers are rounded to four decimals.
CARD_TOLERANCE = 5e-5

# Steps of the uint8 output (scale 1/256). A threshold on the top step, 255/256, flips on
# one step of runtime difference, so the demonstration threshold must stay below it and
# below MAX_THRESHOLD.
OUTPUT_STEPS = 256
TOP_OUTPUT_STEP = 255
MAX_THRESHOLD = 0.95


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle(BUNDLE_DIR, Keyring.from_directory(PACKAGED_KEY_DIR))


@pytest.fixture(scope="module")
def card() -> dict[str, str]:
    """Read the key-value table under the card's "Measured numbers" heading."""
    text = MODEL_CARD.read_text(encoding="utf-8")
    section = text.split("## Measured numbers", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*`([a-z0-9_]+)`\s*\|\s*([^|]+?)\s*\|", section, flags=re.MULTILINE)
    return dict(rows)


def test_bundle_verifies_with_packaged_keys(bundle: Bundle) -> None:
    assert bundle.signer.demo_only
    assert bundle.manifest.demonstration_only is True


def test_manifest_identity(bundle: Bundle, card: dict[str, str]) -> None:
    manifest = bundle.manifest
    assert manifest.name == card["name"] == "cadr-demo"
    assert manifest.version == card["version"] == "1.1.0"
    assert manifest.labels == ("non_severe", "severe")
    assert manifest.positive_label == "severe"
    assert "not for clinical use" in manifest.intended_use


def test_manifest_matches_card_preprocessing(bundle: Bundle, card: dict[str, str]) -> None:
    rule = bundle.manifest.preprocess
    assert rule.width == rule.height == int(card["input_size"])
    assert rule.crop_fraction == pytest.approx(float(card["crop_fraction"]))


def test_manifest_matches_card_decision(bundle: Bundle, card: dict[str, str]) -> None:
    decision = bundle.manifest.decision
    assert decision.threshold == pytest.approx(float(card["threshold"]), abs=CARD_TOLERANCE)
    assert decision.target_sensitivity == pytest.approx(0.90)
    assert decision.sensitivity == pytest.approx(float(card["val_sensitivity_int8"]),
                                                 abs=CARD_TOLERANCE)
    assert decision.specificity == pytest.approx(float(card["val_specificity_int8"]),
                                                 abs=CARD_TOLERANCE)
    assert decision.validation_images == int(card["val_images"])
    assert decision.sensitivity >= 0.90


def test_threshold_below_top_step(bundle: Bundle) -> None:
    threshold = bundle.manifest.decision.threshold
    assert threshold < MAX_THRESHOLD
    # The manifest stores the threshold rounded down to six decimals, so round to a step.
    assert round(threshold * OUTPUT_STEPS) < TOP_OUTPUT_STEP


def test_model_size_matches_card(bundle: Bundle, card: dict[str, str]) -> None:
    assert bundle.model_path.stat().st_size == int(card["model_bytes"])


def test_card_meets_targets(card: dict[str, str]) -> None:
    float_auc = float(card["test_auc_float"])
    int8_auc = float(card["test_auc_int8"])
    assert float_auc >= 0.95
    assert abs(float_auc - int8_auc) <= 0.005
    assert int(card["test_images"]) >= 400


def test_selftest_passes_with_litert(bundle: Bundle) -> None:
    classifier = Classifier(bundle, num_threads=1)
    assert classifier.runtime.distribution == "ai-edge-litert"
    result = run_selftest(classifier)
    assert len(result.probabilities) == len(bundle.manifest.selftest.cases) > 0
    assert result.max_difference <= bundle.manifest.selftest.tolerance


def test_samples_classified_by_bundle(bundle: Bundle) -> None:
    """The README sample images get their own class at the bundle's threshold, mostly."""
    from cadr_device.images import load_rgb
    from cadr_device.preprocess import model_input

    classifier = Classifier(bundle, num_threads=1)
    samples = sorted((REPO / "samples").glob("*.jpg"))
    assert len(samples) >= 6
    correct = 0
    for path in samples:
        prediction = classifier.classify(model_input(load_rgb(path), bundle.manifest.preprocess))
        expected = "non_severe" if path.name.startswith("non_severe") else "severe"
        correct += prediction.label == expected
    assert correct >= len(samples) - 1

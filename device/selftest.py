"""The golden self-test: known inputs must give their recorded outputs before any screening.

A bundle carries a few model inputs as lossless PNG files and the probability the
converter measured for each. The device runs them through the same interpreter it will
use for patients; a mismatch beyond the bundle's tolerance means the runtime, delegate
or model file does not behave as it did when the bundle was made, and no result may be
shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cadr_device.classifier import Classifier
from cadr_device.errors import SelfTestError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelfTestResult:
    """Per-case probabilities and the largest difference from the expected ones."""

    probabilities: tuple[float, ...]
    max_difference: float


def run_selftest(classifier: Classifier) -> SelfTestResult:
    """Run every golden case and compare with the manifest.

    Raises:
        SelfTestError: Naming the first failing case, the expected and actual probability.
    """
    bundle = classifier.bundle
    spec = bundle.manifest.selftest
    rule = bundle.manifest.preprocess
    probabilities = []
    worst = 0.0

    for case in spec.cases:
        path = bundle.file(case.file)
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        if pixels.shape != (rule.height, rule.width, 3):
            raise SelfTestError(f"{path}: golden input is {pixels.shape}, expected "
                                f"{(rule.height, rule.width, 3)}; rebuild the bundle")
        actual, _ = classifier.probability(pixels)
        difference = abs(actual - case.probability)
        worst = max(worst, difference)
        probabilities.append(actual)
        if difference > spec.tolerance:
            raise SelfTestError(
                f"{path}: self-test probability {actual:.4f}, expected {case.probability:.4f} "
                f"(tolerance {spec.tolerance}); runtime {classifier.runtime.label} does not "
                f"reproduce model {bundle.manifest.model_id}, so screening is disabled"
            )

    logger.info("Self-test passed for %s: %d cases, max difference %.4f",
                bundle.manifest.model_id, len(spec.cases), worst)
    return SelfTestResult(tuple(probabilities), worst)

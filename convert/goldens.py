"""Golden self-test inputs: a few validation model inputs with their int8 probability.

The device reruns them before screening. The tolerance is a few steps of the output
quantization scale: the same int8 model run on another CPU (ARM NEON or XNNPACK kernels
against x86 ones) may round an intermediate sum differently, which moves the output by
one or two steps; a wrong model, runtime or delegate moves it much further.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: Golden inputs per bundle, split between the two classes.
GOLDEN_COUNT = 6

#: Allowed difference on the device, in output quantization steps.
TOLERANCE_STEPS = 4

#: Tolerance used when the output scale is unknown (a float output), as a probability.
FALLBACK_TOLERANCE = 0.02

SELFTEST_DIR = "selftest"


def pick_golden_indices(labels: np.ndarray, probabilities: np.ndarray,
                        count: int = GOLDEN_COUNT) -> list[int]:
    """Pick validation indices for the goldens, half from each class, spread over the scores.

    Within a class the images are sorted by int8 probability and taken at evenly spaced
    ranks, so the goldens cover low, middle and high outputs.
    """
    chosen: list[int] = []
    for cls, share in ((1, count - count // 2), (0, count // 2)):
        members = np.flatnonzero(np.asarray(labels) == cls)
        if members.size == 0:
            continue
        ordered = members[np.argsort(probabilities[members], kind="mergesort")]
        positions = np.unique(np.linspace(0, ordered.size - 1, min(share, ordered.size)).round())
        chosen.extend(int(ordered[int(p)]) for p in positions)
    return chosen


def write_goldens(bundle_dir: Path, inputs: np.ndarray,
                  probabilities: np.ndarray, indices: list[int]) -> list[dict[str, object]]:
    """Write ``selftest/golden_NN.png`` for each index and return the manifest cases."""
    folder = bundle_dir / SELFTEST_DIR
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[dict[str, object]] = []
    for number, index in enumerate(indices):
        name = f"{SELFTEST_DIR}/golden_{number:02d}.png"
        Image.fromarray(inputs[index]).save(bundle_dir / name, format="PNG")
        cases.append({"file": name, "probability": round(float(probabilities[index]), 6)})
    return cases


def tolerance(output_scale: float) -> float:
    """Return the self-test tolerance for an int8 output with quantization ``output_scale``."""
    if output_scale <= 0.0:
        return FALLBACK_TOLERANCE
    return round(TOLERANCE_STEPS * output_scale, 6)

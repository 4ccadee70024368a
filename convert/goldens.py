"""Golden self-test inputs: a few validation model inputs with their int8 probability.

The device reruns them before screening. The tolerance is a few steps of the output
quantization scale: the same int8 model run on another CPU (ARM NEON or XNNPACK kernels
against x86 ones) may round an intermediate sum differently, which moves the output by
one or two steps; a wrong model, runtime or delegate moves it much further. The
converter also runs the goldens with LiteRT's built-in kernels (no XNNPACK, as on a
device where XNNPACK fails to start) and widens the tolerance to cover the difference
it sees there, so a correct device never refuses to screen.
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


#: Margin added to the measured kernel difference, in output quantization steps.
KERNEL_MARGIN_STEPS = 2


def tolerance(output_scale: float, kernel_difference: float = 0.0) -> float:
    """Return the self-test tolerance for an int8 output with quantization ``output_scale``.

    Args:
        output_scale: The output tensor's quantization scale (0 for a float output).
        kernel_difference: The largest golden probability difference measured between
            XNNPACK and LiteRT's built-in kernels at conversion time.
    """
    if output_scale <= 0.0:
        return max(FALLBACK_TOLERANCE, kernel_difference)
    steps = max(TOLERANCE_STEPS * output_scale,
                kernel_difference + KERNEL_MARGIN_STEPS * output_scale)
    return round(steps, 6)

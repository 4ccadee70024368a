"""What an accelerator target receives from the int8 conversion: :class:`ConversionContext`.

``cadr_convert.targets.run_target(name, context)`` builds one accelerator's files into
``context.bundle_dir`` after the CPU model passed the quality gate and before the
manifest is written, so every file it adds is hashed and signed with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GateLimits:
    """Quality-gate limits applied to the int8 model against the float model.

    Attributes:
        max_auc_drop: Largest allowed float ROC AUC minus int8 ROC AUC.
        min_agreement: Smallest allowed fraction of validation images on which the float
            and int8 decisions at the chosen threshold agree.
        min_output_spread: Smallest allowed difference between the largest and smallest
            int8 probability on the validation set; below it the output counts as constant.
    """

    max_auc_drop: float = 0.02
    min_agreement: float = 0.95
    min_output_spread: float = 0.02


@dataclass(frozen=True)
class ConversionContext:
    """Everything an accelerator target needs to build and check its own model.

    Attributes:
        float_model: The wrapped Keras model; its input is float RGB pixels 0..255 of shape
            (1, height, width, 3) and its normalisation is folded in.
        source_model: Path of the model file or SavedModel directory given to the converter.
        cpu_model: Path of the int8 ``.tflite`` already written in ``bundle_dir``.
        calibration_inputs: Calibration model inputs, uint8 NHWC.
        validation_inputs: Validation model inputs, uint8 NHWC.
        validation_labels: 1 for the positive label, 0 for the negative, one per input.
        float_probabilities: Positive-class probabilities of the float model on validation.
        int8_probabilities: Positive-class probabilities of the int8 CPU model on validation.
        threshold: The operating point chosen on ``int8_probabilities``.
        gate: The quality-gate limits the CPU model passed.
        bundle_dir: The staging bundle directory; a target writes its files here.
        normalisation: Name of the normalisation folded into the graph.
        input_size: Model input (width, height) in pixels.
        seed: The seed used for calibration sampling.
        target_sensitivity: The sensitivity ``threshold`` was chosen to reach; None when
            unknown, and a target then aims at the int8 model's sensitivity at ``threshold``.
    """

    float_model: Any
    source_model: Path
    cpu_model: Path
    calibration_inputs: np.ndarray
    validation_inputs: np.ndarray
    validation_labels: np.ndarray
    float_probabilities: np.ndarray
    int8_probabilities: np.ndarray
    threshold: float
    gate: GateLimits
    bundle_dir: Path
    normalisation: str
    input_size: tuple[int, int]
    seed: int
    target_sensitivity: float | None = None

"""Comparing the int8 model with the float model on the validation set, and the quality gate.

This is a sanity check of the conversion, not a clinical validation: it shows that the
int8 model ranks and decides like the float model on the images given. How well the
float model itself screens patients is the training study's question.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cadr_convert.context import GateLimits
from cadr_convert.metrics import (
    OperatingPoint,
    operating_point,
    roc_auc,
    threshold_for_sensitivity,
)


@dataclass(frozen=True)
class Validation:
    """Float-versus-int8 results on the validation set.

    Attributes:
        float_auc: ROC AUC of the float model.
        int8_auc: ROC AUC of the int8 model.
        threshold: Operating point chosen on the int8 probabilities.
        target_sensitivity: The sensitivity the threshold was chosen to reach.
        int8_point: The int8 model's rates at ``threshold``.
        float_point: The float model's rates at the same threshold.
        agreement: Fraction of images on which both models decide alike at ``threshold``.
        mean_abs_difference: Mean absolute float-minus-int8 probability difference.
        max_abs_difference: Largest absolute float-minus-int8 probability difference.
        int8_spread: Largest minus smallest int8 probability.
        float_spread: Largest minus smallest float probability.
    """

    float_auc: float
    int8_auc: float
    threshold: float
    target_sensitivity: float
    int8_point: OperatingPoint
    float_point: OperatingPoint
    agreement: float
    mean_abs_difference: float
    max_abs_difference: float
    int8_spread: float
    float_spread: float

    @property
    def auc_drop(self) -> float:
        """Float ROC AUC minus int8 ROC AUC; positive when quantization lost ranking."""
        return self.float_auc - self.int8_auc

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping, including ``auc_drop``."""
        return {**asdict(self), "auc_drop": self.auc_drop}


@dataclass(frozen=True)
class GateFailure:
    """The first gate check that failed: which metric, its value and the limit."""

    metric: str
    value: float
    limit: float
    option: str

    def message(self) -> str:
        """Return the one-line explanation printed on failure."""
        return (f"quality gate failed: {self.metric} is {self.value:.4f}, limit {self.limit:.4f} "
                f"({self.option})")


def compare(labels: np.ndarray, float_probabilities: np.ndarray,
            int8_probabilities: np.ndarray, target_sensitivity: float) -> Validation:
    """Compute every float-versus-int8 metric, choosing the threshold on the int8 model."""
    threshold = threshold_for_sensitivity(labels, int8_probabilities, target_sensitivity)
    difference = np.abs(float_probabilities - int8_probabilities)
    agreement = float(np.mean((float_probabilities >= threshold)
                              == (int8_probabilities >= threshold)))
    return Validation(
        float_auc=roc_auc(labels, float_probabilities),
        int8_auc=roc_auc(labels, int8_probabilities),
        threshold=threshold,
        target_sensitivity=target_sensitivity,
        int8_point=operating_point(labels, int8_probabilities, threshold),
        float_point=operating_point(labels, float_probabilities, threshold),
        agreement=agreement,
        mean_abs_difference=float(difference.mean()),
        max_abs_difference=float(difference.max()),
        int8_spread=float(np.ptp(int8_probabilities)),
        float_spread=float(np.ptp(float_probabilities)),
    )


def check_gate(validation: Validation, limits: GateLimits) -> GateFailure | None:
    """Return the first failed check (constant output, AUC drop, agreement), or None."""
    if validation.int8_spread < limits.min_output_spread:
        return GateFailure("int8 output spread (max - min probability; constant output)",
                           validation.int8_spread, limits.min_output_spread,
                           "--min-output-spread")
    if validation.auc_drop > limits.max_auc_drop:
        return GateFailure("ROC AUC drop (float - int8)", validation.auc_drop,
                           limits.max_auc_drop, "--max-auc-drop")
    if validation.agreement < limits.min_agreement:
        return GateFailure("float/int8 decision agreement", validation.agreement,
                           limits.min_agreement, "--min-agreement")
    return None

"""Fidelity of an accelerator model against the float model, on the converter's validation set.

The figures match the CPU int8 quality gate (ROC AUC drop, decision agreement, constant
output). Decisions are taken at the bundle's threshold, which was chosen on the int8
TFLite model, so both quantized models are judged at the same operating point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cadr_convert.context import GateLimits
from cadr_convert.metrics import operating_point, roc_auc


@dataclass(frozen=True)
class Fidelity:
    """One quantized model compared with the float model at the bundle's threshold.

    Attributes:
        auc: ROC AUC of the quantized model.
        float_auc: ROC AUC of the float model.
        agreement: Fraction of inputs on which float and quantized decide alike.
        mean_abs_difference: Mean absolute float-minus-quantized probability difference.
        max_abs_difference: Largest absolute float-minus-quantized probability difference.
        spread: Largest minus smallest quantized probability.
        sensitivity: Sensitivity of the quantized model at the threshold.
        specificity: Specificity of the quantized model at the threshold.
    """

    auc: float
    float_auc: float
    agreement: float
    mean_abs_difference: float
    max_abs_difference: float
    spread: float
    sensitivity: float
    specificity: float

    @property
    def auc_drop(self) -> float:
        """Float ROC AUC minus quantized ROC AUC."""
        return self.float_auc - self.auc

    def as_dict(self) -> dict[str, float]:
        """Return plain floats, rounded to 6 digits, including ``auc_drop``."""
        values = {**asdict(self), "auc_drop": self.auc_drop}
        return {key: round(float(value), 6) for key, value in values.items()}


def measure(labels: np.ndarray, float_probabilities: np.ndarray,
            probabilities: np.ndarray, threshold: float) -> Fidelity:
    """Compare ``probabilities`` with the float model's at ``threshold``."""
    difference = np.abs(float_probabilities - probabilities)
    same_decision = (float_probabilities >= threshold) == (probabilities >= threshold)
    point = operating_point(labels, probabilities, threshold)
    return Fidelity(
        auc=roc_auc(labels, probabilities),
        float_auc=roc_auc(labels, float_probabilities),
        agreement=float(np.mean(same_decision)),
        mean_abs_difference=float(difference.mean()),
        max_abs_difference=float(difference.max()),
        spread=float(np.ptp(probabilities)),
        sensitivity=point.sensitivity,
        specificity=point.specificity,
    )


def gate_failure(fidelity: Fidelity, limits: GateLimits) -> str | None:
    """Return why ``fidelity`` fails the CPU model's gate limits, or None when it passes."""
    if fidelity.spread < limits.min_output_spread:
        return (f"output spread {fidelity.spread:.4f} is below {limits.min_output_spread:.4f} "
                "(constant output)")
    if fidelity.auc_drop > limits.max_auc_drop:
        return f"ROC AUC drop {fidelity.auc_drop:.4f} is above {limits.max_auc_drop:.4f}"
    if fidelity.agreement < limits.min_agreement:
        return f"decision agreement {fidelity.agreement:.4f} is below {limits.min_agreement:.4f}"
    return None


def side_by_side(rows: dict[str, Fidelity]) -> dict[str, Any]:
    """Return ``{name: figures}`` for the report, one entry per model."""
    return {name: fidelity.as_dict() for name, fidelity in rows.items()}

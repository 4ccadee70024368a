"""Binary classification metrics for the validation report, in plain numpy.

Labels are 1 for the positive (severe) class and 0 for the negative; scores are
positive-class probabilities. Every function takes 1-D arrays of equal length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OperatingPoint:
    """Confusion-matrix rates at one threshold; a rate with an empty denominator is NaN."""

    threshold: float
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the ROC AUC by the rank-sum (Mann-Whitney U) formula, ties counted as half.

    Tied scores get the average of their ranks, which equals counting each tied
    positive-negative pair as half a correct ordering.

    Raises:
        ValueError: If either class is absent.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("ROC AUC needs at least one positive and one negative example")

    ranks = _average_ranks(scores)
    rank_sum = float(ranks[labels].sum())
    u_statistic = rank_sum - positives * (positives + 1) / 2.0
    return u_statistic / (positives * negatives)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Return 1-based ranks, with tied values sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(values.size, dtype=np.float64)

    # Each run of equal values spans positions [start, end) of the sorted order.
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [values.size]))
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + 1 + end) / 2.0
    return ranks


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (false positive rate, true positive rate) at every distinct threshold, from (0, 0)."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    thresholds = np.unique(scores)[::-1]
    positives = max(int(labels.sum()), 1)
    negatives = max(int((~labels).sum()), 1)
    tpr = [0.0] + [float((labels & (scores >= t)).sum()) / positives for t in thresholds]
    fpr = [0.0] + [float((~labels & (scores >= t)).sum()) / negatives for t in thresholds]
    return np.asarray(fpr), np.asarray(tpr)


def operating_point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> OperatingPoint:
    """Count decisions ``score >= threshold`` against ``labels`` and derive the four rates."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(scores) >= threshold
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    tn = int((~predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())
    return OperatingPoint(
        threshold=float(threshold),
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        ppv=_ratio(tp, tp + fp),
        npv=_ratio(tn, tn + fn),
        true_positives=tp, false_positives=fp, true_negatives=tn, false_negatives=fn,
    )


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


def threshold_for_sensitivity(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    """Return the highest threshold at which ``score >= threshold`` reaches ``target`` sensitivity.

    The threshold is the k-th highest positive score with k = ceil(target x positives),
    so at least k positives score at or above it; ties only add more positives.

    Raises:
        ValueError: If there is no positive example or ``target`` is outside (0, 1].
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    labels = np.asarray(labels).astype(bool)
    positive_scores = np.sort(np.asarray(scores, dtype=np.float64)[labels])[::-1]
    if positive_scores.size == 0:
        raise ValueError("choosing a threshold needs at least one positive example")
    needed = math.ceil(target * positive_scores.size - 1e-9)
    return float(positive_scores[needed - 1])

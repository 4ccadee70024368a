"""Live mode: classify the lores stream at a bounded rate and smooth the probability.

A live reading is a preview for framing the lesion, never a result: it is not recorded,
and the viewfinder labels it as an estimate. A capture records a still as usual.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cadr_device.classifier import Prediction
from cadr_device.preprocess import PreprocessRule, model_input_from_array

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveReading:
    """The smoothed live probability.

    Attributes:
        probability: Mean of the last ``samples`` probabilities.
        latest: The most recent single probability.
        samples: How many probabilities the mean covers.
        inference_ms: Invoke time of the latest inference.
        positive: Whether the smoothed probability is at or above the threshold.
    """

    probability: float
    latest: float
    samples: int
    inference_ms: float
    positive: bool


class LiveScreening:
    """Rate-limited, smoothed classification of lores frames.

    Args:
        classify: The classifier's ``classify`` (model input → Prediction).
        rule: The bundle's preprocessing rule; the lores frame is cropped like a still.
        threshold: The bundle's decision threshold.
        max_rate_hz: Largest number of inferences per second.
        window: Number of recent probabilities averaged.
        clock: Monotonic clock in seconds (tests pass their own).
    """

    def __init__(self, classify: Callable[[np.ndarray], Prediction], rule: PreprocessRule, *,
                 threshold: float, max_rate_hz: float, window: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_rate_hz <= 0 or window < 1:
            raise ValueError(f"max_rate_hz must be positive and window at least 1, got "
                             f"{max_rate_hz} and {window}")
        self.classify = classify
        self.rule = rule
        self.threshold = threshold
        self.min_interval_s = 1.0 / max_rate_hz
        self.clock = clock
        self._recent: deque[float] = deque(maxlen=window)
        self._last_run: float | None = None
        self.reading: LiveReading | None = None

    def due(self) -> bool:
        """Return whether enough time has passed since the last inference."""
        return self._last_run is None or self.clock() - self._last_run >= self.min_interval_s

    def update(self, lores_rgb: np.ndarray) -> LiveReading | None:
        """Classify ``lores_rgb`` when due and return the new reading, else None.

        Raises:
            RuntimeError, ValueError: As the classifier raises them; the caller shows them.
        """
        if not self.due():
            return None
        self._last_run = self.clock()
        prediction = self.classify(model_input_from_array(lores_rgb, self.rule))
        self._recent.append(prediction.probability)
        mean = float(np.mean(self._recent))
        self.reading = LiveReading(mean, prediction.probability, len(self._recent),
                                   prediction.inference_ms, mean >= self.threshold)
        return self.reading

    def reset(self) -> None:
        """Forget the window, for example after a capture froze the view."""
        self._recent.clear()
        self.reading = None

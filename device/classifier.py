"""Int8 inference on one model input and the screening decision.

:class:`Classifier` wraps an interpreter built once by :mod:`cadr_device.runtime`. It
feeds the raw uint8 RGB input (the model folds its own normalisation), dequantizes the
output with the tensor's scale and zero point, and applies the bundle's threshold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cadr_device.bundle import Bundle
from cadr_device.errors import BundleError
from cadr_device.runtime import RuntimeInfo, build_interpreter, load_runtime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """One classification: the positive-class probability and the decision at the threshold."""

    probability: float
    threshold: float
    positive: bool
    label: str
    inference_ms: float
    backend: str | None = None
    """The back-end that computed ``probability`` (``CPU``, ``Edge TPU``, ``IMX500``), or
    None for the classifier's own; an accelerator's classifier sets it when the CPU model
    stood in for one input."""


class Classifier:
    """A bundle's model, ready to classify model inputs of shape (height, width, 3) uint8."""

    def __init__(self, bundle: Bundle, num_threads: int = 2, delegates: list[Any] | None = None,
                 runtime: RuntimeInfo | None = None, model_file: str | None = None) -> None:
        self.bundle = bundle
        self.runtime = runtime or load_runtime()
        model_path = bundle.file(model_file) if model_file else bundle.model_path
        self.interpreter = build_interpreter(model_path, num_threads, delegates, self.runtime)
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._check_contract()

    def _check_contract(self) -> None:
        rule = self.bundle.manifest.preprocess
        expected = (1, rule.height, rule.width, 3)
        shape = tuple(int(v) for v in self._input["shape"])
        if shape != expected:
            raise BundleError(self.bundle.model_path, f"input shape is {shape}, but the "
                              f"manifest expects {expected}; rebuild the bundle")
        if self._input["dtype"] != np.uint8:
            raise BundleError(self.bundle.model_path, f"input dtype is {self._input['dtype']}, "
                              "expected uint8 raw pixels; convert again with cadr-convert --int8")
        scale, zero_point = self._input["quantization"]
        if (scale, zero_point) != (1.0, 0):
            raise BundleError(self.bundle.model_path, f"input quantization is scale {scale}, zero "
                              f"point {zero_point}; the device feeds raw pixels (1.0, 0)")

    def probability(self, model_input: np.ndarray) -> tuple[float, float]:
        """Return the positive-class probability and the invoke time in milliseconds."""
        self.interpreter.set_tensor(self._input["index"], model_input[np.newaxis, ...])
        start = time.perf_counter()
        self.interpreter.invoke()
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        raw = self.interpreter.get_tensor(self._output["index"])[0]
        return self._dequantize(raw), elapsed_ms

    def _dequantize(self, raw: np.ndarray) -> float:
        scale, zero_point = self._output["quantization"]
        values = raw.astype(np.float64)
        if scale:
            values = (values - zero_point) * scale
        spec = self.bundle.manifest.model
        index = 0 if spec.output_kind == "sigmoid" else spec.positive_index
        return float(np.clip(values.reshape(-1)[index], 0.0, 1.0))

    def classify(self, model_input: np.ndarray,
                 metadata: Mapping[str, Any] | None = None) -> Prediction:
        """Classify one model input and apply the bundle's operating point.

        ``metadata`` (a camera frame's request metadata) is accepted so that every
        back-end has the same call; the interpreter reads only the pixels.
        """
        probability, elapsed_ms = self.probability(model_input)
        manifest = self.bundle.manifest
        positive = probability >= manifest.decision.threshold
        label = manifest.positive_label if positive else manifest.negative_label
        return Prediction(probability, manifest.decision.threshold, positive, label, elapsed_ms)

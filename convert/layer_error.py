"""Per-layer quantization error: where in the graph the int8 model departs from float.

Both the float32 TFLite model and the int8 model are run with
``experimental_preserve_all_tensors=True`` on the same inputs. The converter keeps a
tensor's name when it quantizes it, so a float tensor and an int8 tensor with the same
name and shape are the same activation; the int8 one is dequantized with its own scale
and zero point. Tensors that exist only in one model (quantize ops, constants) are
skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cadr_convert.quantize import make_interpreter

#: Most layers listed in the report.
WORST_LAYER_COUNT = 8

#: Most validation images run through both models for the comparison.
MAX_LAYER_ERROR_IMAGES = 16


@dataclass(frozen=True)
class LayerError:
    """Quantization error of one activation tensor.

    Attributes:
        name: The TFLite tensor name (the first of its fused op names).
        relative_rmse: RMSE of int8 minus float, divided by the float tensor's standard
            deviation; 1.0 means the error is as large as the signal.
        max_abs_error: Largest absolute difference.
        scale: The int8 tensor's quantization scale (one step).
    """

    name: str
    relative_rmse: float
    max_abs_error: float
    scale: float


def worst_layers(float_flatbuffer: bytes, int8_flatbuffer: bytes, inputs: np.ndarray,
                 count: int = WORST_LAYER_COUNT) -> list[LayerError]:
    """Return the ``count`` activations with the largest relative RMSE, worst first."""
    float_interpreter = make_interpreter(float_flatbuffer, preserve_all_tensors=True)
    int8_interpreter = make_interpreter(int8_flatbuffer, preserve_all_tensors=True)
    pairs = _matching_tensors(float_interpreter, int8_interpreter)

    float_values: dict[str, list[np.ndarray]] = {name: [] for name in pairs}
    int8_values: dict[str, list[np.ndarray]] = {name: [] for name in pairs}
    for pixels in inputs[:MAX_LAYER_ERROR_IMAGES]:
        _invoke(float_interpreter, pixels.astype(np.float32))
        _invoke(int8_interpreter, pixels)
        for name, (float_index, int8_detail) in pairs.items():
            float_values[name].append(float_interpreter.get_tensor(float_index).astype(np.float64))
            scale, zero_point = int8_detail["quantization"]
            raw = int8_interpreter.get_tensor(int8_detail["index"]).astype(np.float64)
            int8_values[name].append((raw - zero_point) * scale)

    errors = []
    for name, (_, int8_detail) in pairs.items():
        reference = np.concatenate([v.reshape(-1) for v in float_values[name]])
        quantized = np.concatenate([v.reshape(-1) for v in int8_values[name]])
        difference = quantized - reference
        spread = float(reference.std()) or 1.0
        errors.append(LayerError(
            name=name.split(";")[0],
            relative_rmse=float(np.sqrt(np.mean(difference**2))) / spread,
            max_abs_error=float(np.abs(difference).max()),
            scale=float(int8_detail["quantization"][0]),
        ))
    errors.sort(key=lambda e: e.relative_rmse, reverse=True)
    return errors[:count]


def _invoke(interpreter: Any, pixels: np.ndarray) -> None:
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], pixels[np.newaxis, ...])
    interpreter.invoke()


def _matching_tensors(float_interpreter: Any,
                      int8_interpreter: Any) -> dict[str, tuple[int, dict[str, Any]]]:
    """Map tensor name to (float tensor index, int8 tensor details) for activations in both."""
    float_details = {
        d["name"]: d for d in float_interpreter.get_tensor_details()
        if d["dtype"] == np.float32
    }
    pairs = {}
    for detail in int8_interpreter.get_tensor_details():
        scale = detail["quantization"][0]
        match = float_details.get(detail["name"])
        if (detail["dtype"] in (np.int8, np.uint8) and scale and match is not None
                and tuple(match["shape"]) == tuple(detail["shape"])):
            pairs[detail["name"]] = (int(match["index"]), detail)
    return pairs

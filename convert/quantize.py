"""Full-integer int8 conversion with a uint8 raw-pixel input, and running both models.

The representative dataset is the calibration model inputs as float pixels 0..255. The
converter sets the input tensor's quantization from the min and max recorded there, and
identity quantization (scale 1.0, zero point 0) needs that range to be exactly [0, 255].
Real photographs rarely contain both a 0 and a 255 in every channel, so the first
calibration sample carries a range anchor: one pixel set to 0 and one to 255. Two pixels
of one image barely move any later layer's range. The result is checked after
conversion either way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from cadr_convert.conversion_errors import ConversionError
from cadr_convert.progress import Progress
from cadr_device.runtime import load_runtime

logger = logging.getLogger(__name__)

#: Pixel values the range anchor writes, so the input calibration range is [0, 255].
ANCHOR_LOW = 0
ANCHOR_HIGH = 255


def anchored_samples(calibration: np.ndarray) -> Iterator[list[np.ndarray]]:
    """Yield representative samples (1, H, W, 3) float32; the first carries the range anchor."""
    for i, pixels in enumerate(calibration):
        sample = pixels.astype(np.float32)
        if i == 0:
            sample[0, 0, :] = ANCHOR_LOW
            sample[0, min(1, sample.shape[1] - 1), :] = ANCHOR_HIGH
        yield [sample[np.newaxis, ...]]


def quantize_model(float_model: Any, calibration: np.ndarray) -> bytes:
    """Convert the wrapped float model into a full-integer int8 TFLite flatbuffer.

    Raises:
        ConversionError: If the TFLite converter fails or the input quantization is
            not the identity.
    """
    import tensorflow as tf  # noqa: PLC0415 - TensorFlow loads only when converting

    converter = tf.lite.TFLiteConverter.from_keras_model(float_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: anchored_samples(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    try:
        flatbuffer = bytes(converter.convert())
    except Exception as e:  # the converter raises many internal types; report any of them
        raise ConversionError(f"TFLite int8 conversion failed: {e}") from e

    check_input_identity(flatbuffer)
    return flatbuffer


def convert_float(float_model: Any) -> bytes:
    """Convert the wrapped float model to a float32 TFLite flatbuffer, for per-layer comparison."""
    import tensorflow as tf  # noqa: PLC0415

    converter = tf.lite.TFLiteConverter.from_keras_model(float_model)
    return bytes(converter.convert())


def check_input_identity(flatbuffer: bytes) -> None:
    """Raise ConversionError unless the model's input is uint8 with scale 1.0 and zero point 0."""
    interpreter = make_interpreter(flatbuffer)
    details = interpreter.get_input_details()[0]
    scale, zero_point = details["quantization"]
    if details["dtype"] != np.uint8 or scale != 1.0 or zero_point != 0:
        raise ConversionError(
            f"converted input is {np.dtype(details['dtype']).name} with scale {scale} and zero "
            f"point {zero_point}, not uint8 with scale 1.0 and zero point 0; the device feeds "
            "raw pixels, so this model cannot be bundled"
        )


def make_interpreter(flatbuffer: bytes, preserve_all_tensors: bool = False,
                     default_delegates: bool = True) -> Any:
    """Build and allocate a LiteRT interpreter from flatbuffer bytes.

    With ``default_delegates`` False the interpreter runs LiteRT's built-in kernels without
    XNNPACK, as a device does when XNNPACK cannot start.
    """
    runtime = load_runtime()
    options: dict[str, Any] = {}
    if not default_delegates:
        options["experimental_op_resolver_type"] = (
            runtime.module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter = runtime.module.Interpreter(
        model_content=flatbuffer, num_threads=2,
        experimental_preserve_all_tensors=preserve_all_tensors, **options,
    )
    interpreter.allocate_tensors()
    return interpreter


def positive_probability(outputs: np.ndarray, output_kind: str, positive_index: int) -> np.ndarray:
    """Select the positive-class probability from (N, 1) sigmoid or (N, 2) softmax outputs."""
    column = 0 if output_kind == "sigmoid" else positive_index
    return np.clip(outputs.reshape(outputs.shape[0], -1)[:, column].astype(np.float64), 0.0, 1.0)


def float_outputs(float_model: Any, inputs: np.ndarray, label: str) -> np.ndarray:
    """Run the wrapped float model on uint8 inputs, one image per call (the model has batch 1)."""
    import tensorflow as tf  # noqa: PLC0415

    # A traced graph runs a batch-1 call about 20 times faster than eager Keras
    # (MobileNetV2 at 96 px on a 2-core x86 machine).
    predict = tf.function(lambda batch: float_model(batch, training=False))
    progress = Progress(label, len(inputs))
    outputs = []
    for pixels in inputs:
        result = predict(pixels[np.newaxis, ...].astype(np.float32))
        if isinstance(result, dict):
            result = next(iter(result.values()))
        outputs.append(np.asarray(result, dtype=np.float64).reshape(-1))
        progress.advance()
    return np.stack(outputs)


def int8_outputs(flatbuffer: bytes, inputs: np.ndarray, label: str,
                 default_delegates: bool = True) -> tuple[np.ndarray, float]:
    """Run the int8 model on uint8 inputs and return dequantized outputs and the output scale."""
    interpreter = make_interpreter(flatbuffer, default_delegates=default_delegates)
    input_index = interpreter.get_input_details()[0]["index"]
    output = interpreter.get_output_details()[0]
    scale, zero_point = output["quantization"]

    progress = Progress(label, len(inputs))
    outputs = []
    for pixels in inputs:
        interpreter.set_tensor(input_index, pixels[np.newaxis, ...])
        interpreter.invoke()
        raw = interpreter.get_tensor(output["index"]).astype(np.float64).reshape(-1)
        outputs.append((raw - zero_point) * scale if scale else raw)
        progress.advance()
    return np.stack(outputs), float(scale)

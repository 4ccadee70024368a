"""A small signed demonstration bundle for the device tests, made with real TensorFlow.

The model is a 32x32 convolutional classifier with fixed random weights, converted to a
full-integer int8 TFLite model whose input is raw uint8 pixels (scale 1.0, zero point
0), as the bundle contract requires. The manifest is written with
``cadr_convert.bundle_writer`` and signed with the published demonstration key, so the
device verifies it with the keys it ships. The golden probabilities are measured with
LiteRT, the runtime the device uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cadr_convert.bundle_writer import write_manifest
from cadr_convert.signing import load_private_key, sign_bundle

REPO = Path(__file__).resolve().parent.parent
DEMO_KEY = REPO / "models" / "keys" / "cadr-demo-signing-key.pem"

INPUT_SIZE = 32
THRESHOLD = 0.37
TARGET_SENSITIVITY = 0.9
SEED = 7


def build_bundle(directory: Path, demonstration_only: bool = True) -> Path:
    """Write a signed bundle into ``directory`` (created) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.tflite").write_bytes(_int8_model())

    rng = np.random.default_rng(SEED)
    (directory / "selftest").mkdir()
    cases = []
    for number in range(3):
        pixels = rng.integers(0, 256, (INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
        name = f"selftest/golden_{number:02d}.png"
        Image.fromarray(pixels).save(directory / name)
        cases.append({"file": name, "probability": _litert_probability(directory, pixels)})

    write_manifest(directory, _manifest_fields(cases, demonstration_only))
    sign_bundle(directory, load_private_key(DEMO_KEY))
    return directory


def _int8_model() -> bytes:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    inputs = tf.keras.Input((INPUT_SIZE, INPUT_SIZE, 3))
    x = tf.keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = tf.keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    # Flatten keeps where features are, so a rotated image gets another probability
    # (the EXIF tests rely on that to be able to fail).
    x = tf.keras.layers.Flatten()(x)
    outputs = tf.keras.layers.Dense(
        1, activation="sigmoid",
        kernel_initializer=tf.keras.initializers.RandomNormal(stddev=0.3))(x)
    model = tf.keras.Model(inputs, outputs)

    rng = np.random.default_rng(SEED)

    def representative() -> Any:
        for _ in range(32):
            sample = rng.integers(0, 256, (1, INPUT_SIZE, INPUT_SIZE, 3)).astype(np.float32)
            # Pixels 0 and 255 in every sample pin the input range, so the uint8 input
            # quantization comes out as scale 1.0, zero point 0.
            sample[0, 0, 0, 0] = 0.0
            sample[0, 0, 1, 0] = 255.0
            yield [sample]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    return bytes(converter.convert())


def _litert_probability(directory: Path, pixels: np.ndarray) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(directory / "model.tflite"))
    interpreter.allocate_tensors()
    detail_in = interpreter.get_input_details()[0]
    detail_out = interpreter.get_output_details()[0]
    interpreter.set_tensor(detail_in["index"], pixels[np.newaxis])
    interpreter.invoke()
    raw = float(interpreter.get_tensor(detail_out["index"]).reshape(-1)[0])
    scale, zero_point = detail_out["quantization"]
    return (raw - zero_point) * scale


def _manifest_fields(cases: list[dict[str, Any]], demonstration_only: bool) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "name": "cadr-test",
        "version": "0.0.1",
        "created": "2026-12-04T00:00:00Z",
        "demonstration_only": demonstration_only,
        "intended_use": "Test bundle with random weights; its outputs mean nothing.",
        "labels": ["non_severe", "severe"],
        "positive_label": "severe",
        "min_app_version": "0.1.0",
        "model": {
            "file": "model.tflite",
            "input": {"width": INPUT_SIZE, "height": INPUT_SIZE, "color_order": "RGB",
                      "dtype": "uint8", "scale": 1.0, "zero_point": 0,
                      "normalisation": "divide by 255"},
            "output": {"kind": "sigmoid", "positive_index": 1},
        },
        "preprocess": {"crop": "center_square", "crop_fraction": 0.8, "resample": "bilinear"},
        "decision": {"threshold": THRESHOLD, "target_sensitivity": TARGET_SENSITIVITY,
                     "sensitivity": 0.9, "specificity": 0.5, "validation_images": 10},
        "toolchain": {"converter": "tests/device_bundle.py"},
        "provenance": {"source": "random weights"},
        "selftest": {"cases": cases, "tolerance": 0.02},
    }

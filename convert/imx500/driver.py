"""IMX500 quantization driver, run by ``python driver.py`` inside the IMX500 toolchain venv.

This file is a standalone script: it imports only the toolchain's TensorFlow 2.15 (Keras 2),
numpy and model-compression-toolkit (MCT), never ``cadr_convert``, because the toolchain
venv cannot hold the converter's TensorFlow 2.21. The converter writes its inputs to a work
folder, runs this script as a subprocess and reads the outputs back:

Inputs (written by ``cadr_convert.imx500.graph_export``):
    graph.json        The wrapped float model's Keras 3 ``get_config()``.
    weights.npz       Its weights by layer name, keys ``LAYER/INDEX``.
    calibration.npy   Calibration inputs, uint8 NHWC.
    validation.npy    Validation inputs, uint8 NHWC.

Outputs:
    float_outputs.npy       Raw outputs of the rebuilt float model on validation.
    quantized_outputs.npy   Raw outputs of the MCT-quantized model on validation.
    quantized.keras         The MCT-quantized model in MCT's export format, for imxconv-tf.
    driver.json             Versions, settings, the config keys dropped while rebuilding.

Keras 2 cannot read a Keras 3 model file, so the driver rebuilds the graph layer by layer
from the config (flattening nested models) and loads the weights by layer name. The
converter checks that the rebuilt float model reproduces the original's outputs.

Exit codes: 0 done, 2 the model cannot be rebuilt or quantized for the IMX500 (message on
stderr), 1 any other failure (traceback on stderr).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

EXIT_MODEL = 2

#: Keras layer classes the rebuild supports; the IMX500 converter may still reject some.
SUPPORTED_LAYERS = frozenset({
    "Activation", "Add", "AveragePooling2D", "BatchNormalization", "Concatenate", "Conv2D",
    "Dense", "DepthwiseConv2D", "Dropout", "Flatten", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "InputLayer", "MaxPooling2D", "Multiply", "Normalization", "ReLU",
    "Rescaling", "Reshape", "SeparableConv2D", "Softmax", "Subtract", "ZeroPadding2D",
    "LeakyReLU", "PReLU", "UpSampling2D", "Identity",
})

#: Preprocessing layers rebuilt as an equivalent 1x1 depthwise convolution.
AFFINE_LAYERS = frozenset({"Rescaling", "Normalization"})

#: Keras 3's floor for the standard deviation in ``Normalization`` (``keras.backend.epsilon()``).
NORMALIZATION_EPSILON = 1e-7

#: Config keys every Keras 2 layer accepts besides its constructor's own parameters.
BASE_LAYER_KEYS = frozenset({"name", "trainable", "dtype"})

#: Config key endings dropped on rebuild: training-only settings, irrelevant once the
#: weights are loaded.
TRAINING_ONLY_SUFFIXES = ("_initializer", "_regularizer", "_constraint")

#: Calibration batch size, in images.
CALIBRATION_BATCH = 8

#: Inference batch size for the validation outputs, in images.
INFERENCE_BATCH = 32


class ModelError(Exception):
    """The float model cannot be rebuilt or quantized for the IMX500."""


def main(argv: list[str] | None = None) -> int:
    """Run the rebuild, the float and quantized inference and the export."""
    parser = argparse.ArgumentParser(prog="cadr-imx500-driver", description=__doc__.split("\n")[0])
    parser.add_argument("work_dir", type=Path, help="folder with graph.json, weights.npz, "
                        "calibration.npy and validation.npy; outputs are written here")
    parser.add_argument("--tpc-version", default="v1",
                        help="MCT target platform capabilities version for imx500 (default: v1)")
    args = parser.parse_args(argv)

    try:
        run(args.work_dir, args.tpc_version)
    except ModelError as e:
        print(f"cadr-imx500-driver: error: {e}", file=sys.stderr)
        return EXIT_MODEL
    return 0


def run(work_dir: Path, tpc_version: str) -> None:
    """Rebuild, quantize, export and write every output into ``work_dir``."""
    import model_compression_toolkit as mct  # noqa: PLC0415 - only in the toolchain venv
    import tensorflow as tf  # noqa: PLC0415

    started = time.monotonic()
    graph = json.loads((work_dir / "graph.json").read_text(encoding="utf-8"))
    weights = dict(np.load(work_dir / "weights.npz"))
    calibration = np.load(work_dir / "calibration.npy")
    validation = np.load(work_dir / "validation.npy")

    builder = GraphBuilder(tf)
    model = builder.build(graph)
    load_weights(model, weights, builder.preset_weights)
    float_outputs = model.predict(validation.astype(np.float32), batch_size=INFERENCE_BATCH,
                                  verbose=0)
    np.save(work_dir / "float_outputs.npy", np.asarray(float_outputs, dtype=np.float32))

    def representative_dataset() -> Any:
        for start in range(0, len(calibration), CALIBRATION_BATCH):
            yield [calibration[start:start + CALIBRATION_BATCH].astype(np.float32)]

    tpc = mct.get_target_platform_capabilities("tensorflow", "imx500",
                                               target_platform_version=tpc_version)
    try:
        quantized, _ = mct.ptq.keras_post_training_quantization(
            model, representative_dataset, target_platform_capabilities=tpc)
    except Exception as e:  # MCT raises plain exceptions for unsupported graphs
        raise ModelError(f"MCT post-training quantization failed: {type(e).__name__}: {e}") from e
    quantized_outputs = quantized.predict(validation.astype(np.float32),
                                          batch_size=INFERENCE_BATCH, verbose=0)
    np.save(work_dir / "quantized_outputs.npy", np.asarray(quantized_outputs, dtype=np.float32))
    mct.exporter.keras_export_model(model=quantized,
                                    save_model_path=str(work_dir / "quantized.keras"))

    summary = {
        "imx500_converter": _distribution_version("imx500-converter"),
        "tensorflow": tf.__version__,
        "model_compression_toolkit": mct.__version__,
        "numpy": np.__version__,
        "target_platform": "imx500",
        "target_platform_version": tpc_version,
        "calibration_images": int(len(calibration)),
        "calibration_batch": CALIBRATION_BATCH,
        "validation_images": int(len(validation)),
        "layers": len(model.layers),
        "dropped_config_keys": builder.dropped,
        "seconds": round(time.monotonic() - started, 1),
    }
    (work_dir / "driver.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


class GraphBuilder:
    """Rebuilds a Keras 3 functional config as one flat Keras 2 functional model."""

    def __init__(self, tf: Any) -> None:
        self.tf = tf
        self.layer_names: set[str] = set()
        self.dropped: dict[str, list[str]] = {}
        self.preset_weights: dict[str, list[np.ndarray]] = {}

    def build(self, graph: dict[str, Any]) -> Any:
        """Return the Keras 2 model; nested models become part of the flat graph."""
        layers = {entry["name"]: entry for entry in graph["layers"]}
        inputs = []
        for name, _, _ in _references(graph["input_layers"]):
            config = layers[name]["config"]
            shape = config.get("batch_shape") or config.get("batch_input_shape")
            dtype = _dtype_name(config.get("dtype", "float32"))
            # The batch is left open: MCT calibrates in batches and imxconv-tf expects it.
            inputs.append(self.tf.keras.Input(shape=tuple(shape[1:]), dtype=dtype, name=name))
        self.layer_names.update(name for name, _, _ in _references(graph["input_layers"]))
        outputs = self._apply_functional(graph, inputs)
        return self.tf.keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs,
                                   name=graph.get("name", "cadr_imx500"))

    def _apply_functional(self, graph: dict[str, Any], inputs: list[Any]) -> list[Any]:
        tensors: dict[tuple[str, int, int], Any] = {}
        for (name, node, index), tensor in zip(_references(graph["input_layers"]), inputs,
                                               strict=True):
            tensors[(name, node, index)] = tensor

        for entry in graph["layers"]:
            if entry["class_name"] == "InputLayer":
                continue
            callable_layer = self._make(entry)
            for node_index, node in enumerate(entry.get("inbound_nodes", [])):
                args = _resolve(node.get("args", []), tensors)
                kwargs = _resolve(node.get("kwargs", {}), tensors)
                result = callable_layer(*args, **kwargs)
                results = result if isinstance(result, list | tuple) else [result]
                for tensor_index, tensor in enumerate(results):
                    tensors[(entry["name"], node_index, tensor_index)] = tensor

        # Keras 3 counts a nested functional model's own node 0 in output_layers, but not in
        # the references inside inbound_nodes (keras/src/models/functional.py, 3.x).
        functional = {e["name"] for e in graph["layers"] if e["class_name"] == "Functional"}
        outputs = []
        for name, node, index in _references(graph["output_layers"]):
            own_node = node - 1 if name in functional else node
            outputs.append(_lookup(tensors, (name, own_node, index)))
        return outputs

    def _make(self, entry: dict[str, Any]) -> Any:
        class_name = entry["class_name"]
        config = entry["config"]
        if class_name in ("Functional", "Model"):
            return self._nested(entry, config)
        if class_name == "Sequential":
            return self._nested_sequential(entry, config)
        if class_name in AFFINE_LAYERS:
            return self._affine(entry)
        if class_name not in SUPPORTED_LAYERS:
            raise ModelError(
                f"layer {entry['name']!r} has class {class_name}, which the IMX500 rebuild does "
                f"not support; use layers from {sorted(SUPPORTED_LAYERS)}"
            )
        self._claim(entry["name"])
        layer_class = getattr(self.tf.keras.layers, class_name)
        return layer_class.from_config(self._sanitise(entry["name"], layer_class, config))

    def _affine(self, entry: dict[str, Any]) -> Any:
        """Return a call that applies a Rescaling or Normalization layer as a 1x1 depthwise conv.

        Sony's converter rejects both preprocessing layers, but a per-channel scale and
        offset is exactly a 1x1 depthwise convolution with bias, which the IMX500 runs.
        """
        name = entry["name"]
        self._claim(name)
        config = entry["config"]

        def call(tensor: Any, *_: Any, **__: Any) -> Any:
            channels = int(tensor.shape[-1])
            scale, offset = _affine_coefficients(entry["class_name"], config, channels)
            layer = self.tf.keras.layers.DepthwiseConv2D(1, use_bias=True, name=name)
            output = layer(tensor)
            self.preset_weights[name] = [scale.reshape(1, 1, channels, 1), offset]
            return output

        return call

    def _nested(self, entry: dict[str, Any], config: dict[str, Any]) -> Any:
        if len(entry.get("inbound_nodes", [])) > 1:
            raise ModelError(f"nested model {entry['name']!r} is called more than once; the IMX500 "
                             "rebuild flattens nested models and cannot share one")
        self.layer_names.update(name for name, _, _ in _references(config["input_layers"]))

        def call(*args: Any, **_: Any) -> Any:
            flat = _flatten(args)
            outputs = self._apply_functional(config, flat)
            return outputs[0] if len(outputs) == 1 else outputs

        return call

    def _nested_sequential(self, entry: dict[str, Any], config: dict[str, Any]) -> Any:
        if len(entry.get("inbound_nodes", [])) > 1:
            raise ModelError(f"nested model {entry['name']!r} is called more than once; the IMX500 "
                             "rebuild flattens nested models and cannot share one")
        layers = [self._make(layer) for layer in config["layers"]
                  if layer["class_name"] != "InputLayer"]

        def call(*args: Any, **_: Any) -> Any:
            (tensor,) = _flatten(args)
            for layer in layers:
                tensor = layer(tensor)
            return tensor

        return call

    def _claim(self, name: str) -> None:
        if name in self.layer_names:
            raise ModelError(f"layer name {name!r} occurs twice once nested models are flattened; "
                             "rename one of the layers")
        self.layer_names.add(name)

    def _sanitise(self, name: str, layer_class: Any, config: dict[str, Any]) -> dict[str, Any]:
        """Keep the config keys the Keras 2 layer accepts, with dtype policies as plain names."""
        parameters = inspect.signature(layer_class.__init__).parameters
        accepted = set(parameters) | BASE_LAYER_KEYS
        clean: dict[str, Any] = {}
        dropped = []
        for key, value in config.items():
            if key.endswith(TRAINING_ONLY_SUFFIXES):
                continue
            if key not in accepted:
                dropped.append(key)
                continue
            clean[key] = _dtype_name(value) if key == "dtype" else value
        if dropped:
            self.dropped[name] = sorted(dropped)
        return clean


def _affine_coefficients(class_name: str, config: dict[str, Any],
                         channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the per-channel (scale, offset) with ``output = input * scale + offset``."""
    if class_name == "Rescaling":
        scale = np.broadcast_to(np.asarray(config["scale"], dtype=np.float64), (channels,))
        offset = np.broadcast_to(np.asarray(config.get("offset", 0.0), dtype=np.float64),
                                 (channels,))
    else:
        if config.get("mean") is None or config.get("variance") is None or config.get("invert"):
            raise ModelError(f"layer {config.get('name')!r}: only a Normalization layer with fixed "
                             "mean and variance (not adapted, not inverted) can be rebuilt")
        mean = np.broadcast_to(np.asarray(config["mean"], dtype=np.float64), (channels,))
        variance = np.broadcast_to(np.asarray(config["variance"], dtype=np.float64), (channels,))
        deviation = np.maximum(np.sqrt(variance), NORMALIZATION_EPSILON)
        scale = 1.0 / deviation
        offset = -mean / deviation
    return scale.astype(np.float32), offset.astype(np.float32)


def load_weights(model: Any, weights: dict[str, np.ndarray],
                 preset: dict[str, list[np.ndarray]] | None = None) -> None:
    """Set each layer's weights from ``weights`` (keys ``LAYER/INDEX``), checking every shape.

    Args:
        model: The rebuilt Keras 2 model.
        weights: The source model's weights by key ``LAYER/INDEX``.
        preset: Weights computed by the rebuild itself (the depthwise convolutions that
            replace preprocessing layers), which take the place of the source's.
    """
    by_layer: dict[str, dict[int, np.ndarray]] = {}
    for key, array in weights.items():
        layer, _, index = key.rpartition("/")
        by_layer.setdefault(layer, {})[int(index)] = array
    for layer_name, arrays in (preset or {}).items():
        by_layer[layer_name] = dict(enumerate(arrays))

    names = {layer.name for layer in model.layers}
    missing = sorted(set(by_layer) - names)
    if missing:
        raise ModelError(f"weights of layers {missing} have no layer in the rebuilt model")

    for layer in model.layers:
        current = layer.get_weights()
        source = by_layer.get(layer.name, {})
        if len(source) != len(current):
            raise ModelError(f"layer {layer.name!r} has {len(current)} weight arrays after the "
                             f"rebuild but {len(source)} in the source model")
        if not current:
            continue
        arrays = [source[i] for i in range(len(current))]
        for i, (old, new) in enumerate(zip(current, arrays, strict=True)):
            if old.shape != new.shape:
                raise ModelError(f"layer {layer.name!r} weight {i} has shape {new.shape} in the "
                                 f"source model, {old.shape} after the rebuild")
        layer.set_weights(arrays)


def _resolve(value: Any, tensors: dict[tuple[str, int, int], Any]) -> Any:
    """Replace Keras 3 ``__keras_tensor__`` references by the rebuilt tensors."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            name, node, index = value["config"]["keras_history"]
            return _lookup(tensors, (name, node, index))
        return {k: _resolve(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, tensors) for v in value]
    return value


def _lookup(tensors: dict[tuple[str, int, int], Any], reference: tuple[str, int, int]) -> Any:
    if reference not in tensors:
        raise ModelError(f"the graph refers to output {reference} before it is computed; layers "
                         "shared at different depths are not supported by the IMX500 rebuild")
    return tensors[reference]


def _distribution_version(name: str) -> str:
    from importlib import metadata  # noqa: PLC0415

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _references(value: list[Any]) -> list[tuple[str, int, int]]:
    """Return a config's ``input_layers`` or ``output_layers`` as (layer, node, tensor) triples.

    Keras 3 writes a single reference as one flat triple and several as a list of triples.
    """
    if value and isinstance(value[0], str):
        value = [value]
    return [(str(name), int(node), int(index)) for name, node, index in value]


def _flatten(args: Any) -> list[Any]:
    flat: list[Any] = []
    for arg in args:
        if isinstance(arg, list | tuple):
            flat.extend(_flatten(arg))
        else:
            flat.append(arg)
    return flat


def _dtype_name(value: Any) -> Any:
    """Return a Keras 3 ``DTypePolicy`` config as its policy name; other values unchanged."""
    if isinstance(value, dict) and value.get("class_name") in ("DTypePolicy", "Policy"):
        return value["config"]["name"]
    return value


if __name__ == "__main__":
    sys.exit(main())

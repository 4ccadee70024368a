"""Writing the wrapped float model in a form the IMX500 toolchain's Keras 2 can rebuild.

Keras 2.15 (the toolchain's) reads neither a Keras 3 ``.keras`` file nor a Keras 3 ``.h5``
file: the class paths, the input layer and the dtype policies changed. The converter
therefore writes the model's ``get_config()`` as JSON and its weights by layer name, and
``driver.py`` rebuilds the graph with Keras 2 layers of the same classes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cadr_convert.conversion_errors import ConversionError

GRAPH_FILE = "graph.json"
WEIGHTS_FILE = "weights.npz"

#: Keras classes of models that the driver flattens into the outer graph.
_NESTED_MODEL_CLASSES = ("Functional", "Sequential", "Model")


def export_float_model(model: Any, work_dir: Path) -> tuple[Path, Path]:
    """Write ``graph.json`` and ``weights.npz`` for the driver into ``work_dir``.

    Raises:
        ConversionError: If the model is not a Keras functional model made of built-in
            layers (for example a SavedModel wrapped in ``TFSMLayer``, or a ``Lambda``).
    """
    config = model.get_config()
    _check_layers(config)
    graph_path = work_dir / GRAPH_FILE
    graph_path.write_text(json.dumps(config, default=_json_default), encoding="utf-8")

    arrays: dict[str, np.ndarray] = {}
    for layer in _flat_layers(model):
        for index, array in enumerate(layer.get_weights()):
            arrays[f"{layer.name}/{index}"] = np.asarray(array)
    weights_path = work_dir / WEIGHTS_FILE
    np.savez(weights_path, **arrays)  # type: ignore[arg-type]
    return graph_path, weights_path


def _check_layers(config: dict[str, Any]) -> None:
    for entry in config.get("layers", []):
        class_name = entry.get("class_name")
        if class_name in _NESTED_MODEL_CLASSES:
            _check_layers(entry.get("config", {}))
            continue
        if class_name == "TFSMLayer":
            raise ConversionError(
                "the IMX500 target needs a Keras model file (.keras or .h5): a SavedModel folder "
                "has no layer graph that Sony's converter can read; export the model with "
                "model.save('model.keras') and convert that file"
            )
        if class_name == "Lambda" or entry.get("registered_name") not in (None, class_name):
            raise ConversionError(
                f"layer {entry.get('name')!r} ({class_name}) is custom code; the IMX500 target "
                "rebuilds the model from built-in Keras layers only"
            )


def _flat_layers(model: Any) -> list[Any]:
    layers = []
    for layer in model.layers:
        if hasattr(layer, "layers") and type(layer).__name__ in _NESTED_MODEL_CLASSES:
            layers.extend(_flat_layers(layer))
        else:
            layers.append(layer)
    return layers


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to graph.json")

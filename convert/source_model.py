"""Loading the source Keras model and the trainer's ``cadr-train.json`` sidecar.

Accepted models: a ``.keras`` or ``.h5`` file, or a SavedModel directory, with one image
input of shape (batch, height, width, 3) and a binary output: one sigmoid unit (the
probability of the second label) or two softmax units.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadr_convert.conversion_errors import InputError

logger = logging.getLogger(__name__)

#: File name of the trainer's sidecar, looked up beside the model (and inside a SavedModel).
SIDECAR_NAME = "cadr-train.json"

_HASH_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SourceModel:
    """A loaded source model with the input size and output kind read from its shapes.

    Attributes:
        model: The Keras model, or a ``keras.layers.TFSMLayer`` for a SavedModel.
        path: The path given by the user.
        input_size: (width, height) fixed by the model, or None when either is dynamic.
        output_kind: ``"sigmoid"`` (one unit) or ``"softmax"`` (two units).
        sha256: sha256 of the model file, or of the SavedModel directory's file list
            and contents (see :func:`model_sha256`).
    """

    model: Any
    path: Path
    input_size: tuple[int, int] | None
    output_kind: str
    sha256: str


@dataclass(frozen=True)
class Sidecar:
    """The defaults the trainer recorded in ``cadr-train.json``; each field may be absent.

    Other keys of the file (training history, architecture) are ignored here.
    """

    path: Path
    normalisation: str | None = None
    labels: tuple[str, str] | None = None
    positive_label: str | None = None
    input_size: tuple[int, int] | None = None
    crop_fraction: float | None = None
    resample: str | None = None


def load_source_model(path: Path) -> SourceModel:
    """Load ``path`` and check that it is a single-image binary classifier.

    Raises:
        InputError: If the path is missing, not a model, or has the wrong input or output.
    """
    import keras  # noqa: PLC0415 - TensorFlow and Keras load only when converting

    if not path.exists():
        raise InputError(f"{path}: model not found; pass a .keras or .h5 file or a SavedModel "
                         "folder")

    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise InputError(f"{path}: folder has no saved_model.pb, so it is not a SavedModel")
        try:
            model = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
        except (ValueError, OSError) as e:
            raise InputError(f"{path}: cannot load the SavedModel's serving_default "
                             f"signature ({e})") from e
        input_shape, output_shape = _saved_model_shapes(path)
    else:
        if path.suffix.lower() not in (".keras", ".h5"):
            raise InputError(f"{path}: unsupported model file; expected .keras, .h5 or a "
                             "SavedModel folder")
        try:
            model = keras.models.load_model(path, compile=False)
        except (ValueError, OSError, TypeError) as e:
            raise InputError(f"{path}: cannot load the Keras model ({e})") from e
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise InputError(f"{path}: model has {len(model.inputs)} inputs and "
                             f"{len(model.outputs)} outputs; expected one image input and "
                             "one output")
        input_shape = tuple(model.inputs[0].shape)
        output_shape = tuple(model.outputs[0].shape)

    input_size = _input_size(path, input_shape)
    output_kind = _output_kind(path, output_shape)
    logger.info("Loaded source model %s: input %s, output %s", path, input_shape, output_kind)
    return SourceModel(model, path, input_size, output_kind, model_sha256(path))


def _saved_model_shapes(path: Path) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    import tensorflow as tf  # noqa: PLC0415

    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise InputError(f"{path}: SavedModel has no serving_default signature")
    inputs = list(signature.structured_input_signature[1].values())
    outputs = list(signature.structured_outputs.values())
    if len(inputs) != 1 or len(outputs) != 1:
        raise InputError(f"{path}: serving_default has {len(inputs)} inputs and {len(outputs)} "
                         "outputs; expected one image input and one output")
    return tuple(inputs[0].shape), tuple(outputs[0].shape)


def _input_size(path: Path, shape: tuple[Any, ...]) -> tuple[int, int] | None:
    if len(shape) != 4 or shape[3] != 3:
        raise InputError(f"{path}: model input shape is {shape}; expected (batch, height, "
                         "width, 3) RGB")
    height, width = shape[1], shape[2]
    if height is None or width is None:
        return None
    return int(width), int(height)


def _output_kind(path: Path, shape: tuple[Any, ...]) -> str:
    units = shape[-1] if shape else None
    if len(shape) != 2 or units not in (1, 2):
        raise InputError(f"{path}: model output shape is {shape}; expected (batch, 1) sigmoid "
                         "or (batch, 2) softmax")
    return "sigmoid" if units == 1 else "softmax"


def model_sha256(path: Path) -> str:
    """Return the sha256 of a model file, or of a SavedModel directory.

    For a directory the digest covers each file's relative POSIX path and contents, in
    sorted path order, so the same SavedModel gives the same digest on any machine.
    """
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        with file.open("rb") as f:
            while chunk := f.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def find_sidecar(model_path: Path) -> Path | None:
    """Return the ``cadr-train.json`` beside the model (or inside a SavedModel), if any."""
    candidates = [model_path.parent / SIDECAR_NAME]
    if model_path.is_dir():
        candidates.insert(0, model_path / SIDECAR_NAME)
    return next((c for c in candidates if c.is_file()), None)


def read_sidecar(path: Path) -> Sidecar:
    """Parse a ``cadr-train.json`` sidecar.

    Raises:
        InputError: If the file is not JSON or a known key has the wrong type.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read the trainer's sidecar as JSON ({e})") from e
    if not isinstance(data, dict):
        raise InputError(f"{path}: sidecar must be a JSON object")

    normalisation = data.get("normalisation")
    if normalisation is not None and not isinstance(normalisation, str):
        raise InputError(f"{path}: 'normalisation' must be a string, got {normalisation!r}")

    labels = data.get("labels")
    if labels is not None:
        if (not isinstance(labels, list) or len(labels) != 2
                or not all(isinstance(v, str) and v for v in labels)):
            raise InputError(f"{path}: 'labels' must be a list of two names, got {labels!r}")
        labels = (labels[0], labels[1])

    positive = data.get("positive_label")
    if positive is not None and not isinstance(positive, str):
        raise InputError(f"{path}: 'positive_label' must be a string, got {positive!r}")

    crop_fraction = data.get("crop_fraction")
    if crop_fraction is not None and (isinstance(crop_fraction, bool)
                                      or not isinstance(crop_fraction, int | float)):
        raise InputError(f"{path}: 'crop_fraction' must be a number, got {crop_fraction!r}")

    resample = data.get("resample")
    if resample is not None and not isinstance(resample, str):
        raise InputError(f"{path}: 'resample' must be a string, got {resample!r}")

    size = _sidecar_size(path, data.get("input_size"))
    return Sidecar(path, normalisation, labels, positive, size,
                   None if crop_fraction is None else float(crop_fraction), resample)


def _sidecar_size(path: Path, value: Any) -> tuple[int, int] | None:
    """Read ``input_size`` as one integer (square) or a [width, height] pair."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, value
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        return value[0], value[1]
    raise InputError(f"{path}: 'input_size' must be a positive integer or [width, height], "
                     f"got {value!r}")

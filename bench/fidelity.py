"""Measurement 5: float against int8 on a generated test set the converter never saw.

For each bench-trained model (the default bundle's separable backbone at 128, and
MobileNetV2 alpha 1.0 at 224 in the full run) the converter chose the threshold on its
validation set. On the separate test set, the int8 model runs through the device's
``load_rgb``, ``model_input`` and ``Classifier``; the float model is the float32
``.tflite`` of the same wrapped Keras graph, run by LiteRT on the same model inputs.
When ``models/cadr-demo`` exists, its int8 model is scored on a test set generated with
a seed its recipe (``scripts/build-demo-model.sh``, seeds 101, 202 and 303) did not use.
Its float source model is not in the repository and the recipe takes about 20 minutes,
so it has no float comparison here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.fixtures import DEFAULT_BUNDLE, TrainedModel, Workspace, labelled


def run(ws: Workspace, mode: str) -> dict[str, Any]:
    files, labels = labelled(ws.test_set())
    models = [ws.model(ws.small_spec())]
    if ws.sizes.with_large:
        models.append(ws.model(ws.large_spec()))

    result: dict[str, Any] = {"test_images": len(files),
                              "test_positives": int(labels.sum()), "models": {}}
    for trained in models:
        result["models"][trained.spec.name] = _score_trained(trained, files, labels)
    result["default_bundle"] = _score_default_bundle(*labelled(ws.default_bundle_test_set()))
    return result


def _score_trained(trained: TrainedModel, files: list[Path], labels: np.ndarray,
                   ) -> dict[str, Any]:
    from cadr_device.bundle import load_bundle
    from cadr_device.classifier import Classifier
    from cadr_device.signing import Keyring, default_key_dir

    bundle = load_bundle(trained.bundle, Keyring.from_directory(default_key_dir()))
    classifier = Classifier(bundle)
    inputs = _model_inputs(files, bundle.manifest.preprocess)
    int8 = np.asarray([classifier.probability(x)[0] for x in inputs])
    float32 = _float_probabilities(trained.float_tflite, inputs)
    threshold = bundle.manifest.decision.threshold
    return {
        "validation_by_converter": {k: trained.conversion[k] for k in (
            "float_auc", "int8_auc", "threshold", "agreement", "max_abs_difference")},
        "test": _metrics(labels, float32, int8, threshold),
        "train_s": trained.timings_s.get("train_s"),
    }


def _score_default_bundle(files: list[Path], labels: np.ndarray) -> dict[str, Any]:
    from cadr_device.bundle import load_bundle
    from cadr_device.classifier import Classifier
    from cadr_device.errors import CadrError
    from cadr_device.signing import Keyring, default_key_dir

    if not DEFAULT_BUNDLE.is_dir():
        return {"measured": False, "reason": "models/cadr-demo is not in this checkout"}
    try:
        bundle = load_bundle(DEFAULT_BUNDLE, Keyring.from_directory(default_key_dir()))
    except CadrError as e:
        return {"measured": False, "reason": f"models/cadr-demo does not verify: {e}"}

    from cadr_convert.metrics import operating_point, roc_auc

    classifier = Classifier(bundle)
    inputs = _model_inputs(files, bundle.manifest.preprocess)
    int8 = np.asarray([classifier.probability(x)[0] for x in inputs])
    threshold = bundle.manifest.decision.threshold
    point = operating_point(labels, int8, threshold)
    return {"measured": True, "model_id": bundle.manifest.model_id,
            "test_images": len(files), "int8_auc": round(roc_auc(labels, int8), 4),
            "threshold": threshold,
            "int8_sensitivity": round(point.sensitivity, 4),
            "int8_specificity": round(point.specificity, 4),
            "float": "not measured: the source model is not committed"}


def _model_inputs(files: list[Path], rule: Any) -> np.ndarray:
    from cadr_device.images import load_rgb
    from cadr_device.preprocess import model_input

    return np.stack([model_input(load_rgb(path), rule) for path in files])


def _float_probabilities(path: Path, inputs: np.ndarray) -> np.ndarray:
    from cadr_device.runtime import build_interpreter

    interpreter = build_interpreter(path, num_threads=2)
    detail = interpreter.get_input_details()[0]
    output = interpreter.get_output_details()[0]
    values = []
    for pixels in inputs:
        interpreter.set_tensor(detail["index"], pixels[np.newaxis].astype(np.float32))
        interpreter.invoke()
        values.append(float(interpreter.get_tensor(output["index"]).reshape(-1)[0]))
    return np.clip(np.asarray(values), 0.0, 1.0)


def _metrics(labels: np.ndarray, float32: np.ndarray, int8: np.ndarray,
             threshold: float) -> dict[str, Any]:
    from cadr_convert.metrics import operating_point, roc_auc

    float_point = operating_point(labels, float32, threshold)
    int8_point = operating_point(labels, int8, threshold)
    difference = np.abs(float32 - int8)
    return {
        "float_auc": round(roc_auc(labels, float32), 4),
        "int8_auc": round(roc_auc(labels, int8), 4),
        "threshold": round(threshold, 6),
        "decision_agreement": round(float(np.mean((float32 >= threshold) == (int8 >= threshold))),
                                    4),
        "float_sensitivity": round(float_point.sensitivity, 4),
        "int8_sensitivity": round(int8_point.sensitivity, 4),
        "float_specificity": round(float_point.specificity, 4),
        "int8_specificity": round(int8_point.specificity, 4),
        "mean_abs_difference": round(float(difference.mean()), 4),
        "max_abs_difference": round(float(difference.max()), 4),
        "float_spread": round(float(np.ptp(float32)), 4),
    }


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    lines = [("test set", f"{result['test_images']} generated images, "
              f"{result['test_positives']} severe")]
    for name, model in result["models"].items():
        t = model["test"]
        lines.append((f"{name} ROC AUC float / int8",
                      f"{t['float_auc']:.4f} / {t['int8_auc']:.4f}"))
        lines.append((f"{name} at threshold {t['threshold']:.4f}",
                      f"agreement {t['decision_agreement']:.3f}, sensitivity float "
                      f"{t['float_sensitivity']:.3f} / int8 {t['int8_sensitivity']:.3f}, "
                      f"max |dp| {t['max_abs_difference']}"))
    default = result["default_bundle"]
    if default["measured"]:
        lines.append((f"default bundle {default['model_id']}",
                      f"int8 ROC AUC {default['int8_auc']:.4f}, sensitivity "
                      f"{default['int8_sensitivity']:.3f} at {default['threshold']}"))
    else:
        lines.append(("default bundle", default["reason"]))
    return lines

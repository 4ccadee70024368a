"""The ``--target imx500`` build: MCT quantization, ``imxconv-tf``, fidelity, bundle files.

Steps: find the toolchain → write the float model, calibration and validation inputs to a
work folder → run the driver (rebuild in Keras 2, MCT post-training quantization with the
IMX500 target platform capabilities on the same calibration inputs as the int8 TFLite
model) → check that the rebuilt float model reproduces the converter's float outputs →
run ``imxconv-tf`` → compare the MCT-quantized model with the float model and apply the
CPU model's gate limits → copy ``packerOut.zip`` and the reports into ``imx500/``.

The network runs on the sensor, so the host can only simulate it: the fidelity figures
come from MCT's quantized Keras model, not from IMX500 hardware.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from cadr_convert.context import ConversionContext
from cadr_convert.conversion_errors import ConversionError, GateError
from cadr_convert.imx500 import fidelity, graph_export, toolchain
from cadr_convert.metrics import operating_point, threshold_for_sensitivity

logger = logging.getLogger(__name__)

#: Folder inside the bundle for the IMX500 files.
BUNDLE_FOLDER = "imx500"
PACKER_FILE = "packerOut.zip"
MEMORY_REPORT_FILE = "memory_report.json"
DNN_PARAMS_FILE = "dnnParams.xml"

#: Largest allowed difference between the rebuilt float model's probabilities (Keras 2) and
#: the converter's float probabilities (Keras 3); both compute the same float graph.
FLOAT_MATCH_TOLERANCE = 1e-3


def build_imx500(context: ConversionContext, venv: Path | None = None) -> dict[str, Any]:
    """Build the IMX500 files into ``context.bundle_dir`` and return the target's result.

    Args:
        context: The int8 conversion's context.
        venv: The toolchain venv; :func:`toolchain.default_venv` when None.

    Returns:
        ``{"manifest": entry for accelerators.imx500, "report": report section}``.

    Raises:
        InputError: If the toolchain is not installed.
        ConversionError: If the model cannot be rebuilt, quantized or converted, with the
            converter's own message.
        GateError: If the MCT-quantized model fails the CPU model's gate limits.
    """
    tools = toolchain.find_toolchain(venv)
    with tempfile.TemporaryDirectory(prefix="cadr-imx500-") as scratch:
        work_dir = Path(scratch)
        graph_export.export_float_model(context.float_model, work_dir)
        np.save(work_dir / "calibration.npy", context.calibration_inputs)
        np.save(work_dir / "validation.npy", context.validation_inputs)

        toolchain.run_driver(tools, work_dir)
        driver = json.loads((work_dir / "driver.json").read_text(encoding="utf-8"))
        column = _positive_column(np.load(work_dir / "float_outputs.npy"),
                                  context.float_probabilities)
        quantized = _column(np.load(work_dir / "quantized_outputs.npy"), column)

        converted = work_dir / "converted"
        toolchain.run_converter(tools, work_dir / "quantized.keras", converted)
        files = _copy_outputs(converted, context.bundle_dir / BUNDLE_FOLDER)

    memory = _memory_summary(context.bundle_dir / files["memory_report"])
    mct = fidelity.measure(context.validation_labels, context.float_probabilities, quantized,
                           context.threshold)
    int8 = fidelity.measure(context.validation_labels, context.float_probabilities,
                            context.int8_probabilities, context.threshold)
    failure = fidelity.gate_failure(mct, context.gate)
    if failure is not None:
        raise GateError(f"IMX500 target: the MCT-quantized model failed the quality gate: "
                        f"{failure}; the CPU int8 model passed. Leave out --target imx500 or "
                        "retrain with quantization in mind")
    decision = _sensor_decision(context, quantized, int8)
    logger.info("IMX500 model built: ROC AUC %.4f (int8 TFLite %.4f), agreement %.4f, "
                "threshold %.4f, %s", mct.auc, int8.auc, mct.agreement, decision["threshold"],
                memory.get("memory_usage"))

    width, height = context.input_size
    versions = _versions(driver)
    entry = {
        "file": files["packer"],
        "memory_report": files["memory_report"],
        "dnn_params": files["dnn_params"],
        "input": {
            "width": width, "height": height, "color_order": "RGB", "dtype": "uint8",
            "scale": 1.0, "zero_point": 0,
            "normalisation": context.normalisation,
            "normalisation_applied_by": "network",
        },
        "output": {"positive_index": column},
        "decision": decision,
        "memory": memory,
        "toolchain": versions,
        "packaging": "imx500-package -i packerOut.zip -o DIR on the device makes network.rpk",
    }
    report = {
        "toolchain": versions,
        "memory": memory,
        "rebuild_dropped_config_keys": driver.get("dropped_config_keys", {}),
        "threshold": context.threshold,
        "fidelity_vs_float": fidelity.side_by_side({"tflite_int8": int8, "imx500_mct": mct}),
        "sensor_decision": decision,
        "note": "IMX500 figures simulate MCT's quantized model on the host; they are not "
                "measured on the sensor",
    }
    return {"manifest": entry, "report": report}


def _sensor_decision(context: ConversionContext, quantized: np.ndarray,
                     int8: fidelity.Fidelity) -> dict[str, float]:
    """Choose the sensor's own threshold so that it reaches the bundle's target sensitivity.

    The MCT model's probabilities differ slightly from the int8 TFLite model's, so the
    bundle's threshold can leave the sensor below the target. The device applies this
    threshold to the sensor's outputs and the bundle's to the CPU model's.
    """
    target = context.target_sensitivity
    if target is None:
        target = int8.sensitivity
    threshold = threshold_for_sensitivity(context.validation_labels, quantized, target)
    point = operating_point(context.validation_labels, quantized, threshold)
    return {"threshold": round(float(threshold), 6), "target_sensitivity": float(target),
            "sensitivity": round(point.sensitivity, 6),
            "specificity": round(point.specificity, 6)}


def _positive_column(float_outputs: np.ndarray, float_probabilities: np.ndarray) -> int:
    """Return the output column that reproduces the converter's float probabilities.

    This also proves that the Keras 2 rebuild computes the same function as the source.
    """
    outputs = float_outputs.reshape(len(float_probabilities), -1)
    differences = [float(np.max(np.abs(outputs[:, i] - float_probabilities)))
                   for i in range(outputs.shape[1])]
    best = int(np.argmin(differences))
    if differences[best] > FLOAT_MATCH_TOLERANCE:
        raise ConversionError(
            f"IMX500 target: the float model rebuilt with Keras 2 differs from the source by up "
            f"to {differences[best]:.4g} in probability (allowed {FLOAT_MATCH_TOLERANCE}); a "
            "layer setting did not carry over, so no IMX500 model was made"
        )
    return best


def _column(outputs: np.ndarray, column: int) -> np.ndarray:
    return outputs.reshape(outputs.shape[0], -1)[:, column].astype(np.float64)


def _copy_outputs(converted: Path, destination: Path) -> dict[str, str]:
    packer = converted / PACKER_FILE
    reports = sorted(converted.glob("*_MemoryReport.json"))
    if not packer.is_file() or not reports:
        found = sorted(p.name for p in converted.iterdir()) if converted.is_dir() else []
        raise ConversionError(f"imxconv-tf finished but wrote no {PACKER_FILE} and memory report "
                              f"(found {found})")
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(packer, destination / PACKER_FILE)
    shutil.copyfile(reports[0], destination / MEMORY_REPORT_FILE)
    files = {"packer": f"{BUNDLE_FOLDER}/{PACKER_FILE}",
             "memory_report": f"{BUNDLE_FOLDER}/{MEMORY_REPORT_FILE}"}
    if (converted / DNN_PARAMS_FILE).is_file():
        shutil.copyfile(converted / DNN_PARAMS_FILE, destination / DNN_PARAMS_FILE)
        files["dnn_params"] = f"{BUNDLE_FOLDER}/{DNN_PARAMS_FILE}"
    return files


def _memory_summary(report_path: Path) -> dict[str, Any]:
    """Return the memory report's key figures and refuse a network that does not fit."""
    data = json.loads(report_path.read_text(encoding="utf-8")).get("Memory Report", {})
    summary = {
        "memory_usage": data.get("Memory Usage"),
        "memory_available": data.get("Total Memory Available On Chip"),
        "memory_utilization": data.get("Memory Utilization"),
        "fit_in_chip": data.get("Fit In Chip"),
    }
    if summary["fit_in_chip"] is False:
        raise ConversionError(
            f"IMX500 target: the network needs {summary['memory_usage']} but the sensor has "
            f"{summary['memory_available']}; use a smaller model or input size"
        )
    return summary


def _versions(driver: dict[str, Any]) -> dict[str, str]:
    versions = {
        "imx500_converter": str(driver.get("imx500_converter")),
        "tensorflow": str(driver.get("tensorflow")),
        "model_compression_toolkit": str(driver.get("model_compression_toolkit")),
        "target_platform": f"{driver.get('target_platform')} "
                           f"{driver.get('target_platform_version')}",
    }
    try:
        versions["cadr"] = metadata.version("cadr")
    except metadata.PackageNotFoundError:
        versions["cadr"] = "unknown"
    return versions

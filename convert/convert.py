"""The int8 conversion pipeline behind ``cadr-convert --int8``, callable from Python.

Steps, in order:

1. Check the output path, the accelerator targets and the signing key.
2. Load the model and merge options, sidecar and model shapes.
3. Read the calibration and validation images.
4. Fold the normalisation into the graph and quantize.
5. Compare float and int8 on validation and apply the quality gate.
6. Write the model, goldens, plots and accelerator files into a staging folder.
7. Write the report and manifest, sign, load the bundle back and run its self-test.
8. Move the staging folder into place.
"""

from __future__ import annotations

import logging
import platform
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import import_module, metadata
from pathlib import Path
from typing import Any

import numpy as np

import cadr_convert
from cadr_convert import goldens, output_dir, quantize
from cadr_convert.bundle_writer import write_manifest
from cadr_convert.context import ConversionContext, GateLimits
from cadr_convert.conversion_errors import (
    ConversionError,
    GateError,
    InputError,
    TargetUnavailableError,
)
from cadr_convert.dataset import (
    MIN_CALIBRATION_IMAGES,
    ImageSet,
    labelled_files,
    load_inputs,
    sample_calibration_files,
)
from cadr_convert.folding import wrap_with_normalisation
from cadr_convert.key_policy import keyring_for, load_signing_key
from cadr_convert.layer_error import worst_layers
from cadr_convert.report import write_plots, write_report
from cadr_convert.settings import Settings, resolve_settings
from cadr_convert.signing import sign_bundle
from cadr_convert.source_model import SourceModel, find_sidecar, load_source_model, read_sidecar
from cadr_convert.validate import Validation, check_gate, compare
from cadr_device.bundle import Bundle, load_bundle
from cadr_device.classifier import Classifier
from cadr_device.errors import CadrError
from cadr_device.manifest import SCHEMA_VERSION
from cadr_device.preprocess import PreprocessRule
from cadr_device.selftest import run_selftest

logger = logging.getLogger(__name__)

MODEL_FILE = "model.tflite"

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")

#: Oldest cadr app that reads manifest schema version 1.
MIN_APP_VERSION = "0.1.0"

#: Target always built; the others come from ``cadr_convert.targets``.
CPU_TARGET = "cpu"
ACCELERATOR_TARGETS = ("imx500", "edgetpu")

DEFAULT_INTENDED_USE = (
    "Screening aid for severe cutaneous adverse drug reactions (SJS/TEN) from a skin "
    "photograph, for use by trained clinical staff. It is not a diagnosis; a clinician "
    "decides on every case."
)


@dataclass(frozen=True)
class ConversionRequest:
    """Everything one int8 conversion needs; see ``cadr-convert --help`` for each option.

    ``labels``, ``positive_label``, ``normalisation``, ``input_size``, ``crop_fraction``
    and ``resample`` may be None when the trainer's ``cadr-train.json`` sidecar or the
    model supplies them. Without either, crop and resample default to 0.8 and bilinear.
    """

    model: Path
    calibration: Path
    validation: Path
    out: Path
    name: str
    version: str
    signing_key: Path | None = None
    labels: tuple[str, str] | None = None
    positive_label: str | None = None
    normalisation: str | None = None
    input_size: tuple[int, int] | None = None
    crop_fraction: float | None = None
    resample: str | None = None
    calibration_count: int = 300
    seed: int = 0
    allow_small_calibration: bool = False
    target_sensitivity: float = 0.90
    gate: GateLimits = field(default_factory=GateLimits)
    demonstration_only: bool = False
    intended_use: str = DEFAULT_INTENDED_USE
    targets: tuple[str, ...] = (CPU_TARGET,)
    layer_errors: bool = False
    force: bool = False


@dataclass(frozen=True)
class ConversionResult:
    """A finished conversion: the published bundle and its report mapping."""

    bundle: Path
    report: dict[str, Any]
    validation: Validation


def convert_int8(request: ConversionRequest) -> ConversionResult:
    """Convert, validate, bundle and sign one model.

    Raises:
        InputError: For a bad model, folder, image, option, key or output path.
        GateError: If the int8 model fails the quality gate; the report goes to
            ``OUT.rejected/`` and no bundle is written.
        ConversionError: If conversion or the final bundle check fails.
    """
    _check_identity(request)
    output_dir.check_destination(request.out, request.force)
    target_module = _target_module(request.targets)
    signing_key = load_signing_key(request.signing_key, request.demonstration_only)

    source = load_source_model(request.model)
    sidecar_path = find_sidecar(request.model)
    sidecar = read_sidecar(sidecar_path) if sidecar_path else None
    settings = resolve_settings(source, sidecar, labels=request.labels,
                                positive_label=request.positive_label,
                                normalisation=request.normalisation, input_size=request.input_size,
                                crop_fraction=request.crop_fraction, resample=request.resample)
    try:
        rule = PreprocessRule(settings.input_size[0], settings.input_size[1],
                              crop_fraction=settings.crop_fraction, resample=settings.resample)
    except ValueError as e:
        raise InputError(str(e)) from e

    calibration = _load_calibration(request, rule)
    validation_set = load_inputs(labelled_files(request.validation, settings.labels), rule,
                                 "validation images")
    labels = np.asarray([g == settings.positive_label for g in validation_set.groups],
                        dtype=np.int64)

    float_model = wrap_with_normalisation(source.model, settings.normalisation,
                                          *settings.input_size)
    logger.info("Quantizing %s with %d calibration images", request.model, len(calibration.inputs))
    flatbuffer = quantize.quantize_model(float_model, calibration.inputs)

    float_probabilities = quantize.positive_probability(
        quantize.float_outputs(float_model, validation_set.inputs, "float inference"),
        source.output_kind, settings.positive_index)
    int8_raw, output_scale = quantize.int8_outputs(flatbuffer, validation_set.inputs,
                                                   "int8 inference")
    int8_probabilities = quantize.positive_probability(int8_raw, source.output_kind,
                                                       settings.positive_index)
    validation = _compare(labels, float_probabilities, int8_probabilities,
                          request.target_sensitivity)

    report = _base_report(request, settings=settings, source=source, calibration=calibration,
                          validation_set=validation_set, validation=validation)
    failure = check_gate(validation, request.gate)
    if failure is not None or request.layer_errors:
        report["worst_layers"] = [asdict(e) for e in worst_layers(
            quantize.convert_float(float_model), flatbuffer, validation_set.inputs)]
    if failure is not None:
        rejected = _write_rejected(
            request.out, report, failure.message(), labels=labels,
            float_probabilities=float_probabilities, int8_probabilities=int8_probabilities,
            validation=validation, settings=settings)
        raise GateError(f"{failure.message()}; no bundle written, report in {rejected}")

    staging = output_dir.make_staging(request.out)
    try:
        (staging / MODEL_FILE).write_bytes(flatbuffer)
        indices = goldens.pick_golden_indices(labels, int8_probabilities)
        cases = goldens.write_goldens(staging, validation_set.inputs, int8_probabilities, indices)
        kernel_difference = _golden_kernel_difference(
            flatbuffer, validation_set.inputs[indices], int8_probabilities[indices],
            source.output_kind, settings.positive_index)
        report["selftest_kernel_difference"] = round(kernel_difference, 6)
        write_plots(staging, labels, float_probabilities, int8_probabilities,
                    threshold=validation.threshold, label_names=settings.labels)

        context = ConversionContext(
            float_model=float_model, source_model=request.model, cpu_model=staging / MODEL_FILE,
            calibration_inputs=calibration.inputs, validation_inputs=validation_set.inputs,
            validation_labels=labels, float_probabilities=float_probabilities,
            int8_probabilities=int8_probabilities, threshold=validation.threshold,
            gate=request.gate, bundle_dir=staging, normalisation=settings.normalisation,
            input_size=settings.input_size, seed=request.seed,
            target_sensitivity=request.target_sensitivity,
        )
        accelerators = _run_targets(target_module, request.targets, context, report)

        report["status"] = "accepted"
        write_report(staging, report)
        fields = _manifest_fields(
            request, settings=settings, source=source, rule=rule, validation=validation,
            cases=cases, tolerance=goldens.tolerance(output_scale, kernel_difference),
            calibration=calibration, validation_set=validation_set, accelerators=accelerators)
        _sign_and_publish(staging, request, fields, signing_key)
    except BaseException:
        output_dir.discard(staging)
        raise

    logger.info("Wrote bundle %s (%s@%s)", request.out, request.name, request.version)
    return ConversionResult(request.out, report, validation)


def _golden_kernel_difference(flatbuffer: bytes, inputs: np.ndarray, expected: np.ndarray,
                              output_kind: str, positive_index: int) -> float:
    """Return the largest golden probability difference of LiteRT's built-in kernels.

    ``expected`` comes from the default (XNNPACK) interpreter; a device whose XNNPACK
    fails to start runs the built-in kernels, which round some sums differently.
    """
    raw, _ = quantize.int8_outputs(flatbuffer, inputs, "self-test kernels",
                                   default_delegates=False)
    builtin = quantize.positive_probability(raw, output_kind, positive_index)
    difference = float(np.max(np.abs(builtin - expected))) if len(expected) else 0.0
    logger.info("Golden inputs differ by at most %.4f between XNNPACK and built-in kernels",
                difference)
    return difference


def _check_identity(request: ConversionRequest) -> None:
    """Check name, version and intended use before the slow steps.

    The rules are those of ``cadr_device.manifest``, which checks them again when the
    manifest is written.
    """
    if not _NAME.match(request.name):
        raise InputError(f"--name {request.name!r} is invalid; use at most 64 lower-case "
                         "letters, digits, '.', '_' or '-', starting with a letter or digit")
    if not _SEMVER.match(request.version):
        raise InputError(f"--version {request.version!r} is invalid; use MAJOR.MINOR.PATCH, "
                         "for example 1.0.0")
    if not request.intended_use.strip():
        raise InputError("--intended-use is empty; state what the model is for")


def _sign_and_publish(staging: Path, request: ConversionRequest, fields: dict[str, Any],
                      signing_key: Any) -> None:
    """Write and sign the manifest, verify the bundle as the device would, then publish it."""
    write_manifest(staging, fields)
    sign_bundle(staging, signing_key)
    _check_bundle(staging, signing_key, request.signing_key)
    output_dir.publish(staging, request.out)


def _target_module(targets: tuple[str, ...]) -> Any:
    """Check the target names and their tools; return ``cadr_convert.targets`` or None.

    The module is imported, and each accelerator's tools are checked with
    ``check_target``, before any conversion work, so a missing tool fails in seconds.

    Raises:
        InputError: If a target is unknown or its tools are missing (exit code 3).
    """
    for target in targets:
        if target not in (CPU_TARGET, *ACCELERATOR_TARGETS):
            raise InputError(f"unknown target {target!r}; choose from "
                             f"{[CPU_TARGET, *ACCELERATOR_TARGETS]}")
    accelerators = [t for t in targets if t != CPU_TARGET]
    if not accelerators:
        return None

    try:
        module = import_module("cadr_convert.targets")
    except ModuleNotFoundError as e:
        if e.name != "cadr_convert.targets":
            raise
        raise TargetUnavailableError(
            f"target {accelerators[0]!r} is not available: cadr_convert.targets is not "
            "installed; build without --target or install the accelerator toolchain"
        ) from e

    # A missing edgetpu_compiler or IMX500 toolchain fails here, with install
    # instructions, and not after minutes of calibration and quantization.
    for name in dict.fromkeys(accelerators):
        module.check_target(name)
    return module


def _load_calibration(request: ConversionRequest, rule: PreprocessRule) -> ImageSet:
    entries = sample_calibration_files(request.calibration, request.calibration_count, request.seed)
    if len(entries) < MIN_CALIBRATION_IMAGES and not request.allow_small_calibration:
        raise InputError(
            f"{request.calibration}: {len(entries)} calibration images selected, fewer than the "
            f"minimum {MIN_CALIBRATION_IMAGES}; add images (or raise --calibration-count), or "
            "pass --allow-small-calibration for a test model"
        )
    return load_inputs(entries, rule, "calibration images")


def _compare(labels: np.ndarray, float_probabilities: np.ndarray,
             int8_probabilities: np.ndarray, target_sensitivity: float) -> Validation:
    try:
        return compare(labels, float_probabilities, int8_probabilities, target_sensitivity)
    except ValueError as e:
        raise InputError(f"validation set: {e}") from e


def _run_targets(module: Any, targets: tuple[str, ...], context: ConversionContext,
                 report: dict[str, Any]) -> dict[str, Any]:
    """Build each accelerator target and collect its manifest entry and report section."""
    accelerators: dict[str, Any] = {}
    names = [t for t in dict.fromkeys(targets) if t != CPU_TARGET]
    if not names:
        return accelerators

    report["accelerators"] = {}
    for name in names:
        logger.info("Building accelerator target %s", name)
        result = module.run_target(name, context)
        if not isinstance(result, dict) or "manifest" not in result or "report" not in result:
            raise ConversionError(f"target {name!r} returned {type(result).__name__}; expected a "
                                  "dict with 'manifest' and 'report'")
        accelerators[name] = result["manifest"]
        report["accelerators"][name] = result["report"]
    return accelerators


def _base_report(request: ConversionRequest, *, settings: Settings, source: SourceModel,
                 calibration: ImageSet, validation_set: ImageSet,
                 validation: Validation) -> dict[str, Any]:
    return {
        "status": "pending",
        "model": {"name": request.name, "version": request.version,
                  "source": str(request.model), "source_sha256": source.sha256,
                  "output_kind": source.output_kind, "labels": list(settings.labels),
                  "positive_label": settings.positive_label,
                  "normalisation": settings.normalisation,
                  "input_size": list(settings.input_size)},
        "demonstration_only": request.demonstration_only,
        "calibration": {"folder": str(request.calibration), "images": len(calibration.files),
                        "per_class": calibration.counts(), "seed": request.seed,
                        "requested": request.calibration_count},
        "validation_set": {"folder": str(request.validation), "images": len(validation_set.files),
                           "per_class": validation_set.counts()},
        "validation": validation.as_dict(),
        "gate": {"max_auc_drop": request.gate.max_auc_drop,
                 "min_agreement": request.gate.min_agreement,
                 "min_output_spread": request.gate.min_output_spread},
    }


def _write_rejected(out: Path, report: dict[str, Any], message: str, *, labels: np.ndarray,
                    float_probabilities: np.ndarray, int8_probabilities: np.ndarray,
                    validation: Validation, settings: Settings) -> Path:
    """Write the report of a gate failure to ``OUT.rejected`` (replacing an old one)."""
    rejected = output_dir.rejected_path(out)
    staging = output_dir.make_staging(rejected)
    try:
        report["status"] = "rejected"
        report["gate_failure"] = message
        write_report(staging, report)
        write_plots(staging, labels, float_probabilities, int8_probabilities,
                    threshold=validation.threshold, label_names=settings.labels)
        output_dir.publish(staging, rejected)
    except BaseException:
        output_dir.discard(staging)
        raise
    return rejected


def _toolchain() -> dict[str, str]:
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    def version(distribution: str) -> str:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "converter": f"cadr-convert {cadr_convert.__version__}",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "ai_edge_litert": version("ai-edge-litert"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _manifest_fields(request: ConversionRequest, *, settings: Settings, source: SourceModel,
                     rule: PreprocessRule, validation: Validation, cases: list[dict[str, object]],
                     tolerance: float, calibration: ImageSet, validation_set: ImageSet,
                     accelerators: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": request.name,
        "version": request.version,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "demonstration_only": request.demonstration_only,
        "intended_use": request.intended_use,
        "labels": list(settings.labels),
        "positive_label": settings.positive_label,
        "min_app_version": MIN_APP_VERSION,
        "model": {
            "file": MODEL_FILE,
            "input": {"width": rule.width, "height": rule.height, "color_order": "RGB",
                      "dtype": "uint8", "scale": 1.0, "zero_point": 0,
                      "normalisation": settings.normalisation},
            "output": {"kind": source.output_kind, "positive_index": settings.positive_index},
        },
        "preprocess": {"crop": rule.crop, "crop_fraction": rule.crop_fraction,
                       "resample": rule.resample},
        "decision": {
            # Rounded down: rounding up could put the threshold above the int8 output
            # step it was chosen at, and the device would then miss those positives.
            "threshold": float(np.floor(validation.threshold * 1e6) / 1e6),
            "target_sensitivity": validation.target_sensitivity,
            "sensitivity": round(validation.int8_point.sensitivity, 6),
            "specificity": round(validation.int8_point.specificity, 6),
            "validation_images": len(validation_set.files),
        },
        "toolchain": _toolchain(),
        "provenance": {
            "source_model": {"file": request.model.name, "sha256": source.sha256},
            "calibration": {"images": len(calibration.files), "per_class": calibration.counts(),
                            "seed": request.seed, "sampling": "seeded, balanced per subfolder"},
            "validation": {"images": len(validation_set.files),
                           "per_class": validation_set.counts(),
                           "float_auc": round(validation.float_auc, 6),
                           "int8_auc": round(validation.int8_auc, 6)},
        },
        "selftest": {"cases": cases, "tolerance": tolerance},
    }
    if accelerators:
        fields["accelerators"] = accelerators
    return fields


def _check_bundle(staging: Path, signing_key: Any, key_path: Path | None) -> Bundle:
    """Load the signed bundle as the device would and run its self-test."""
    try:
        bundle = load_bundle(staging, keyring_for(signing_key, key_path or staging))
        run_selftest(Classifier(bundle))
    except CadrError as e:
        raise ConversionError(f"the written bundle failed its final check: {e}") from e
    return bundle

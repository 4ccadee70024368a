"""Choosing the inference back-end for a bundle, with the CPU model as the fallback.

``preference`` is the device setting ``model.backend``: ``cpu``, ``edgetpu``, ``imx500`` or
``auto``. ``auto`` tries the accelerators whose files the bundle carries (IMX500 first,
because it also frees the CPU from the camera frames, then the Edge TPU) and uses the CPU
when none is present. Whenever a requested or present accelerator cannot run, the CPU
model runs and :class:`BackendStatus` carries the reason, which is logged once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from cadr_device.accel import edgetpu, imx500
from cadr_device.accel.status import CPU, EDGE_TPU, IMX500, AcceleratorUnavailable, BackendStatus
from cadr_device.bundle import Bundle
from cadr_device.classifier import Classifier
from cadr_device.runtime import RuntimeInfo, load_runtime

logger = logging.getLogger(__name__)

PREFERENCES = ("auto", "cpu", "edgetpu", "imx500")

#: Environment variable of the folder for the Edge TPU attempt marker and packaged IMX500
#: networks; :data:`DEFAULT_STATE_DIR` when unset.
STATE_DIR_VARIABLE = "CADR_STATE_DIR"
DEFAULT_STATE_DIR = Path("/var/lib/cadr/accel")


def default_state_dir() -> Path:
    """Return ``$CADR_STATE_DIR``, else ``/var/lib/cadr/accel``."""
    configured = os.environ.get(STATE_DIR_VARIABLE)
    return Path(configured) if configured else DEFAULT_STATE_DIR


def select_backend(
    bundle: Bundle, preference: str = "auto", num_threads: int = 2, *,
    runtime: RuntimeInfo | None = None, state_dir: Path | None = None,
    deadline_s: float = edgetpu.DEFAULT_DEADLINE_S,
    known_bad: tuple[edgetpu.KnownBadPair, ...] = edgetpu.KNOWN_BAD_PAIRS,
    device_roots: edgetpu.DeviceRoots | None = None, imx500_class: Any = None,
) -> tuple[Any, BackendStatus]:
    """Return a classifier for ``bundle`` on the preferred back-end, and its status.

    The classifier has ``classify(model_input) -> Prediction``, ``probability(...)``,
    ``runtime`` and ``bundle``. An IMX500 classifier also takes the frame's request
    metadata: ``classify(model_input, metadata)``.

    Args:
        bundle: The verified bundle.
        preference: ``auto``, ``cpu``, ``edgetpu`` or ``imx500``.
        num_threads: CPU interpreter threads.
        runtime: The TFLite runtime; :func:`cadr_device.runtime.load_runtime` when None.
        state_dir: Folder for the Edge TPU attempt marker and the IMX500 network cache;
            :func:`default_state_dir` when None.
        deadline_s: Time allowed for loading the Edge TPU delegate, in seconds.
        known_bad: Runtime and libedgetpu pairs never loaded together.
        device_roots: Device and sysfs folders inspected to explain Edge TPU failures.
        imx500_class: ``picamera2.devices.IMX500`` or a stand-in; imported when None.

    Raises:
        ValueError: If ``preference`` is not one of :data:`PREFERENCES`.
        RuntimeLoadError, BundleError: If even the CPU model cannot be loaded.
    """
    if preference not in PREFERENCES:
        raise ValueError(f"unknown back-end {preference!r}; choose one of {PREFERENCES}")
    runtime = runtime or load_runtime()
    state_dir = state_dir or default_state_dir()
    accelerators = bundle.manifest.accelerators
    model_id = bundle.manifest.model_id

    reason: str | None = None
    if preference == "imx500" or (preference == "auto" and "imx500" in accelerators):
        cpu = Classifier(bundle, num_threads=num_threads, runtime=runtime)
        try:
            classifier = imx500.build_imx500_classifier(bundle, cpu, state_dir, imx500_class)
            return classifier, BackendStatus(IMX500)
        except AcceleratorUnavailable as e:
            reason = f"IMX500 not used: {e}"
            logger.warning("Model %s: %s; the CPU runs the model", model_id, reason)
            if preference == "imx500" or "edgetpu" not in accelerators:
                return cpu, BackendStatus(CPU, reason)

    if preference == "edgetpu" or (preference == "auto" and "edgetpu" in accelerators):
        try:
            classifier = edgetpu.build_edgetpu_classifier(
                bundle, num_threads, runtime, state_dir, deadline_s=deadline_s,
                known_bad=known_bad, roots=device_roots)
            return classifier, BackendStatus(EDGE_TPU, None, edgetpu.LIBRARY)
        except AcceleratorUnavailable as e:
            edgetpu_reason = f"Edge TPU not used: {e}"
            logger.warning("Model %s: %s; the CPU runs the model", model_id, edgetpu_reason)
            reason = edgetpu_reason if reason is None else f"{reason}; {edgetpu_reason}"

    return Classifier(bundle, num_threads=num_threads, runtime=runtime), BackendStatus(CPU, reason)

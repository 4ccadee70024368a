"""Loading the camera app's model: bundle, interpreter on the chosen back-end, golden self-test.

Each failure maps to the viewfinder state that explains it, so the app can keep showing
the camera image with the reason instead of exiting.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadr_device.bundle import Bundle, check_app_version, load_bundle
from cadr_device.bundle_location import locate_bundle
from cadr_device.classifier import Classifier
from cadr_device.config import DeviceConfig
from cadr_device.errors import BundleError, RuntimeLoadError, SelfTestError
from cadr_device.selftest import run_selftest
from cadr_device.signing import Keyring, default_key_dir
from cadr_device.status import Condition

logger = logging.getLogger(__name__)

#: Back-end name shown on screen when the plain CPU interpreter runs the model.
CPU_BACKEND = "CPU"


@dataclass(frozen=True)
class LoadedModel:
    """A verified bundle and a self-tested classifier for it.

    Attributes:
        bundle: The verified bundle.
        classifier: Object with ``classify(model_input) -> Prediction``, ``runtime`` and
            ``bundle``; a :class:`~cadr_device.classifier.Classifier` or an accelerator's.
        backend_name: "CPU", "Edge TPU", "IMX500", for the status line and the record.
        fallback_note: Why a requested accelerator is not used, or None.
    """

    bundle: Bundle
    classifier: Any
    backend_name: str
    fallback_note: str | None = None


def load_model(config: DeviceConfig, explicit_bundle: Path | None = None,
               ) -> tuple[LoadedModel | None, Condition | None, str]:
    """Find, load and self-test the bundle.

    Args:
        config: The device configuration.
        explicit_bundle: The ``--bundle`` flag, or None; the lookup order is that of
            :func:`~cadr_device.bundle_location.locate_bundle`.

    Returns:
        ``(model, None, "")`` on success, else ``(None, condition, detail)`` where
        ``detail`` is the English error for the log.
    """
    keys = config.path_value("model.keys")
    assert keys is not None  # noqa: S101 - not nullable
    key_dir = keys if keys.is_dir() else default_key_dir()

    try:
        location = locate_bundle(explicit_bundle, config.path_value("model.bundle"))
        bundle = load_bundle(location.path, Keyring.from_directory(key_dir))
        check_app_version(bundle)
        classifier, backend_name, fallback_note = _build_classifier(
            bundle, config.get("model.backend"), config.get("model.num_threads"))
    except (BundleError, RuntimeLoadError) as e:
        return None, Condition.NO_MODEL, str(e)

    try:
        run_selftest(classifier)
    except SelfTestError as e:
        return None, Condition.SELFTEST_FAILED, str(e)

    logger.info("Model %s ready on %s%s", bundle.manifest.model_id, backend_name,
                f" ({fallback_note})" if fallback_note else "")
    return LoadedModel(bundle, classifier, backend_name, fallback_note), None, ""


def _build_classifier(bundle: Bundle, preference: str, num_threads: int,
                      ) -> tuple[Any, str, str | None]:
    """Return (classifier, back-end name, fallback note) from the accelerator selection.

    ``cadr_device.accel.select_backend`` picks an accelerator with a CPU fallback; when
    that package does not provide it, the CPU interpreter runs the model.
    """
    accel = importlib.import_module("cadr_device.accel")
    select_backend = getattr(accel, "select_backend", None)
    if select_backend is None:
        if preference not in ("auto", "cpu"):
            note = f"back-end {preference!r} is not available in this build; using the CPU"
            logger.warning("%s", note)
            return Classifier(bundle, num_threads=num_threads), CPU_BACKEND, note
        return Classifier(bundle, num_threads=num_threads), CPU_BACKEND, None

    selected = select_backend(bundle, preference, num_threads)
    classifier, status = selected if isinstance(selected, tuple) else (selected, None)
    name = str(getattr(status, "name", None) or getattr(status, "backend", None) or CPU_BACKEND)
    reason = getattr(status, "fallback_reason", None)
    return classifier, name, None if reason is None else str(reason)


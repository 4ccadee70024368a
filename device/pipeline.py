"""One screening capture: upright still → model input → int8 result → annotated still → record.

:class:`Screening` is shared by the camera app and the file replay. It is built once per
bundle with an interpreter that already passed the golden self-test, and it records
every attempt, including failed ones, so the records folder is a complete log of what
the device was shown.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cadr_device import __version__
from cadr_device.accel.status import backend_id
from cadr_device.annotate import DEMONSTRATION as DEMONSTRATION_NOTICE
from cadr_device.annotate import NOT_A_DIAGNOSIS, annotate
from cadr_device.bundle import Bundle
from cadr_device.classifier import Classifier, Prediction
from cadr_device.errors import RecordError
from cadr_device.i18n import resolve_language, translator
from cadr_device.names import display_name
from cadr_device.preprocess import model_input
from cadr_device.records import RecordStore, new_capture_id, utc_timestamp

logger = logging.getLogger(__name__)

#: JPEG quality of the stored still when the caller did not pass its own JPEG bytes.
STILL_JPEG_QUALITY = 92

#: JPEG quality of the annotated copy.
ANNOTATED_JPEG_QUALITY = 88

STILL_NAME = "still.jpg"
ANNOTATED_NAME = "annotated.jpg"

#: The exact uint8 model input (the crop after resizing), stored losslessly so a result
#: can be reproduced by feeding this file to the same model.
MODEL_INPUT_NAME = "model_input.png"

STATUS_OK = "ok"
STATUS_FAILED = "failed"


@dataclass(frozen=True)
class CaptureResult:
    """The outcome of one capture.

    Attributes:
        capture_id: Time-sortable id shared by the record, logs and file names.
        prediction: The classification, or None when the capture could not be classified.
        model_id: The bundle's ``name@version``.
        record_path: ``record.json`` of the capture, or None when writing it failed.
        annotated_path: The annotated still inside the record, or None.
        error: Why the capture failed or was not saved, or None on success. A result with
            both a prediction and an error was classified but not recorded.
    """

    capture_id: str
    prediction: Prediction | None
    model_id: str
    record_path: Path | None
    annotated_path: Path | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the capture was classified and recorded."""
        return self.error is None


class Screening:
    """Screens stills with one verified bundle and records every attempt.

    Args:
        bundle: The loaded, verified bundle.
        classifier: Its interpreter, built once and self-tested by the caller.
        store: Where records go.
        locale: Display language of the annotated still (see :mod:`cadr_device.i18n`).
        backend: The delegate or back-end the classifier runs on, for the record
            (``cpu``, ``edgetpu``, ``imx500``).

    Calls are serialised by a lock, so a camera thread and a capture trigger may share
    one instance.
    """

    def __init__(self, bundle: Bundle, classifier: Classifier, store: RecordStore, *,
                 locale: str | None, backend: str = "cpu") -> None:
        self.bundle = bundle
        self.classifier = classifier
        self.store = store
        self.backend = backend
        self.language = resolve_language(locale)
        self.translator = translator(self.language)
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """The bundle's ``name@version``, as logs and records cite it."""
        return self.bundle.manifest.model_id

    @property
    def uses_metadata(self) -> bool:
        """Whether the classifier reads camera request metadata (the IMX500 back-end)."""
        return backend_id(self.backend) == "imx500"

    def screen(self, image: Image.Image, *, source: str, capture_id: str | None = None,
               still_jpeg: bytes | None = None, fallback_note: str | None = None,
               metadata: dict[str, Any] | None = None) -> CaptureResult:
        """Classify one upright RGB still, annotate it and record it durably.

        Args:
            image: The still, upright RGB (EXIF orientation already applied).
            source: Where the still came from; only its base name is recorded.
            capture_id: An id made by :func:`~cadr_device.records.new_capture_id`, or None
                for a new one.
            still_jpeg: The camera's own JPEG of the still, stored as is; None stores a
                JPEG encoded from ``image``.
            fallback_note: Why a fallback was used (for example, the accelerator was
                missing and the CPU ran the model), stored in the record.
            metadata: The still's camera request metadata, passed to the classifier
                (the IMX500 back-end reads the sensor's output from it), or None.

        Returns:
            The result. A bad still or a full disk does not raise: ``error`` says what
            failed, and the failure is recorded when the disk allows.

        Raises:
            ValueError: If ``capture_id`` is malformed or already has a record.
        """
        with self._lock:
            capture_id = capture_id or new_capture_id()
            captured_at = utc_timestamp()

            try:
                pixels = model_input(image, self.bundle.manifest.preprocess)
            except ValueError as e:
                return self._record_failure(capture_id, captured_at, source,
                                            f"classification failed: {e}")
            try:
                if metadata is None:
                    prediction = self.classifier.classify(pixels)
                else:
                    prediction = self.classifier.classify(pixels, metadata)
            except (ValueError, RuntimeError) as e:
                # The interpreter failed; the record keeps the input it was given.
                return self._record_failure(capture_id, captured_at, source,
                                            f"classification failed: {e}", pixels)
            used_backend = prediction.backend or self.backend
            logger.info("Capture %s: %s p=%.3f threshold %.3f in %.1f ms on %s (model %s)",
                        capture_id, prediction.label, prediction.probability,
                        prediction.threshold, prediction.inference_ms, used_backend,
                        self.model_id)
            if backend_id(used_backend) != backend_id(self.backend):
                stand_in = (f"{self.backend} gave no result for this capture, so the "
                            f"{used_backend} model classified the crop")
                fallback_note = stand_in if fallback_note is None else (
                    f"{fallback_note}; {stand_in}")

            annotated = annotate(image, prediction, self.bundle.manifest, self.translator)
            if still_jpeg is None:
                still_jpeg = _jpeg(image, STILL_JPEG_QUALITY)
            annotated_jpeg = _jpeg(annotated, ANNOTATED_JPEG_QUALITY)
            input_png = _png(pixels)
            files = {STILL_NAME: still_jpeg, ANNOTATED_NAME: annotated_jpeg,
                     MODEL_INPUT_NAME: input_png}
            record = self._record(capture_id, captured_at, source, STATUS_OK, prediction,
                                  error=None, fallback_note=fallback_note)
            record["model_input"] = _model_input_entry(pixels, input_png)
            try:
                record_path = self.store.write(record, files)
            except RecordError as e:
                logger.error("Capture %s was classified but not recorded (model %s): %s",
                             capture_id, self.model_id, e)
                return CaptureResult(capture_id, prediction, self.model_id, None, None, str(e))

            return CaptureResult(capture_id, prediction, self.model_id, record_path,
                                 record_path.with_name(ANNOTATED_NAME))

    def screen_failed(self, source: str, reason: str, capture_id: str | None = None,
                      ) -> CaptureResult:
        """Record a capture that could not be screened (unreadable file, camera error).

        Returns:
            A result with ``prediction`` None and ``error`` set to ``reason``; if even the
            failure record cannot be written, ``record_path`` is None too.
        """
        with self._lock:
            return self._record_failure(capture_id or new_capture_id(), utc_timestamp(),
                                        source, reason)

    def _record_failure(self, capture_id: str, captured_at: str, source: str,
                        reason: str, pixels: np.ndarray | None = None) -> CaptureResult:
        logger.warning("Capture %s failed (model %s): %s", capture_id, self.model_id, reason)
        record = self._record(capture_id, captured_at, source, STATUS_FAILED, None,
                              error=reason, fallback_note=None)
        files: dict[str, bytes] = {}
        if pixels is not None:
            files[MODEL_INPUT_NAME] = _png(pixels)
            record["model_input"] = _model_input_entry(pixels, files[MODEL_INPUT_NAME])
        try:
            record_path: Path | None = self.store.write(record, files)
        except RecordError as e:
            logger.error("Capture %s: the failure could not be recorded either: %s", capture_id, e)
            record_path = None
            reason = f"{reason}; {e}"
        return CaptureResult(capture_id, None, self.model_id, record_path, None, reason)

    def _record(self, capture_id: str, captured_at: str, source: str, status: str,
                prediction: Prediction | None, *, error: str | None,
                fallback_note: str | None) -> dict[str, Any]:
        manifest = self.bundle.manifest
        _ = self.translator.gettext
        notices = [NOT_A_DIAGNOSIS]
        if manifest.demonstration_only:
            notices.insert(0, DEMONSTRATION_NOTICE)
        return {
            "capture_id": capture_id,
            "status": status,
            "captured_at": captured_at,
            "recorded_at": utc_timestamp(),
            "source": display_name(Path(source).name),
            "model_id": manifest.model_id,
            "model": {"name": manifest.name, "version": manifest.version,
                      "sha256": self.bundle.model_sha256, "file": manifest.model.file},
            "demonstration_only": manifest.demonstration_only,
            "runtime": self.classifier.runtime.label,
            "backend": backend_id(self.backend if prediction is None or prediction.backend is None
                                  else prediction.backend),
            "fallback_note": fallback_note,
            "probability": None if prediction is None else round(prediction.probability, 6),
            "threshold": (manifest.decision.threshold if prediction is None
                          else prediction.threshold),
            "target_sensitivity": manifest.decision.target_sensitivity,
            "label": None if prediction is None else prediction.label,
            "positive": None if prediction is None else prediction.positive,
            "inference_ms": None if prediction is None else round(prediction.inference_ms, 3),
            "model_input": None,
            "error": error,
            "app_version": __version__,
            "language": self.language,
            "notices": notices,
            "notices_shown": [_(notice) for notice in notices],
        }


def _png(pixels: np.ndarray) -> bytes:
    """Encode a (height, width, 3) uint8 model input as a lossless PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _model_input_entry(pixels: np.ndarray, png: bytes) -> dict[str, Any]:
    """Describe the stored model input: file, size and the sha256 of the PNG and its pixels."""
    height, width = pixels.shape[:2]
    return {
        "file": MODEL_INPUT_NAME,
        "width": int(width),
        "height": int(height),
        "sha256": hashlib.sha256(png).hexdigest(),
        "pixels_sha256": hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest(),
    }


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()

"""One capture of the camera app: checks, still, classification, record and on-screen state.

:meth:`CaptureTaker.take` never raises: every failure becomes a condition on the
:class:`~cadr_device.status.StatusBoard` (shown on the viewfinder) and a log line with
the capture id, and the app goes on to the next frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cadr_device.camera import Camera, CameraError
from cadr_device.errors import ImageError, RecordError
from cadr_device.overlay import ShownResult
from cadr_device.pipeline import Screening
from cadr_device.records import RecordStore, new_capture_id
from cadr_device.status import Condition, StatusBoard

logger = logging.getLogger(__name__)


@dataclass
class CaptureTaker:
    """Takes captures for the app.

    Attributes:
        camera: The frame source that provides the still.
        screening: Classifies and records the still; None when no model is loaded.
        store: The records folder; None when it could not be opened.
        status: The app's failure states, updated by every capture.
        min_free_bytes: A capture is rejected when less space is free, in bytes.
        still_timeout_s: Time allowed for the still before the viewfinder frame is used.
        backend_note: Why an accelerator is not used, stored in every record, or None.
    """

    camera: Camera
    screening: Screening | None
    store: RecordStore | None
    status: StatusBoard
    min_free_bytes: int
    still_timeout_s: float
    backend_note: str | None = None

    def take(self, trigger: str) -> ShownResult | None:
        """Take, classify and record one capture; return what the viewfinder shows.

        Returns:
            The result panel's content, or None when the capture was rejected before a
            still was taken (the reason is then a condition on the status board).
        """
        capture_id = new_capture_id()
        try:
            return self._take(capture_id, trigger)
        except RecordError as e:
            logger.error("Capture %s was not recorded: %s", capture_id, e)
            self.status.set(Condition.RECORD_FAILED, f"capture {capture_id}: {e}",
                            capture_id=capture_id)
            return ShownResult(capture_id, None)
        except Exception as e:  # noqa: BLE001 - one failed capture must not stop the device
            logger.exception("Capture %s failed unexpectedly: %s", capture_id, e)
            self.status.set(Condition.INFERENCE_FAILING, f"capture {capture_id}: {e}",
                            capture_id=capture_id)
            return ShownResult(capture_id, None)

    def _take(self, capture_id: str, trigger: str) -> ShownResult | None:
        blocking = self.status.blocking
        if blocking is not None or self.screening is None or self.store is None:
            reason = blocking.condition.value if blocking else "screening unavailable"
            logger.warning("Capture %s (%s) rejected: %s", capture_id, trigger, reason)
            return None

        try:
            self.store.check_free_space(self.min_free_bytes)
        except RecordError as e:
            self.status.set(Condition.DISK_FULL, f"capture {capture_id} rejected: {e}")
            return None
        self.status.clear(Condition.DISK_FULL)

        logger.info("Capture %s triggered by %s", capture_id, trigger)
        try:
            still = self.camera.capture_still(self.still_timeout_s)
        except (CameraError, ImageError, RuntimeError, OSError) as e:
            self.screening.screen_failed(self.camera.name, f"camera error: {e}", capture_id)
            self.status.set(Condition.CAPTURE_FAILED, f"capture {capture_id}: {e}",
                            capture_id=capture_id)
            return ShownResult(capture_id, None)
        self.status.clear(Condition.CAPTURE_FAILED)

        notes = [note for note in (still.fallback_note, self.backend_note) if note]
        if still.metadata_note is not None and self.screening.uses_metadata:
            notes.append(still.metadata_note)
        result = self.screening.screen(still.image, source=still.source, capture_id=capture_id,
                                       fallback_note="; ".join(notes) or None,
                                       metadata=still.metadata)
        shown = ShownResult(capture_id, result.prediction,
                            still_fallback=still.fallback_note is not None)
        if result.prediction is None:
            self.status.set(Condition.INFERENCE_FAILING, result.error or "no prediction",
                            capture_id=capture_id)
            if result.record_path is None:
                self.status.set(Condition.RECORD_FAILED, result.error or "no record",
                                capture_id=capture_id)
            return shown

        self.status.clear(Condition.INFERENCE_FAILING)
        self.status.clear(Condition.IMAGE_UNREADABLE)
        if result.error is not None:
            self.status.set(Condition.RECORD_FAILED, result.error, capture_id=capture_id)
        else:
            self.status.clear(Condition.RECORD_FAILED)
        return shown

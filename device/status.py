"""Failure states the viewfinder shows, so a broken device never shows an empty overlay.

Each :class:`Condition` has an on-screen message (a gettext message id, translated when
drawn), and :data:`BLOCKING` lists those that stop screening. :class:`StatusBoard`
contains the conditions in force, and the overlay draws every one of them, most serious
first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from cadr_device.i18n import noop as _noop

logger = logging.getLogger(__name__)


class Condition(Enum):
    """A failure state, in order of seriousness (first is most serious)."""

    NO_CAMERA = "no-camera"
    NO_MODEL = "no-model"
    SELFTEST_FAILED = "self-test-failed"
    RECORDS_UNAVAILABLE = "records-unavailable"
    DISK_FULL = "disk-full"
    CAPTURE_FAILED = "capture-failed"
    INFERENCE_FAILING = "inference-failing"
    RECORD_FAILED = "record-failed"
    IMAGE_UNREADABLE = "image-unreadable"


#: On-screen message id of each condition; ``{...}`` fields come from the problem's params.
MESSAGES: dict[Condition, str] = {
    Condition.NO_CAMERA: _noop("No camera found. Check the camera cable and restart."),
    Condition.NO_MODEL: _noop("No model loaded. Screening is disabled."),
    Condition.SELFTEST_FAILED: _noop("Self-test failed. Screening is disabled."),
    Condition.RECORDS_UNAVAILABLE: _noop("Records folder unavailable. Captures cannot be "
                                         "saved."),
    Condition.DISK_FULL: _noop("Disk full. The capture was not saved."),
    Condition.CAPTURE_FAILED: _noop("Capture {capture_id} failed: the camera returned no "
                                    "image."),
    Condition.INFERENCE_FAILING: _noop("Inference failed. Capture {capture_id} was not "
                                       "screened."),
    Condition.RECORD_FAILED: _noop("Capture {capture_id} could not be recorded."),
    Condition.IMAGE_UNREADABLE: _noop("Image file could not be read: {name}"),
}

#: Shown under every failure message.
SEE_LOG = _noop("See the service log for details.")

#: Conditions under which the app must not classify or record captures.
BLOCKING = frozenset({Condition.NO_CAMERA, Condition.NO_MODEL, Condition.SELFTEST_FAILED,
                      Condition.RECORDS_UNAVAILABLE})


@dataclass(frozen=True)
class Problem:
    """One condition in force.

    Attributes:
        condition: Which failure.
        detail: English detail for the log (file, error text); never shown on screen.
        params: Values for the message's ``{...}`` fields.
    """

    condition: Condition
    detail: str
    params: dict[str, Any] = field(default_factory=dict)

    def message(self, gettext: Any) -> str:
        """Return the translated on-screen message."""
        return str(gettext(MESSAGES[self.condition])).format(**self.params)


class StatusBoard:
    """The conditions in force; setting one logs it once, clearing it logs the recovery."""

    def __init__(self) -> None:
        self._problems: dict[Condition, Problem] = {}

    def set(self, condition: Condition, detail: str, **params: Any) -> None:
        """Put ``condition`` in force (replacing its previous detail)."""
        problem = Problem(condition, detail, params)
        if self._problems.get(condition) != problem:
            logger.error("Device state %s: %s", condition.value, detail)
        self._problems[condition] = problem

    def clear(self, condition: Condition) -> None:
        """Remove ``condition`` if it is in force."""
        if self._problems.pop(condition, None) is not None:
            logger.info("Device state %s cleared", condition.value)

    def has(self, condition: Condition) -> bool:
        """Return whether ``condition`` is in force."""
        return condition in self._problems

    @property
    def blocking(self) -> Problem | None:
        """The most serious problem that stops screening, or None."""
        return next((p for p in self.problems() if p.condition in BLOCKING), None)

    def problems(self) -> tuple[Problem, ...]:
        """Return the problems in force, most serious first."""
        order = list(Condition)
        return tuple(sorted(self._problems.values(), key=lambda p: order.index(p.condition)))

    def summary(self) -> str:
        """Return an English one-line summary for the systemd status line."""
        problems = self.problems()
        if not problems:
            return "ready"
        return "; ".join(f"{p.condition.value}: {p.detail}" for p in problems)

"""The install journal: which step a half-done install reached, for ``recover``.

One JSON file, replaced atomically before each step, so after a power cut it names the
last step that had started. The file exists only while an install or rollback runs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from cadr_device.update.errors import StoreError
from cadr_device.update.fsutil import fsync_directory, write_atomic

logger = logging.getLogger(__name__)

#: Install steps in order. ``recover`` undoes every step before ``committed``.
STEP_STAGING = "staging"
STEP_STAGED = "staged"
STEP_SELFTEST_PASSED = "selftest_passed"
STEP_SWITCHED = "switched"
STEP_ROLLING_BACK = "rolling_back"
STEP_COMMITTED = "committed"
STEPS = (STEP_STAGING, STEP_STAGED, STEP_SELFTEST_PASSED, STEP_SWITCHED, STEP_ROLLING_BACK,
         STEP_COMMITTED)


@dataclass(frozen=True)
class JournalEntry:
    """The state of one install in progress.

    Attributes:
        operation: ``install`` or ``rollback``.
        step: The last step started, one of :data:`STEPS`.
        package: The package file name, for the audit log.
        target: The bundle directory name being switched to.
        previous: The bundle directory ``current`` named before, or None on a first install.
        old_previous: The directory ``previous`` named before, restored on undo.
        started: ISO 8601 UTC start time.
        area: ``bundles`` for a model bundle, ``app`` for an app virtual environment.

    """

    operation: str
    step: str
    package: str
    target: str
    previous: str | None
    old_previous: str | None
    started: str
    area: str = "bundles"


class Journal:
    """Reads and writes the journal file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, entry: JournalEntry) -> None:
        """Record ``entry`` durably."""
        if entry.step not in STEPS:
            raise ValueError(f"unknown journal step {entry.step!r}")
        write_atomic(self.path, (json.dumps(asdict(entry), indent=2) + "\n").encode("utf-8"))
        logger.debug("Journal step %s for %s", entry.step, entry.target)

    def read(self) -> JournalEntry | None:
        """Return the recorded entry, or None when no install is in progress.

        Raises:
            StoreError: If the journal exists but cannot be parsed.

        """
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entry = JournalEntry(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as e:
            raise StoreError(f"{self.path}: journal is unreadable ({e}); inspect the install "
                             "root by hand and delete the journal") from e
        if entry.step not in STEPS:
            raise StoreError(f"{self.path}: unknown journal step {entry.step!r}")
        return entry

    def clear(self) -> None:
        """Delete the journal once the install is finished or undone."""
        self.path.unlink(missing_ok=True)
        fsync_directory(self.path.parent)

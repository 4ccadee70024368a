"""The append-only audit log: one JSON line per update attempt, fsynced per line."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def utc_now() -> str:
    """Return the current UTC time in ISO 8601 with a ``Z`` suffix, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AuditLog:
    """Appends records to a JSON-lines file that is never rewritten."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        """Append ``record`` with a ``time`` field and fsync it.

        Each record has at least ``action``, ``outcome`` and ``reason``; install records add
        ``package``, ``bundle``, ``version`` and ``signer``.
        """
        line = json.dumps({"time": utc_now(), **record}, sort_keys=True) + "\n"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                             0o644)
        with os.fdopen(descriptor, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        logger.info("Audit: %s %s %s (%s)", record.get("action"), record.get("package", "-"),
                    record.get("outcome"), record.get("reason"))

    def read(self) -> list[dict[str, Any]]:
        """Return every record, oldest first; a damaged last line (power cut) is skipped."""
        if not self.path.exists():
            return []
        records = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("Skipping damaged audit line %d of %s", number, self.path)
        return records

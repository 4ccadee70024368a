"""Durable capture records: one folder per capture and an append-only index.

Layout under the store's root (documented for clinicians and auditors in
``docs/records.md``)::

    index.jsonl                         one JSON line per record, in capture order
    2026-12-04/<capture_id>/record.json the record (written last, atomically)
    2026-12-04/<capture_id>/<file>      its images (written first)
    incomplete/<capture_id>/            files of a capture cut off before its record.json

Write order: check free space → write each file atomically → write ``record.json``
atomically → append the index line. A crash between steps leaves either no
``record.json`` (the folder is moved to ``incomplete/`` on the next start) or a
``record.json`` without an index line (the next start appends the line). A torn last
index line is cut on the next start and tolerated by :meth:`RecordStore.list`.
One process writes at a time: writers and recovery hold an exclusive ``flock`` on
``lock`` in the root.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cadr_device.durable import (
    append_line,
    atomic_write,
    fsync_directory,
    make_private_dir,
    remove_stale_temp,
    repair_torn_tail,
)
from cadr_device.errors import RecordError

logger = logging.getLogger(__name__)

INDEX_NAME = "index.jsonl"
RECORD_NAME = "record.json"
LOCK_NAME = "lock"
INCOMPLETE_DIR = "incomplete"

#: Version of the record and index line layout.
RECORD_SCHEMA_VERSION = 1

#: Free space kept on the records file system beyond each write, in bytes, so that the
#: system's logs and the index can still grow when the records fill the disk.
DEFAULT_MIN_FREE_BYTES = 32 * 1024 * 1024

#: Capture id: UTC time to the millisecond, then 6 random hex digits. Ids sort by time.
CAPTURE_ID_PATTERN = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$")

#: Record fields copied into the index, so listing never opens a record file.
INDEX_FIELDS = (
    "capture_id", "status", "captured_at", "source", "label", "probability", "threshold",
    "model_id", "demonstration_only", "error",
)

_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def new_capture_id(now: datetime | None = None) -> str:
    """Return a new capture id such as ``20261204T201500.123Z-3f9a1c``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S") + f".{moment.microsecond // 1000:03d}Z"
    return f"{stamp}-{secrets.token_hex(3)}"


def utc_timestamp(now: datetime | None = None) -> str:
    """Return an ISO 8601 UTC time with milliseconds, such as ``2026-12-04T20:15:00.123Z``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class RecordStore:
    """A folder of capture records that survives power loss and full disks.

    Args:
        root: The store's folder; created with mode 0700 when missing.
        min_free_bytes: Space that must stay free after a write, in bytes.

    Opening a store takes its lock, cuts a torn last index line and finishes or sets
    aside any record a crash interrupted (see the module docstring).
    """

    def __init__(self, root: Path, min_free_bytes: int = DEFAULT_MIN_FREE_BYTES) -> None:
        self.root = root
        self.index_path = root / INDEX_NAME
        self.min_free_bytes = min_free_bytes
        try:
            make_private_dir(root)
            with self._locked():
                self._recover()
        except OSError as e:
            raise RecordError(f"{root}: cannot open the records folder ({e.strerror}); "
                              "check that the disk is mounted and writable") from e

    def check_free_space(self, min_bytes: int) -> None:
        """Raise if the store's file system has less than ``min_bytes`` available.

        Raises:
            RecordError: Naming the folder, the free and the needed bytes.
        """
        stats = os.statvfs(self.root)
        available = stats.f_bavail * stats.f_frsize
        if available < min_bytes:
            raise RecordError(
                f"{self.root}: disk is full ({available} bytes free, {min_bytes} needed); the "
                "capture was not saved. Export old records with 'cadr-device records export' "
                "and free space before screening again"
            )

    def write(self, record: dict[str, Any], files: dict[str, bytes]) -> Path:
        """Store one record and its files durably; return the path of ``record.json``.

        Args:
            record: JSON-serialisable fields; ``capture_id`` is required and must match
                :data:`CAPTURE_ID_PATTERN`. The store adds ``files`` (name → sha256 and size)
                and ``schema_version``.
            files: File name (no folders) → content, such as the still and the annotated image.

        Raises:
            ValueError: If the capture id or a file name is invalid, or the id exists.
            RecordError: If the disk is full or a write fails; nothing of this record
                stays on disk then.
        """
        capture_id = str(record.get("capture_id", ""))
        if not CAPTURE_ID_PATTERN.match(capture_id):
            raise ValueError(f"invalid capture id {capture_id!r}; use new_capture_id()")
        for name in files:
            if not _FILE_NAME.match(name) or name == RECORD_NAME:
                raise ValueError(f"invalid record file name {name!r}")

        document = dict(record)
        document["schema_version"] = RECORD_SCHEMA_VERSION
        document["files"] = {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in sorted(files.items())
        }
        try:
            record_bytes = (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()
        except (TypeError, ValueError) as e:
            # UnicodeEncodeError is a ValueError: a lone surrogate from an undecodable name.
            raise RecordError(f"{self.root}: capture {capture_id} cannot be stored as JSON "
                              f"({e}); this is a bug, report it with the log") from e
        relative = Path(_day_of(capture_id)) / capture_id
        folder = self.root / relative

        needed = self.min_free_bytes + len(record_bytes) + sum(len(d) for d in files.values())
        with self._locked():
            self.check_free_space(needed)
            if folder.exists():
                raise ValueError(f"capture id {capture_id} already has a record in {folder}")
            try:
                self._write_folder(folder, record_bytes, files)
                append_line(self.index_path, _index_line(document, relative / RECORD_NAME))
            except OSError as e:
                self._discard(folder)
                raise _record_error(self.root, capture_id, e) from e

        logger.info("Recorded capture %s (model %s, status %s)", capture_id,
                    document.get("model_id"), document.get("status"))
        return folder / RECORD_NAME

    def list(self) -> list[dict[str, Any]]:
        """Return the index entries in capture order, read from the index only.

        Each entry contains :data:`INDEX_FIELDS` and ``path`` (``record.json`` relative to the
        root). A torn last line is skipped; another unreadable line is skipped with a
        warning naming its line number.
        """
        return list(self._iter_index())

    def iter_entries(self) -> Iterator[dict[str, Any]]:
        """Yield the index entries of :meth:`list` one at a time, for stores too big to hold."""
        return self._iter_index()

    def read(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Read the full record of an index entry.

        Raises:
            RecordError: If the record file is missing or is not JSON.
        """
        path = self.root / entry["path"]
        try:
            document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise RecordError(f"{path}: record cannot be read ({e})") from e
        return document

    def export(self, dest: Path) -> int:
        """Copy every indexed record and a fresh index into ``dest``; return how many.

        Files are written atomically, so an interrupted export can be run again. A record
        already present in ``dest`` with the same sha256 is not copied twice.

        Raises:
            RecordError: If ``dest`` cannot be written (for example, a full USB stick).
        """
        exported: list[bytes] = []
        try:
            make_private_dir(dest)
            for entry in self._iter_index():
                source_folder = (self.root / entry["path"]).parent
                if not source_folder.is_dir():
                    logger.warning("Record %s is indexed but its folder %s is missing",
                                   entry["capture_id"], source_folder)
                    continue
                _copy_folder(source_folder, dest / Path(entry["path"]).parent)
                exported.append((json.dumps(entry, ensure_ascii=False) + "\n").encode())
            atomic_write(dest / INDEX_NAME, b"".join(exported))
        except OSError as e:
            raise RecordError(f"{dest}: export failed ({e.strerror or e}); free space on the "
                              "destination and run the export again") from e

        logger.info("Exported %d records from %s to %s", len(exported), self.root, dest)
        return len(exported)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        descriptor = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _write_folder(self, folder: Path, record_bytes: bytes, files: dict[str, bytes]) -> None:
        make_private_dir(folder)
        for name, data in sorted(files.items()):
            atomic_write(folder / name, data)
        atomic_write(folder / RECORD_NAME, record_bytes)

    def _discard(self, folder: Path) -> None:
        """Remove a record folder whose write failed, so no partial record stays."""
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                fsync_directory(folder.parent)

    def _iter_index(self) -> Iterator[dict[str, Any]]:
        try:
            data = self.index_path.read_bytes()
        except FileNotFoundError:
            return
        lines = data.split(b"\n")
        torn = lines.pop()  # empty when the file ends with a newline
        if torn:
            logger.warning("Skipped a torn last line in %s", self.index_path)
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                logger.warning("Skipped unreadable line %d of %s", number, self.index_path)
                continue
            if isinstance(entry, dict) and "capture_id" in entry and "path" in entry:
                yield entry

    def _recover(self) -> None:
        """Finish what a crash interrupted: the torn index line and unindexed folders."""
        repair_torn_tail(self.index_path)
        indexed = {entry["capture_id"] for entry in self._iter_index()}
        last_day = max((_day_of(capture_id) for capture_id in indexed), default="")

        # Only days from the last indexed one on can hold an unindexed capture, because
        # ids sort by time and every record is indexed before the next capture starts.
        # NOTE: this assumes the clock never steps back past a day boundary; a device
        # without a real-time clock or time sync may break that, and a capture cut off
        # then stays unindexed until a full scan.
        days = sorted(p for p in self.root.iterdir()
                      if p.is_dir() and re.match(r"^\d{4}-\d{2}-\d{2}$", p.name)
                      and p.name >= last_day)
        for day in days:
            for folder in sorted(p for p in day.iterdir() if p.is_dir()):
                remove_stale_temp(folder)
                if folder.name not in indexed:
                    self._recover_folder(folder)

    def _recover_folder(self, folder: Path) -> None:
        record_path = folder / RECORD_NAME
        try:
            document = json.loads(record_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
            document = None
        if not isinstance(document, dict):
            target = self.root / INCOMPLETE_DIR / folder.name
            make_private_dir(target.parent)
            os.replace(folder, target)
            fsync_directory(folder.parent)
            logger.warning("Capture %s has no complete record; moved its files to %s",
                           folder.name, target)
            return

        append_line(self.index_path, _index_line(document, record_path.relative_to(self.root)))
        logger.warning("Capture %s was recorded but not indexed before a crash; indexed it now",
                       folder.name)


def _index_line(document: dict[str, Any], relative: Path) -> bytes:
    entry = {key: document.get(key) for key in INDEX_FIELDS}
    entry["path"] = relative.as_posix()
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _day_of(capture_id: str) -> str:
    return f"{capture_id[:4]}-{capture_id[4:6]}-{capture_id[6:8]}"


def _copy_folder(source: Path, dest: Path) -> None:
    make_private_dir(dest)
    for path in sorted(source.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        data = path.read_bytes()
        target = dest / path.name
        if target.is_file() and _sha256(target) == hashlib.sha256(data).hexdigest():
            continue
        atomic_write(target, data)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_error(root: Path, capture_id: str, error: OSError) -> RecordError:
    if error.errno in _DISK_FULL_ERRNOS:
        return RecordError(
            f"{root}: disk is full, capture {capture_id} was not saved; export old records "
            "with 'cadr-device records export' and free space before screening again"
        )
    return RecordError(f"{root}: writing capture {capture_id} failed ({error.strerror or error}); "
                       "check the records disk")

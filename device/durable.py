"""Crash-safe file writes: atomic replace, durable appends and torn-line repair.

Every helper here is written for power loss and SIGKILL, not only for clean exits:

- :func:`atomic_write` writes a temporary file in the target's directory, fsyncs it,
  renames it over the target and fsyncs the directory, so a reader sees the old file or
  the whole new one.
- :func:`append_line` appends one line with a single ``write(2)`` on an ``O_APPEND``
  descriptor and fsyncs it. A crash can still cut that write short on some file systems,
  so readers call :func:`repair_torn_tail`, which drops a last line that has no newline.

Files are created with mode 0600 and directories with mode 0700, because records
describe patients.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

#: Permission bits of every file these helpers create.
FILE_MODE = 0o600

#: Permission bits of every directory these helpers create.
DIR_MODE = 0o700

#: Prefix of temporary files; a crash may leave one behind, and :func:`remove_stale_temp`
#: deletes them.
TEMP_PREFIX = ".tmp-"

#: How far back from the end :func:`repair_torn_tail` looks for the last newline, in bytes.
_TAIL_CHUNK_BYTES = 64 * 1024


def fsync_directory(path: Path) -> None:
    """Flush a directory entry change (create, rename, unlink) to disk."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def make_private_dir(path: Path) -> None:
    """Create ``path`` and missing parents with mode 0700, fsyncing each new entry."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent

    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=DIR_MODE)
        fsync_directory(directory.parent)


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` so that readers never see a partial file.

    Raises:
        OSError: As the write, fsync or rename raised it (``errno.ENOSPC`` on a full disk).
            The temporary file is removed first, so nothing partial remains.
    """
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{os.getpid()}")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            _write_all(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    fsync_directory(path.parent)


def append_line(path: Path, line: bytes) -> None:
    """Append one newline-terminated line to ``path`` durably.

    The line is written with one ``write(2)`` call. If that write fails or is short (a
    full disk), the file is truncated back to its previous length before the error is
    raised, so no partial line stays behind.

    Raises:
        ValueError: If ``line`` does not end with exactly one newline.
        OSError: As the write or fsync raised it.
    """
    if not line.endswith(b"\n") or b"\n" in line[:-1]:
        raise ValueError("append_line expects one line ending with a newline")

    created = not path.exists()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        size_before = os.fstat(descriptor).st_size
        try:
            written = os.write(descriptor, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"short write of {written} of {len(line)} bytes")
            os.fsync(descriptor)
        except OSError:
            os.ftruncate(descriptor, size_before)
            os.fsync(descriptor)
            raise
    finally:
        os.close(descriptor)
    if created:
        fsync_directory(path.parent)


def repair_torn_tail(path: Path) -> bool:
    """Cut a last line that lacks its newline, left by a crash mid-append.

    Returns:
        True if the file was truncated, False if it was already whole or does not exist.
    """
    try:
        descriptor = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False

    try:
        size = os.fstat(descriptor).st_size
        if size == 0 or os.pread(descriptor, 1, size - 1) == b"\n":
            return False

        keep = _length_through_last_newline(descriptor, size)
        os.ftruncate(descriptor, keep)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    logger.warning("Removed a torn last line (%d bytes) from %s", size - keep, path)
    return True


def remove_stale_temp(directory: Path) -> int:
    """Delete temporary files a crash left in ``directory``; return how many."""
    removed = 0
    for temp in directory.glob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
            removed += 1
    if removed:
        fsync_directory(directory)
    return removed


def _length_through_last_newline(descriptor: int, size: int) -> int:
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK_BYTES)
        chunk = os.pread(descriptor, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        if written == 0:
            raise OSError(errno.ENOSPC, "write returned 0 bytes")
        view = view[written:]

"""One camera app per runtime directory, enforced by an exclusive ``flock``.

A second ``cadr-device run`` with the same runtime directory would overwrite the pid
file and remove it on exit, so ``cadr-device capture`` would lose the first app. The
lock is held on ``cadr-device.lock`` for the app's whole run, and the kernel drops it
when the process exits, even after a crash or SIGKILL.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from types import TracebackType

from cadr_device.errors import CadrError

logger = logging.getLogger(__name__)

LOCK_FILE_NAME = "cadr-device.lock"


class AlreadyRunningError(CadrError):
    """Another camera app already runs with the same runtime directory."""

    exit_code = 10


class InstanceLock:
    """Context manager holding the runtime directory's lock.

    Args:
        runtime_dir: The app's runtime directory (``runtime.directory``); created when
            missing.

    Raises:
        AlreadyRunningError: On entry, when another process holds the lock.
    """

    def __init__(self, runtime_dir: Path) -> None:
        self.path = runtime_dir / LOCK_FILE_NAME
        self._descriptor: int | None = None

    def __enter__(self) -> InstanceLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            # The pid file cannot be written either then, so 'cadr-device capture' is
            # already disabled and a second app cannot take over the first one's file.
            logger.warning("Running without the single-instance lock: cannot open %s (%s)",
                           self.path, e.strerror)
            return self
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(descriptor)
            raise AlreadyRunningError(
                f"{self.path}: another 'cadr-device run' is already running with the runtime "
                f"directory {self.path.parent}; stop it first (systemctl stop cadr-device), or "
                "pass a different --runtime-dir"
            ) from e
        self._descriptor = descriptor
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

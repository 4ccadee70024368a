"""Scanning a USB storage device: mount it read-only, install its packages, unmount it.

Mount, scan and unmount happen in one process because systemd gives each ``Exec*`` line
of a hardened unit its own mount namespace, so a mount made by ``ExecStartPre`` would not
be visible to ``ExecStart``.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from cadr_device.update.errors import StoreError
from cadr_device.update.install import ScanSummary, Updater

logger = logging.getLogger(__name__)

#: Read-only, and nothing on the stick can be executed, act as a device or gain privileges.
MOUNT_OPTIONS = "ro,nosuid,nodev,noexec"
MOUNT_TIMEOUT_S = 60.0


def scan_device(updater: Updater, device: Path, mount_dir: Path) -> ScanSummary:
    """Mount ``device`` read-only on ``mount_dir``, scan it, and unmount it again.

    Raises:
        StoreError: If the mount fails.

    """
    mount_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _run(["mount", "-o", MOUNT_OPTIONS, str(device), str(mount_dir)], f"mount {device}")
    logger.info("Mounted %s read-only on %s", device, mount_dir)
    try:
        return updater.scan(mount_dir)
    finally:
        try:
            _run(["umount", str(mount_dir)], f"unmount {mount_dir}")
        except StoreError as e:
            logger.error("%s", e)


def _run(argv: list[str], action: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=MOUNT_TIMEOUT_S,
                                check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StoreError(f"cannot {action}: {e}") from e
    if result.returncode != 0:
        raise StoreError(f"cannot {action}: {argv[0]} exited {result.returncode}: "
                         f"{result.stderr.strip()}")

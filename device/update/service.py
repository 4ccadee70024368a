"""Restarting the device service and waiting until it reports ready.

The default commands use systemd: ``systemctl restart cadr-device.service``, then
``systemctl is-active --quiet cadr-device.service`` polled until it succeeds. The device
service is ``Type=notify``, so systemd reports it active only after it sent READY=1
(camera, model and self-test up). Tests and laptops pass their own commands.
"""

from __future__ import annotations

import logging
import subprocess
import time

from cadr_device.update.config import ServiceSettings

logger = logging.getLogger(__name__)

_STDERR_TAIL_CHARS = 500


def restart_and_wait(settings: ServiceSettings) -> tuple[bool, str]:
    """Run the restart command, then poll the ready command until success or timeout.

    Returns:
        ``(True, "")`` when ready, else ``(False, reason)`` with the failing command's
        output or the timeout.

    """
    if settings.restart_command:
        ok, detail = _run(settings.restart_command, settings.restart_timeout_s)
        if not ok:
            return False, f"restart command failed: {detail}"
    if not settings.ready_command:
        return True, ""

    deadline = time.monotonic() + settings.ready_timeout_s
    last_detail = ""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, (f"service not ready within {settings.ready_timeout_s:g} s "
                           f"({last_detail or 'no output'})")
        ok, last_detail = _run(settings.ready_command, remaining)
        if ok:
            logger.info("Device service is ready")
            return True, ""
        time.sleep(min(settings.ready_poll_s, max(0.0, deadline - time.monotonic())))


def _run(argv: tuple[str, ...], timeout_s: float) -> tuple[bool, str]:
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s,
                                check=False)
    except subprocess.TimeoutExpired:
        return False, f"{argv[0]} timed out after {timeout_s:.0f} s"
    except OSError as e:
        return False, f"{argv[0]} could not start ({e.strerror})"
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-_STDERR_TAIL_CHARS:]
        return False, f"{argv[0]} exited {result.returncode}: {tail}"
    return True, ""

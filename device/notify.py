"""systemd notifications (sd_notify) over ``NOTIFY_SOCKET``, with the standard library only.

systemd passes the socket path in ``NOTIFY_SOCKET``; a name starting with ``@`` is an
abstract socket (the ``@`` stands for a leading NUL byte). ``WATCHDOG_USEC`` (and
``WATCHDOG_PID``, when set) enable the watchdog: the service must send ``WATCHDOG=1``
more often than every ``WATCHDOG_USEC`` microseconds, and this module pings at half that
interval, as sd_watchdog_enabled(3) recommends. Without ``NOTIFY_SOCKET`` every call is
a no-op, so the app runs the same outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

logger = logging.getLogger(__name__)

#: The watchdog is pinged at this fraction of ``WATCHDOG_USEC``.
WATCHDOG_FRACTION = 0.5

#: Longest STATUS= text sent, in characters; systemctl status shows one line.
MAX_STATUS_CHARS = 200


class Notifier:
    """Sends sd_notify datagrams to the socket systemd named, or does nothing without one."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_interval_s: float | None = None
        if watchdog_usec:
            self.watchdog_interval_s = watchdog_usec / 1_000_000 * WATCHDOG_FRACTION
        self._last_ping: float | None = None
        self._failures = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Build a notifier from ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        watchdog_usec: int | None = None
        raw_usec = env.get("WATCHDOG_USEC")
        watchdog_pid = env.get("WATCHDOG_PID")
        if raw_usec and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            try:
                watchdog_usec = int(raw_usec)
            except ValueError:
                logger.warning("Ignoring invalid WATCHDOG_USEC=%r; expected microseconds",
                               raw_usec)
        return cls(address, watchdog_usec)

    @property
    def enabled(self) -> bool:
        """Whether a notification socket is configured."""
        return self.address is not None

    def send(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; return whether it was sent.

        Errors are logged (the first and then every hundredth) and never raised, because
        a lost notification must not stop screening.
        """
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode("utf-8")
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(target)
                sock.sendall(message)
        except OSError as e:
            self._failures += 1
            if self._failures == 1 or self._failures % 100 == 0:
                logger.warning("sd_notify to %s failed (%s); %d failures so far",
                               self.address, e, self._failures)
            return False
        return True

    def ready(self, status: str) -> bool:
        """Tell systemd that start-up finished (READY=1) with a status line."""
        logger.info("Notifying systemd: ready (%s)", status)
        return self.send(READY="1", STATUS=status[:MAX_STATUS_CHARS])

    def status(self, text: str) -> bool:
        """Update the status line that ``systemctl status`` shows."""
        return self.send(STATUS=text[:MAX_STATUS_CHARS])

    def stopping(self) -> bool:
        """Tell systemd that the service is shutting down."""
        return self.send(STOPPING="1")

    def watchdog_due(self, now: float | None = None) -> bool:
        """Return whether half the watchdog interval has passed since the last ping."""
        if self.watchdog_interval_s is None:
            return False
        now = time.monotonic() if now is None else now
        return self._last_ping is None or now - self._last_ping >= self.watchdog_interval_s

    def ping_watchdog(self, now: float | None = None) -> bool:
        """Send WATCHDOG=1 when it is due; call this from the main loop on every step."""
        if not self.watchdog_due(now):
            return False
        self._last_ping = time.monotonic() if now is None else now
        return self.send(WATCHDOG="1")

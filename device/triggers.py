"""Capture triggers: the GPIO push button, Enter on a terminal, and ``cadr-device capture``.

Every trigger puts its name on one :class:`queue.SimpleQueue`, whose ``put`` is
reentrant and so safe from a signal handler and from gpiozero's callback thread. The
main loop drains it between frames. ``cadr-device capture`` sends SIGUSR1 to the PID in
the app's pid file under the runtime directory: no network socket is involved.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from cadr_device.errors import CadrError

logger = logging.getLogger(__name__)

PID_FILE_NAME = "cadr-device.pid"

#: Signal that ``cadr-device capture`` sends to the running app.
CAPTURE_SIGNAL = signal.SIGUSR1


class TriggerError(CadrError):
    """A capture request could not be delivered to the running app."""

    exit_code = 9


class TriggerQueue:
    """Trigger names waiting to be handled ("button", "keyboard", "signal", ...)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()

    def put(self, source: str) -> None:
        """Add a trigger; safe from signal handlers and other threads."""
        self._queue.put(source)

    def drain(self) -> list[str]:
        """Return and remove every waiting trigger."""
        sources = []
        while True:
            try:
                sources.append(self._queue.get_nowait())
            except queue.Empty:
                return sources


class GpioButton:
    """A momentary button between a GPIO pin and GND, read with gpiozero's internal pull-up."""

    def __init__(self, pin: int, bounce_s: float, triggers: TriggerQueue) -> None:
        self.pin = pin
        self.bounce_s = bounce_s
        self.triggers = triggers
        self._button: Any = None

    def start(self) -> bool:
        """Attach to the pin; return False (logged) when gpiozero or the pin is unavailable."""
        try:
            gpiozero = importlib.import_module("gpiozero")
        except ImportError as e:
            logger.warning("GPIO button disabled: gpiozero cannot be imported (%s)", e)
            return False
        try:
            self._button = gpiozero.Button(self.pin, pull_up=True,
                                           bounce_time=self.bounce_s or None)
        except Exception as e:  # noqa: BLE001 - gpiozero raises many pin-factory errors
            logger.warning("GPIO button on GPIO%d disabled: %s", self.pin, e)
            return False
        self._button.when_pressed = self._pressed
        logger.info("Capture button on GPIO%d (pull-up, bounce %.3f s)", self.pin, self.bounce_s)
        return True

    def _pressed(self) -> None:
        self.triggers.put("button")

    def stop(self) -> None:
        """Release the pin."""
        if self._button is not None:
            self._button.close()
            self._button = None


class KeyboardTrigger:
    """Enter on the controlling terminal triggers a capture; off when stdin is not a TTY."""

    def __init__(self, triggers: TriggerQueue, stream: TextIO | None = None) -> None:
        self.triggers = triggers
        self.stream = stream or sys.stdin
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start the reader thread; return False when the stream is not a terminal."""
        if not self.stream.isatty():
            logger.info("Keyboard trigger off: standard input is not a terminal")
            return False
        self._thread = threading.Thread(target=self._read, name="cadr-keyboard", daemon=True)
        self._thread.start()
        logger.info("Press Enter to capture")
        return True

    def _read(self) -> None:
        try:
            for _line in self.stream:
                self.triggers.put("keyboard")
        except (OSError, ValueError) as e:  # the terminal hung up or was closed
            logger.info("Keyboard trigger stopped: %s", e)


class SignalTrigger:
    """SIGUSR1 triggers a capture; the PID is published in a pid file for the capture command."""

    def __init__(self, triggers: TriggerQueue, runtime_dir: Path) -> None:
        self.triggers = triggers
        self.pid_path = runtime_dir / PID_FILE_NAME
        self._previous: Callable[[int, FrameType | None], Any] | int | None = None

    def start(self) -> bool:
        """Install the handler and write the pid file; return False if the file cannot be made."""
        self._previous = signal.signal(CAPTURE_SIGNAL, self._handle)
        try:
            self.pid_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.pid_path.with_name(self.pid_path.name + ".tmp")
            temporary.write_text(f"{os.getpid()}\n", encoding="ascii")
            temporary.replace(self.pid_path)
        except OSError as e:
            logger.warning("cadr-device capture disabled: cannot write %s (%s)", self.pid_path,
                           e.strerror)
            return False
        logger.info("Capture on SIGUSR1; pid file %s", self.pid_path)
        return True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.triggers.put("signal")

    def stop(self) -> None:
        """Restore the previous handler and remove the pid file if it is still ours."""
        if self._previous is not None:
            signal.signal(CAPTURE_SIGNAL, self._previous)
            self._previous = None
        with contextlib.suppress(OSError, ValueError):
            if int(self.pid_path.read_text(encoding="ascii").strip()) == os.getpid():
                self.pid_path.unlink()


def send_capture_request(runtime_dir: Path) -> int:
    """Send SIGUSR1 to the app whose PID is in ``runtime_dir``'s pid file; return the PID.

    Raises:
        TriggerError: When the pid file is missing or stale, or the process is not ours.
    """
    pid_path = runtime_dir / PID_FILE_NAME
    try:
        pid = int(pid_path.read_text(encoding="ascii").strip())
    except FileNotFoundError as e:
        raise TriggerError(f"{pid_path}: not found; is 'cadr-device run' running with this "
                           "runtime directory?") from e
    except (OSError, ValueError) as e:
        raise TriggerError(f"{pid_path}: cannot read a PID ({e})") from e

    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        arguments = cmdline.read_bytes().split(b"\0")
    except OSError as e:
        raise TriggerError(f"{pid_path}: process {pid} is not running (stale pid file); "
                           "restart the camera app") from e
    if not any(b"cadr" in argument for argument in arguments):
        raise TriggerError(f"{pid_path}: process {pid} is not a cadr-device process; "
                           "refusing to signal it")

    try:
        os.kill(pid, CAPTURE_SIGNAL)
    except OSError as e:
        raise TriggerError(f"cannot signal process {pid} ({e.strerror})") from e
    logger.info("Capture requested from process %d", pid)
    return pid

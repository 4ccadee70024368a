"""sd_notify over a real AF_UNIX datagram socket: READY, STATUS, WATCHDOG, abstract names."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cadr_device.notify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket at a file path, as systemd's NOTIFY_SOCKET is."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def received(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode("utf-8")
    return dict(line.split("=", 1) for line in data.splitlines())


def test_ready_and_status_sent(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    notifier = Notifier(address)

    assert notifier.ready("camera, model and self-test up")
    message = received(sock)

    assert message["READY"] == "1"
    assert message["STATUS"] == "camera, model and self-test up"


def test_abstract_socket_name() -> None:
    name = f"cadr-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": "@" + name})

        assert notifier.status("screening")
        assert received(sock) == {"STATUS": "screening"}


def test_watchdog_at_half_interval(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"})

    assert notifier.watchdog_interval_s == 2.0
    assert notifier.ping_watchdog(now=100.0)
    assert received(sock) == {"WATCHDOG": "1"}
    assert not notifier.ping_watchdog(now=101.9)
    assert notifier.ping_watchdog(now=102.0)
    assert received(sock) == {"WATCHDOG": "1"}


def test_watchdog_for_other_pid_is_off(listener: tuple[socket.socket, str]) -> None:
    _, address = listener
    notifier = Notifier.from_environment({
        "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000",
        "WATCHDOG_PID": str(os.getpid() + 1),
    })

    assert notifier.watchdog_interval_s is None
    assert not notifier.ping_watchdog(now=100.0)


def test_watchdog_for_own_pid_is_on(listener: tuple[socket.socket, str]) -> None:
    _, address = listener
    notifier = Notifier.from_environment({
        "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid()),
    })

    assert notifier.watchdog_interval_s == 0.5


def test_no_socket_is_noop() -> None:
    notifier = Notifier.from_environment({})

    assert not notifier.enabled
    assert not notifier.ready("ready")
    assert not notifier.ping_watchdog()


def test_missing_socket_is_logged_not_raised(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(str(tmp_path / "absent.sock"))

    assert not notifier.ready("ready")
    assert not notifier.status("again")
    warnings = [r for r in caplog.records if "sd_notify" in r.getMessage()]
    assert len(warnings) == 1


def test_invalid_watchdog_usec_ignored(listener: tuple[socket.socket, str]) -> None:
    _, address = listener
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "soon"})

    assert notifier.watchdog_interval_s is None


def test_long_status_is_cut(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener

    Notifier(address).status("x" * 1000)

    assert len(received(sock)["STATUS"]) == 200

"""systemd/cadr-device.service: systemd-analyze verify and the hardening it must keep."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "cadr-device.service"
INSTALLED_ENTRY_POINT = "/opt/cadr/venv/bin/cadr-device"


def directives() -> dict[str, list[str]]:
    """Return every ``Key=value`` of the unit, keys mapped to all their values in order."""
    values: dict[str, list[str]] = {}
    for raw_line in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if not line or line.startswith(("#", "[")):
            continue
        key, _, value = line.partition("=")
        values.setdefault(key, []).append(value)
    return values


def test_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    text = UNIT.read_text(encoding="utf-8")
    assert INSTALLED_ENTRY_POINT in text
    # verify checks that ExecStart exists, so point it at this interpreter.
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(INSTALLED_ENTRY_POINT, f"{sys.executable} -m cadr_device.cli"),
                    encoding="utf-8")

    completed = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                               timeout=60, check=False)

    assert completed.returncode == 0, completed.stderr
    about_unit = [line for line in completed.stderr.splitlines() if UNIT.name in line]
    assert about_unit == []


def test_unit_parses_as_ini() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(UNIT.read_text(encoding="utf-8"))

    assert parser.sections() == ["Unit", "Service", "Install"]


def test_notify_and_watchdog() -> None:
    unit = directives()

    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert int(unit["WatchdogSec"][0]) > 0
    assert unit["Restart"] == ["on-failure"]


def test_entry_point_run_directly() -> None:
    unit = directives()

    assert unit["ExecStart"] == [f"{INSTALLED_ENTRY_POINT} run --config /etc/cadr/device.yaml"]


def test_after_update_recovery() -> None:
    unit = directives()

    assert "cadr-update-recover.service" in unit["After"][0].split()


@pytest.mark.parametrize(("key", "value"), [
    ("PrivateNetwork", "yes"),
    ("User", "cadr"),
    ("ProtectSystem", "strict"),
    ("ReadWritePaths", "/var/lib/cadr/records /var/lib/cadr/accel"),
    ("NoNewPrivileges", "yes"),
    ("DevicePolicy", "closed"),
    ("SupplementaryGroups", "video gpio render plugdev"),
    ("RuntimeDirectory", "cadr"),
])
def test_hardening(key: str, value: str) -> None:
    assert directives()[key] == [value]


def test_devices_camera_gpio_display_tpu_only() -> None:
    allowed = {value.split()[0] for value in directives()["DeviceAllow"]}

    assert allowed == {"char-video4linux", "char-media", "char-dma_heap", "char-gpiochip",
                       "char-drm", "char-usb_device", "char-apex"}


def test_only_unix_sockets() -> None:
    families = directives()["RestrictAddressFamilies"][0].split()

    assert "AF_INET" not in families
    assert "AF_INET6" not in families
    assert "AF_UNIX" in families

"""The update units: ``systemd-analyze verify`` passes and every command parses as the CLI."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from cadr_device.update.cli import build_parser

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
INSTALLED_BINARY = "/opt/cadr/venv/bin/cadr-update"
UNITS = ("cadr-update.service", "cadr-update.path", "cadr-update-recover.service",
         "cadr-update-usb@.service")
SERVICES = ("cadr-update.service", "cadr-update-recover.service", "cadr-update-usb@.service")


def unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (SYSTEMD_DIR / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                    reason="systemd-analyze not installed (apt package systemd)")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify requires ExecStart binaries to exist, so the copies point at a stand-in.
    stand_in = tmp_path / "cadr-update"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    for name in UNITS:
        text = (SYSTEMD_DIR / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace(INSTALLED_BINARY, str(stand_in)))

    units = [str(tmp_path / name) for name in UNITS if "@" not in name]
    units.append(str(tmp_path / "cadr-update-usb@sda1.service"))
    result = subprocess.run([str(SYSTEMD_ANALYZE), "verify", *units], capture_output=True,
                            text=True, timeout=120, check=False, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@pytest.mark.parametrize("name", SERVICES)
def test_exec_start_parses_as_cli(name: str) -> None:
    exec_start = unit_settings(name)["ExecStart"]
    argv = shlex.split(exec_start[0].replace("%I", "sda1").replace("%i", "sda1"))

    assert argv[0] == INSTALLED_BINARY
    args = build_parser().parse_args(argv[1:])
    assert args.root == Path("/var/lib/cadr")
    assert args.keys is None


@pytest.mark.parametrize("name", SERVICES)
def test_services_are_hardened(name: str) -> None:
    settings = unit_settings(name)

    assert settings["ProtectSystem"] == ["strict"]
    assert settings["ReadWritePaths"] == ["/var/lib/cadr"]
    assert settings["PrivateNetwork"] == ["yes"]
    assert settings["NoNewPrivileges"] == ["yes"]
    assert settings["Type"] == ["oneshot"]


def test_scans_accept_nothing_newer() -> None:
    for name in ("cadr-update.service", "cadr-update-usb@.service"):
        assert unit_settings(name)["SuccessExitStatus"] == ["11"]


def test_recover_runs_before_device_service() -> None:
    settings = unit_settings("cadr-update-recover.service")

    assert "cadr-device.service" in settings["Before"][0].split()
    assert settings["RemainAfterExit"] == ["yes"]
    assert "recover" in shlex.split(settings["ExecStart"][0])


def test_path_unit_watches_inbox() -> None:
    settings = unit_settings("cadr-update.path")
    service = unit_settings("cadr-update.service")

    assert settings["PathExistsGlob"] == ["/var/lib/cadr/inbox/*.cadrpkg"]
    assert settings["Unit"] == ["cadr-update.service"]
    argv = shlex.split(service["ExecStart"][0])
    assert argv[argv.index("scan") + 1] == "/var/lib/cadr/inbox"
    assert "--archive" in argv


def test_udev_rule_starts_usb_template() -> None:
    rule = (SYSTEMD_DIR / "99-cadr-usb.rules").read_text(encoding="utf-8")
    lines = [line for line in rule.splitlines() if line and not line.startswith("#")]

    assert len(lines) == 1
    assert 'ENV{ID_BUS}=="usb"' in lines[0]
    assert 'ACTION=="add"' in lines[0]
    service = re.search(r'ENV\{SYSTEMD_WANTS\}\+="([^"]+)"', lines[0])
    assert service is not None
    assert service.group(1) == "cadr-update-usb@%k.service"
    assert (SYSTEMD_DIR / "cadr-update-usb@.service").is_file()

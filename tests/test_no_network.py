"""The device app opens no network socket: runs under an audit hook that rejects AF_INET(6).

Each run is a real subprocess of ``cadr-device`` whose first act is ``sys.addaudithook``
with a hook that fails on any IPv4/IPv6 socket creation, bind or connect and on any name
lookup (``socket.getaddrinfo``, ``socket.gethostbyname``). AF_UNIX stays allowed, because
sd_notify uses it. The hook records what it saw in a file, so a caught exception inside
the app cannot hide a violation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from camera_support import FAKES, base_sections, record_files, write_config, write_scenes

pytestmark = pytest.mark.slow

RUNNER = '''
import os
import socket
import sys

VIOLATIONS = os.environ["CADR_NETWORK_LOG"]
NETWORK_FAMILIES = {socket.AF_INET, socket.AF_INET6}
LOOKUPS = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
           "socket.getnameinfo"}


def family_of(event, args):
    if event == "socket.__new__":
        return args[1]
    sock = args[0]
    return getattr(sock, "family", None)


def hook(event, args):
    network = False
    if event in LOOKUPS:
        network = True
    elif event in ("socket.__new__", "socket.bind", "socket.connect", "socket.sendto"):
        network = family_of(event, args) in NETWORK_FAMILIES
    if network:
        with open(VIOLATIONS, "a", encoding="utf-8") as log:
            log.write(f"{event} {args!r}\\n")
        raise RuntimeError(f"network access in the device app: {event}")


sys.addaudithook(hook)

if os.environ.get("CADR_QUEUE_CAPTURE") == "1":
    import cadr_device.triggers as triggers

    original_init = triggers.TriggerQueue.__init__

    def queued_init(self):
        original_init(self)
        self.put("test")

    triggers.TriggerQueue.__init__ = queued_init

from cadr_device.cli import main

sys.exit(main(sys.argv[1:]))
'''


def run_guarded(tmp_path: Path, argv: list[str], extra_env: dict[str, str]) -> tuple[Any, Path]:
    runner = tmp_path / "guarded_runner.py"
    runner.write_text(RUNNER, encoding="utf-8")
    violations = tmp_path / "network.log"
    env = {**os.environ, "CADR_NETWORK_LOG": str(violations), **extra_env}
    env.pop("NOTIFY_SOCKET", None)
    completed = subprocess.run([sys.executable, str(runner), *argv], env=env,
                               capture_output=True, text=True, timeout=300, check=False)
    return completed, violations


def test_hook_catches_inet_socket(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n")
    runner = tmp_path / "guarded_runner.py"
    app_start = "from cadr_device.cli import main\n\nsys.exit(main(sys.argv[1:]))"
    runner.write_text(RUNNER.replace(app_start, f"exec(open({str(probe)!r}).read())"),
                      encoding="utf-8")
    violations = tmp_path / "network.log"

    completed = subprocess.run([sys.executable, str(runner)], capture_output=True, text=True,
                               env={**os.environ, "CADR_NETWORK_LOG": str(violations)},
                               timeout=60, check=False)

    assert completed.returncode != 0
    assert "socket.__new__" in violations.read_text(encoding="utf-8")


def test_replay_app_opens_no_network_socket(tmp_path: Path, tiny_bundle: Any) -> None:
    scenes = write_scenes(tmp_path / "scenes", count=2)
    config = write_config(tmp_path / "device.yaml",
                          base_sections(tmp_path, tiny_bundle.bundle, tiny_bundle.key_dir))

    completed, violations = run_guarded(tmp_path, [
        "run", "--config", str(config), "--replay", str(scenes),
        "--overlay-dir", str(tmp_path / "png")], {"NOTIFY_SOCKET": ""})

    assert completed.returncode == 0, completed.stderr
    assert not violations.exists(), violations.read_text(encoding="utf-8")
    assert len(record_files(tmp_path / "records")) == 2


def test_camera_app_opens_no_network_socket(tmp_path: Path, tiny_bundle: Any) -> None:
    sections = base_sections(tmp_path, tiny_bundle.bundle, tiny_bundle.key_dir)
    sections["camera"] = {"preview_size": [640, 480], "frame_rate_hz": 60.0}
    sections["live"] = {"enabled": True}
    sections["trigger"] = {"keyboard": False, "gpio_pin": 17}
    config = write_config(tmp_path / "device.yaml", sections)
    python_path = os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")])

    completed, violations = run_guarded(tmp_path, [
        "run", "--config", str(config), "--max-frames", "5"],
        {"PYTHONPATH": python_path, "CADR_QUEUE_CAPTURE": "1"})

    assert completed.returncode == 0, completed.stderr
    assert not violations.exists(), violations.read_text(encoding="utf-8")
    assert "Capture button on GPIO17" in completed.stderr
    records = [json.loads(p.read_text()) for p in record_files(tmp_path / "records")]
    assert [r["status"] for r in records] == ["ok"]

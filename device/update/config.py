"""Limits and settings of the updater, as frozen dataclasses so a run cannot change them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024

#: Default install root on a device.
DEFAULT_ROOT = Path("/var/lib/cadr")

#: Systemd unit of the camera app, restarted after a switch.
DEVICE_SERVICE = "cadr-device.service"


@dataclass(frozen=True)
class PackageLimits:
    """Upper bounds on what a package may contain; anything larger is rejected unread.

    The defaults leave room for an int8 model of a few tens of MB, its Edge TPU and IMX500
    variants, golden inputs and report images.
    """

    max_member_bytes: int = 256 * MIB
    max_total_bytes: int = 512 * MIB
    max_members: int = 256
    max_manifest_bytes: int = 1 * MIB
    max_signature_bytes: int = 4096
    max_name_bytes: int = 200


@dataclass(frozen=True)
class ServiceSettings:
    """How to restart the device service and decide that it is ready.

    ``restart_command`` runs once; ``ready_command`` runs every ``ready_poll_s`` seconds
    until it exits 0 or ``ready_timeout_s`` seconds have passed. Empty commands skip the
    step (``--no-restart``).
    """

    restart_command: tuple[str, ...] = ("systemctl", "restart", DEVICE_SERVICE)
    ready_command: tuple[str, ...] = ("systemctl", "is-active", "--quiet", DEVICE_SERVICE)
    restart_timeout_s: float = 120.0
    ready_timeout_s: float = 120.0
    ready_poll_s: float = 1.0


@dataclass(frozen=True)
class UpdateConfig:
    """Everything one ``cadr-update`` run needs."""

    root: Path = DEFAULT_ROOT
    key_dir: Path | None = None
    """Trusted key directory; None means ``cadr_device.signing.default_key_dir()``, the
    rule the camera app follows (``/etc/cadr/keys`` if it exists, else the shipped keys)."""
    keep: int = 3
    allow_downgrade: bool = False
    selftest_timeout_s: float = 300.0
    venv_timeout_s: float = 300.0
    """Time limit for ``python -m venv`` of an app install, in seconds."""
    pip_timeout_s: float = 900.0
    """Time limit for the offline ``pip install`` of an app install, in seconds."""
    limits: PackageLimits = field(default_factory=PackageLimits)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    accel_state_dir: Path | None = None
    """Cache of packaged accelerator networks that the camera app reads; None means
    ``$CADR_STATE_DIR``, else ``ROOT/accel`` (``/var/lib/cadr/accel`` on a device)."""

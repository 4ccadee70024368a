"""Update errors, each with the exit code ``cadr-update`` returns for it.

The codes are part of the interface: the systemd units and ``docs/updates.md`` use them.
"""

from __future__ import annotations

from pathlib import Path

from cadr_device.errors import CadrError

#: Exit code of a run that installed, rolled back or recovered as requested.
EXIT_OK = 0

#: Exit code of an invalid command line (argparse's own code).
EXIT_USAGE = 2


class UpdateError(CadrError):
    """Base class of every update failure; ``reason`` is a short audit-log keyword."""

    exit_code = 1
    reason = "failed"


class PackageError(UpdateError):
    """A package is malformed, unsafe, unsigned, tampered with or signed by an unknown key."""

    exit_code = 10
    reason = "rejected"

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = Path(path)
        self.detail = message
        super().__init__(f"{self.path}: {message}")


class NotNewerError(UpdateError):
    """The package's bundle version is not newer than the running one."""

    exit_code = 11
    reason = "not_newer"


class IncompatibleError(UpdateError):
    """The bundle needs a newer app than the one installed."""

    exit_code = 12
    reason = "incompatible_app"


class SelfTestFailedError(UpdateError):
    """The staged bundle did not pass its golden self-test with this device's runtime."""

    exit_code = 13
    reason = "selftest_failed"


class ServiceNotReadyError(UpdateError):
    """The device service did not become ready after the switch, so the update was undone."""

    exit_code = 14
    reason = "service_not_ready"


class LockedError(UpdateError):
    """Another ``cadr-update`` process holds the install root's lock."""

    exit_code = 15
    reason = "locked"


class StoreError(UpdateError):
    """The install root cannot be read or written (missing, read-only, disk full)."""

    exit_code = 16
    reason = "store_error"


class NoBundleError(UpdateError):
    """No complete, verified bundle is installed, so the device has nothing to run."""

    exit_code = 17
    reason = "no_bundle"


class KeyDirectoryError(UpdateError):
    """The trusted key directory is missing or contains no valid Ed25519 public key."""

    exit_code = 19
    reason = "no_trusted_keys"


class NoRollbackTargetError(UpdateError):
    """``rollback`` found no verified previous bundle to switch back to."""

    exit_code = 18
    reason = "no_rollback_target"


class AppBuildError(UpdateError):
    """The new app's virtual environment could not be created or pip could not install it."""

    exit_code = 20
    reason = "app_build_failed"

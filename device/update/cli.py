"""``cadr-update``: install signed model and app packages, roll back and recover on a device."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from cadr_device.update.config import (
    DEFAULT_ROOT,
    PackageLimits,
    ServiceSettings,
    UpdateConfig,
)
from cadr_device.update.errors import EXIT_OK, NotNewerError, PackageError, UpdateError
from cadr_device.update.install import ScanSummary, Updater
from cadr_device.update.usb import scan_device

logger = logging.getLogger(__name__)

EXIT_CODES_HELP = """\
exit codes:
  0   installed, rolled back or recovered; status printed
  2   invalid command line
  10  package rejected: unsafe, malformed, unsigned, tampered or untrusted signer
  11  nothing new: the package is not newer than the running bundle (scan: no
      package was newer); nothing changed
  12  the bundle needs a newer cadr app
  13  the bundle failed its golden self-test on this device
  14  the device service did not become ready; the previous bundle was restored
  15  another cadr-update is running
  16  the install root cannot be read or written (missing, read-only, disk full)
  17  recover found no verified bundle: the device has nothing to run
  18  rollback found no verified previous bundle
  19  the trusted key directory is missing or contains no valid public key
  20  the new app's venv could not be built (venv or pip failed); nothing changed
scan and scan-device return the code of the first failed package, else 0 when they
installed one, else 11.
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``cadr-update``."""
    parser = argparse.ArgumentParser(
        prog="cadr-update", description="Install signed cadr model and app packages (.cadrpkg).",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help="install root holding bundles/, update/ and inbox/ "
                        "(default: %(default)s)")
    parser.add_argument("--keys", type=Path, default=None,
                        help="directory of trusted *.pub keys (default: /etc/cadr/keys if "
                        "it exists, else the keys shipped with the app, as cadr-device does)")
    parser.add_argument("--keep", type=int, default=3,
                        help="installed bundles to keep, besides current and previous "
                        "(default: %(default)s)")
    parser.add_argument("--allow-downgrade", action="store_true",
                        help="install a version older than the running one (service "
                        "technicians only; logged in the audit log)")
    parser.add_argument("--restart-command", default=None,
                        help="command that restarts the device service, split like a shell "
                        "word list (default: systemctl restart cadr-device.service)")
    parser.add_argument("--ready-command", default=None,
                        help="command polled until it exits 0 once the service is ready "
                        "(default: systemctl is-active --quiet cadr-device.service)")
    parser.add_argument("--ready-timeout", type=float, default=120.0,
                        help="seconds to wait for the service to become ready "
                        "(default: %(default)s)")
    parser.add_argument("--no-restart", action="store_true",
                        help="switch bundles without restarting or waiting for any service")
    parser.add_argument("--selftest-timeout", type=float, default=300.0,
                        help="seconds allowed for the golden self-test (default: %(default)s)")
    parser.add_argument("--pip-timeout", type=float, default=900.0,
                        help="seconds allowed for pip to install an app package's wheels "
                        "(default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")

    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="verify and install one package")
    install.add_argument("package", type=Path,
                         help="a NAME-VERSION.cadrpkg or cadr-app-VERSION.cadrpkg file")
    scan = commands.add_parser("scan", help="install every *.cadrpkg in a directory, oldest "
                               "version first")
    scan.add_argument("directory", type=Path, help="directory to scan (inbox or USB stick)")
    scan.add_argument("--archive", type=Path, default=None,
                      help="move each installed or skipped package here and each failed "
                      "entry to ARCHIVE/rejected, so a watched inbox empties")
    device = commands.add_parser("scan-device", help="mount a USB storage device read-only, "
                                 "scan it and unmount it (used by cadr-update-usb@.service)")
    device.add_argument("device", type=Path, help="block device, for example /dev/sda1")
    device.add_argument("--mount-dir", type=Path, required=True,
                        help="empty directory to mount it on")
    commands.add_parser("status", help="print the current bundle and app, installed versions "
                        "and the last attempt as JSON")
    rollback = commands.add_parser("rollback", help="switch back to the previous bundle")
    rollback.add_argument("--app", action="store_true",
                          help="switch back to the previous app venv instead")
    recover = commands.add_parser("recover", help="finish or undo an interrupted install "
                                  "(run at boot before cadr-device.service)")
    recover.add_argument("--restart", action="store_true",
                         help="restart the device service if recovery changed the bundle")
    return parser


def config_from_args(args: argparse.Namespace) -> UpdateConfig:
    """Build the run's configuration from parsed arguments."""
    defaults = ServiceSettings()
    restart = defaults.restart_command
    ready = defaults.ready_command
    if args.restart_command is not None:
        restart = tuple(shlex.split(args.restart_command))
    if args.ready_command is not None:
        ready = tuple(shlex.split(args.ready_command))
    if args.no_restart:
        restart, ready = (), ()
    service = ServiceSettings(restart_command=restart, ready_command=ready,
                              ready_timeout_s=args.ready_timeout)
    return UpdateConfig(root=args.root, key_dir=args.keys, keep=args.keep,
                        allow_downgrade=args.allow_downgrade,
                        selftest_timeout_s=args.selftest_timeout,
                        pip_timeout_s=args.pip_timeout,
                        limits=PackageLimits(), service=service)


def main(argv: list[str] | None = None) -> int:
    """Run ``cadr-update`` and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.keep < 1:
        parser.error("--keep must be at least 1")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    updater = Updater(config_from_args(args))

    try:
        if args.command == "install":
            updater.install(args.package)
        elif args.command == "scan":
            return _scan_exit_code(updater.scan(args.directory, args.archive))
        elif args.command == "scan-device":
            return _scan_exit_code(scan_device(updater, args.device, args.mount_dir))
        elif args.command == "rollback":
            updater.rollback(app=args.app)
        elif args.command == "recover":
            updater.recover(restart=args.restart)
        else:
            sys.stdout.write(json.dumps(updater.status(), indent=2) + "\n")
    except PackageError as e:
        # The installer already logged the rejection and its reason as a WARNING.
        logger.error("Nothing was installed from %s; get a fresh copy of the package from "
                     "its maker, or rebuild it with cadr-package pack", e.path)
        return e.exit_code
    except UpdateError as e:
        logger.error("%s", e)
        return e.exit_code
    return EXIT_OK


def _scan_exit_code(summary: ScanSummary) -> int:
    logger.info("Scan finished: %d installed, %d skipped as not newer, %d failed",
                len(summary.installed), len(summary.skipped), len(summary.failed))
    if summary.failed:
        return summary.failed[0][1].exit_code
    if summary.installed:
        return EXIT_OK
    return NotNewerError.exit_code


if __name__ == "__main__":
    sys.exit(main())

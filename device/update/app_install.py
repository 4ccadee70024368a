"""Installing an app package: a new versioned virtual environment built from its wheelhouse.

Steps, after the package verified and was found newer than ``app/current``:

1. Check that the wheels fit this device (CPU, CPython version, glibc) and that the new app
   reads the installed bundle's ``schema_version``.
2. Copy the wheelhouse into staging, then move it to ``app/cadr-VERSION/wheels``.
3. ``python -m venv --system-site-packages app/cadr-VERSION/venv``: picamera2 and
   libcamera come from the system's apt packages.
4. ``pip install --no-index --find-links WHEELS --require-hashes -r requirements.txt``.
5. Run ``python -m cadr_device.update.selftest_cli`` with the new venv's Python: it must
   import that app version, load a runtime and pass the current bundle's golden self-test.
6. Delete the wheels and write ``installed.json``, the mark of a complete app install.

:class:`~cadr_device.update.install.Updater` then switches ``app/current`` with the same
journal, restart, ready wait and rollback as for bundles. Venvs are not relocatable, so
the venv is built in its final directory, which the journal names for ``recover`` to delete.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from cadr_device.bundle import read_manifest_text
from cadr_device.errors import BundleError
from cadr_device.manifest import MANIFEST_NAME
from cadr_device.update.audit import utc_now
from cadr_device.update.errors import AppBuildError, IncompatibleError, SelfTestFailedError
from cadr_device.update.faults import crash_point
from cadr_device.update.fsutil import write_atomic
from cadr_device.update.journal import (
    STEP_SELFTEST_PASSED,
    STEP_STAGED,
    STEP_STAGING,
    JournalEntry,
)
from cadr_device.update.package import (
    APP_REQUIREMENTS_NAME,
    AppRequirements,
    VerifiedPackage,
    extract_package,
)
from cadr_device.update.store import AREA_APP, PREVIOUS_LINK, Store

if TYPE_CHECKING:
    from cadr_device.update.install import Updater

logger = logging.getLogger(__name__)

#: File written into ``app/cadr-VERSION/`` once the venv passed its self-check.
COMPLETE_MARK = "installed.json"
VENV_DIR = "venv"
WHEELS_DIR = "wheels"

_OUTPUT_TAIL_CHARS = 800


def venv_python(app_dir: Path) -> Path:
    """Return the Python interpreter of the venv in an app install directory."""
    return app_dir / VENV_DIR / "bin" / "python"


def is_complete(app_dir: Path) -> bool:
    """Return whether an app install directory contains a venv that passed its self-check."""
    return (app_dir / COMPLETE_MARK).is_file() and venv_python(app_dir).exists()


def installed_app_version(store: Store) -> str | None:
    """Return the app version ``app/current`` names, or None without an app install."""
    current = store.current()
    if current is None:
        return None
    return current.rsplit("-", 1)[1]


class AppInstaller:
    """Builds and checks a new app venv for an :class:`Updater`, before the switch."""

    def __init__(self, updater: Updater) -> None:
        self.updater = updater
        self.store = Store(updater.config.root, AREA_APP)

    def check_compatible(self, verified: VerifiedPackage) -> None:
        """Reject an app whose wheels do not fit this device or that cannot read the bundle.

        Raises:
            IncompatibleError: Naming the mismatch.

        """
        requirements = _requirements(verified)
        machine = platform.machine()
        if requirements.machine != machine:
            raise IncompatibleError(f"{verified.path}: app wheels are for {requirements.machine}"
                                    f", this device is {machine}; use the package built for "
                                    f"{machine}")
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        if requirements.python != python:
            raise IncompatibleError(f"{verified.path}: app wheels are for Python "
                                    f"{requirements.python}, this device runs {python}; use "
                                    f"the package built for Python {python}")
        glibc = _glibc_version()
        if glibc is not None and glibc < requirements.min_glibc:
            raise IncompatibleError(f"{verified.path}: app wheels need glibc "
                                    f"{requirements.min_glibc[0]}.{requirements.min_glibc[1]}, "
                                    f"this device has {glibc[0]}.{glibc[1]}")

        schema = self._current_bundle_schema()
        if schema is not None and not requirements.reads_schema(schema):
            raise IncompatibleError(
                f"{verified.path}: app {verified.manifest.bundle_version} reads bundle schema "
                f"{requirements.bundle_schema_min} to {requirements.bundle_schema_max}, the "
                f"installed bundle has schema {schema}; install a matching bundle first")

    def _current_bundle_schema(self) -> int | None:
        current = self.updater.store.current()
        if current is None:
            return None
        manifest_path = self.updater.store.bundles / current / MANIFEST_NAME
        try:
            fields = yaml.safe_load(read_manifest_text(manifest_path))
        except (BundleError, yaml.YAMLError) as e:
            raise IncompatibleError(f"{manifest_path}: cannot read the installed bundle's "
                                    f"schema_version ({e}); run cadr-update recover") from e
        schema = fields.get("schema_version") if isinstance(fields, dict) else None
        if not isinstance(schema, int):
            raise IncompatibleError(f"{manifest_path}: schema_version is missing")
        return schema

    def build(self, verified: VerifiedPackage) -> str:
        """Build and self-check ``app/cadr-VERSION``; return its directory name.

        On failure everything the build wrote is deleted and the journal cleared.

        Raises:
            AppBuildError: If venv or pip fails or times out.
            SelfTestFailedError: If the new app fails its self-check.
            PackageError: If the package changed since verification.

        """
        updater = self.updater
        app_id = verified.manifest.bundle_id
        target = self.store.bundles / app_id
        entry = JournalEntry(
            operation="install", step=STEP_STAGING, package=verified.path.name,
            target=app_id, previous=self.store.current(), old_previous=self.store.previous(),
            started=utc_now(), area=AREA_APP,
        )
        updater.journal.write(entry)
        crash_point(STEP_STAGING)

        staging = updater.store.new_staging_dir()
        placed = False
        try:
            wheels = extract_package(verified, staging, updater.config.limits)
            crash_point("extracted")

            if self.store.previous() == app_id:
                self.store.set_link(PREVIOUS_LINK, None)
            self.store.remove_tree(target)
            target.mkdir(mode=0o755)
            placed = True
            os.rename(wheels, target / WHEELS_DIR)
            updater.store.remove_tree(staging)
            updater.journal.write(replace(entry, step=STEP_STAGED))
            crash_point(STEP_STAGED)

            self._create_venv(target)
            crash_point("venv_created")
            self._pip_install(target)
            crash_point("pip_installed")
            self._self_check(target, verified.manifest.bundle_version)

            self.store.remove_tree(target / WHEELS_DIR)
            mark = {"app_version": verified.manifest.bundle_version,
                    "package": verified.path.name, "signer": verified.signer.key_id,
                    "installed": utc_now()}
            write_atomic(target / COMPLETE_MARK, (json.dumps(mark, indent=2) + "\n").encode())
        except BaseException:
            updater.store.remove_tree(staging)
            if placed and app_id != entry.previous:
                self.store.remove_tree(target)
            if self.store.previous() == app_id:
                self.store.set_link(PREVIOUS_LINK, None)
            updater.journal.clear()
            raise

        updater.journal.write(replace(entry, step=STEP_SELFTEST_PASSED))
        crash_point(STEP_SELFTEST_PASSED)
        return app_id

    def _create_venv(self, target: Path) -> None:
        # sys.executable is the running app's venv Python; venv builds the new environment
        # on the same base interpreter, so the system site-packages are the apt ones.
        argv = [sys.executable, "-m", "venv", "--system-site-packages", str(target / VENV_DIR)]
        self._run(argv, target, self.updater.config.venv_timeout_s, "creating the venv",
                  AppBuildError)

    def _pip_install(self, target: Path) -> None:
        wheels = target / WHEELS_DIR
        argv = [str(venv_python(target)), "-m", "pip", "install", "--no-index",
                "--disable-pip-version-check", "--no-input", "--find-links", str(wheels),
                "--require-hashes", "-r", str(wheels / APP_REQUIREMENTS_NAME)]
        self._run(argv, target, self.updater.config.pip_timeout_s, "pip install",
                  AppBuildError)

    def _self_check(self, target: Path, version: str) -> None:
        argv = [str(venv_python(target)), "-m", "cadr_device.update.selftest_cli"]
        current_bundle = self.updater.store.current()
        if current_bundle is not None:
            argv.append(str(self.updater.store.bundles / current_bundle))
        else:
            logger.warning("No bundle is installed; checking app %s without a golden self-test",
                           version)
        argv += ["--keys", str(self.updater.key_dir), "--app-version", version]
        self._run(argv, target, self.updater.config.selftest_timeout_s, "self-check",
                  SelfTestFailedError)
        logger.info("App %s passed its self-check", version)

    @staticmethod
    def _run(argv: list[str], cwd: Path, timeout_s: float, step: str,
             error: type[AppBuildError] | type[SelfTestFailedError]) -> None:
        # python -m puts the working directory first on sys.path, so it is the app directory
        # rather than wherever cadr-update was started.
        logger.info("App install step %s: %s", step, " ".join(argv))
        try:
            result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                                    timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            raise error(f"{cwd}: {step} timed out after {timeout_s:g} s") from e
        except OSError as e:
            raise error(f"{cwd}: {step} could not start {argv[0]} ({e.strerror})") from e
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip()[-_OUTPUT_TAIL_CHARS:]
            raise error(f"{cwd}: {step} failed with exit code {result.returncode}: {tail}")


def _requirements(verified: VerifiedPackage) -> AppRequirements:
    requirements = verified.manifest.app
    if requirements is None:
        raise ValueError(f"{verified.path} is not an app package")
    return requirements


def _glibc_version() -> tuple[int, int] | None:
    """Return this system's glibc version as ``(major, minor)``, or None on another libc."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return None
    parts = text.removeprefix("glibc ").split(".")
    if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]), int(parts[1])

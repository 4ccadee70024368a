"""The install, rollback and recovery flows of ``cadr-update``.

Install steps:

1. Verify the package.
2. Reject a version that is not newer, unless downgrades are allowed.
3. Check app compatibility.
4. Extract into a staging directory, verify the bundle with
   :func:`cadr_device.bundle.load_bundle` and move it to ``bundles/NAME-VERSION``.
5. Run the golden self-test in a subprocess with the app's runtime.
6. Package the bundle's IMX500 network with ``imx500-package`` when the bundle has one.
   A missing or failing packager does not stop the install: the audit record states that
   the device keeps the CPU model and why.
7. Switch ``current``, restart the device service and wait until it is ready, or switch
   back on failure.

An app package replaces steps 3 to 5 with :class:`~cadr_device.update.app_install.AppInstaller`
(a new venv under ``app/``) and then switches ``app/current`` the same way.

The journal records each step before it starts, so :meth:`Updater.recover` can undo a
half-done install after a power cut. Anything short of ``committed`` returns to the old
bundle.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cadr_device
from cadr_device.accel import imx500
from cadr_device.accel.select import STATE_DIR_VARIABLE
from cadr_device.accel.status import AcceleratorUnavailable
from cadr_device.bundle import load_bundle
from cadr_device.errors import BundleError
from cadr_device.signing import Keyring, default_key_dir
from cadr_device.update.app_install import AppInstaller, installed_app_version, is_complete
from cadr_device.update.audit import AuditLog, utc_now
from cadr_device.update.config import UpdateConfig
from cadr_device.update.errors import (
    IncompatibleError,
    KeyDirectoryError,
    NoBundleError,
    NoRollbackTargetError,
    NotNewerError,
    PackageError,
    SelfTestFailedError,
    ServiceNotReadyError,
    StoreError,
    UpdateError,
)
from cadr_device.update.faults import crash_point
from cadr_device.update.journal import (
    STEP_COMMITTED,
    STEP_ROLLING_BACK,
    STEP_SELFTEST_PASSED,
    STEP_STAGED,
    STEP_STAGING,
    STEP_SWITCHED,
    Journal,
    JournalEntry,
)
from cadr_device.update.package import (
    KIND_APP,
    PACKAGE_SUFFIX,
    VerifiedPackage,
    extract_package,
    read_claims,
    read_package_identity,
    verify_package,
)
from cadr_device.update.service import restart_and_wait
from cadr_device.update.store import (
    AREA_APP,
    CURRENT_LINK,
    PREVIOUS_LINK,
    Store,
    bundle_version,
)
from cadr_device.update.versions import parse_version

logger = logging.getLogger(__name__)

_SELFTEST_OUTPUT_TAIL_CHARS = 800

#: Folder under a scan's ``--archive`` directory that receives every failed inbox entry.
REJECTED_ARCHIVE_DIR = "rejected"


@dataclass
class ScanSummary:
    """Outcome of a scan, by package file."""

    installed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, UpdateError]] = field(default_factory=list)


class Updater:
    """Installs, rolls back and recovers bundles under one install root."""

    def __init__(self, config: UpdateConfig) -> None:
        self.config = config
        self.store = Store(config.root)
        self.journal = Journal(self.store.journal_path)
        self.audit = AuditLog(self.store.audit_path)
        self.apps = AppInstaller(self)
        self._keyring: Keyring | None = None

    @property
    def keyring(self) -> Keyring:
        """The trusted keys, read on first use.

        Raises:
            KeyDirectoryError: If the key directory is missing or contains no valid key.

        """
        if self._keyring is None:
            try:
                self._keyring = Keyring.from_directory(self.key_dir)
            except BundleError as e:
                raise KeyDirectoryError(str(e)) from e
        return self._keyring

    @property
    def key_dir(self) -> Path:
        """The trusted key directory: ``--keys``, else the camera app's default."""
        return self.config.key_dir if self.config.key_dir is not None else default_key_dir()

    @contextmanager
    def _session(self) -> Iterator[None]:
        """Create the layout, take the lock and finish any interrupted install first."""
        self.store.ensure_layout()
        self.apps.store.ensure_layout()
        with self.store.locked():
            if self.journal.read() is not None:
                changed = self._recover_locked()
                if changed:
                    self._restart_best_effort()
            yield

    # Install -------------------------------------------------------------------------------

    def install(self, package_path: Path) -> str:
        """Install one package and return the installed directory name.

        A model package installs ``bundles/NAME-VERSION``, an app package
        ``app/cadr-VERSION``.

        Raises:
            UpdateError: A subclass whose ``exit_code`` and ``reason`` give the cause; the
                running bundle is unchanged.

        """
        with self._session():
            return self._install_locked(package_path)

    def _install_locked(self, package_path: Path) -> str:
        record: dict[str, Any] = {"action": "install", "package": package_path.name,
                                  "started": utc_now()}
        try:
            verified = verify_package(package_path, self.keyring, self.config.limits)
            manifest = verified.manifest
            store = self.apps.store if manifest.kind == KIND_APP else self.store
            record.update(kind=manifest.kind, bundle=manifest.bundle_name,
                          version=manifest.bundle_version, signer=verified.signer.key_id)
            record["downgrade"] = self._check_newer(manifest.bundle_id, store)
            if manifest.kind == KIND_APP:
                self.apps.check_compatible(verified)
                bundle_id = self.apps.build(verified)
            else:
                self._check_compatible(package_path, manifest.min_app_version)
                bundle_id = self._stage_and_test(verified)
                accelerators = self._package_accelerators(bundle_id)
                if accelerators:
                    record["accelerators"] = accelerators
            self._switch_and_confirm(verified, bundle_id, store)
        except UpdateError as e:
            if "version" not in record:
                record.update(read_claims(package_path, self.config.limits))
            outcome = "skipped" if isinstance(e, NotNewerError) else "failed"
            self.audit.append({**record, "outcome": outcome, "reason": e.reason,
                               "detail": str(e)})
            if isinstance(e, PackageError):
                _log_rejection(package_path, record, e)
            raise
        except OSError as e:
            error = StoreError(f"{e.filename or self.store.root}: install failed "
                               f"({e.strerror}); free space or fix permissions and retry")
            self.audit.append({**record, "outcome": "failed", "reason": error.reason,
                               "detail": str(error)})
            raise error from e

        removed = store.prune(self.config.keep)
        self.audit.append({**record, "outcome": "installed", "reason": "ok", "removed": removed})
        self.journal.clear()
        logger.info("Installed %s from %s", bundle_id, package_path)
        return bundle_id

    def _check_newer(self, bundle_id: str, store: Store) -> bool:
        """Raise NotNewerError unless ``bundle_id`` is newer; return whether it downgrades."""
        current = store.current()
        if current is None:
            return False
        new_version = bundle_version(bundle_id)
        current_version = bundle_version(current)
        if new_version is None or current_version is None or new_version > current_version:
            return False
        if bundle_id == current:
            raise NotNewerError(f"{bundle_id} is already installed and running")
        if not self.config.allow_downgrade:
            raise NotNewerError(f"{bundle_id} is not newer than the running {current}; "
                                "pass --allow-downgrade to install an older version on purpose")
        logger.warning("Downgrading from %s to %s because --allow-downgrade is set", current,
                       bundle_id)
        return True

    def app_version(self) -> str:
        """Return the installed app version: ``app/current``, else this process's app."""
        return installed_app_version(self.apps.store) or cadr_device.__version__

    def _check_compatible(self, where: Path, min_app_version: str) -> None:
        app_version = self.app_version()
        if parse_version(min_app_version) > parse_version(app_version):
            raise IncompatibleError(
                f"{where}: bundle needs cadr app {min_app_version} or newer, this device runs "
                f"{app_version}; update the app first",
            )

    def _stage_and_test(self, verified: VerifiedPackage) -> str:
        """Extract, verify and self-test the bundle; return its directory name under bundles/."""
        manifest = verified.manifest
        bundle_id = manifest.bundle_id
        target = self.store.bundles / bundle_id
        entry = JournalEntry(
            operation="install", step=STEP_STAGING, package=verified.path.name,
            target=bundle_id, previous=self.store.current(), old_previous=self.store.previous(),
            started=utc_now(),
        )
        self.journal.write(entry)
        crash_point(STEP_STAGING)

        staging = self.store.new_staging_dir()
        placed = False
        try:
            staged = extract_package(verified, staging, self.config.limits)
            crash_point("extracted")
            self._verify_staged_bundle(verified, staged)

            if self.store.previous() == bundle_id:
                self.store.set_link(PREVIOUS_LINK, None)
            self.store.remove_tree(target)
            os.rename(staged, target)
            placed = True
            self.store.remove_tree(staging)
            self.journal.write(replace(entry, step=STEP_STAGED))
            crash_point(STEP_STAGED)

            self._run_selftest(target)
        except BaseException:
            self._undo_staging(staging, entry, placed)
            raise

        self.journal.write(replace(entry, step=STEP_SELFTEST_PASSED))
        crash_point(STEP_SELFTEST_PASSED)
        return bundle_id

    def _verify_staged_bundle(self, verified: VerifiedPackage, staged: Path) -> None:
        try:
            bundle = load_bundle(staged, self.keyring)
        except BundleError as e:
            raise PackageError(verified.path, f"bundle inside the package is invalid: {e}") from e
        package_manifest = verified.manifest
        bundle_manifest = bundle.manifest
        if (bundle_manifest.name, bundle_manifest.version) != (
                package_manifest.bundle_name, package_manifest.bundle_version):
            raise PackageError(verified.path, f"package.json names {package_manifest.bundle_id} "
                               f"but the bundle manifest names {bundle_manifest.model_id}")
        if bundle_manifest.demonstration_only != package_manifest.demonstration_only:
            raise PackageError(verified.path, "package and bundle disagree on "
                               "demonstration_only")
        self._check_compatible(verified.path, bundle_manifest.min_app_version)

    def _run_selftest(self, bundle_dir: Path) -> None:
        argv = [sys.executable, "-m", "cadr_device.update.selftest_cli", str(bundle_dir),
                "--keys", str(self.key_dir)]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, check=False,
                                    timeout=self.config.selftest_timeout_s)
        except subprocess.TimeoutExpired as e:
            raise SelfTestFailedError(f"{bundle_dir}: self-test timed out after "
                                      f"{self.config.selftest_timeout_s:g} s") from e
        if result.returncode != 0:
            tail = result.stderr.strip()[-_SELFTEST_OUTPUT_TAIL_CHARS:]
            raise SelfTestFailedError(f"{bundle_dir}: self-test failed with exit code "
                                      f"{result.returncode}: {tail}")
        logger.info("Self-test passed for %s", bundle_dir.name)

    @property
    def accel_state_dir(self) -> Path:
        """The packaged-network cache the camera app reads (see ``UpdateConfig``)."""
        if self.config.accel_state_dir is not None:
            return self.config.accel_state_dir
        configured = os.environ.get(STATE_DIR_VARIABLE)
        return Path(configured) if configured else self.config.root / "accel"

    def _package_accelerators(self, bundle_id: str) -> dict[str, Any]:
        """Package the installed bundle's IMX500 network; return the audit entries.

        A missing or failing ``imx500-package`` does not raise: the camera app then runs
        the CPU model, and the returned entry records that and the reason.
        """
        bundle = load_bundle(self.store.bundles / bundle_id, self.keyring)
        entry = bundle.manifest.accelerators.get("imx500")
        if not isinstance(entry, dict) or not entry.get("file"):
            return {}

        cache_dir = self.accel_state_dir
        try:
            packer = bundle.file(str(entry["file"]))
            cache_dir.mkdir(parents=True, exist_ok=True)
            network = imx500.package_network(packer, cache_dir)
            _match_owner(network, cache_dir)
        except (AcceleratorUnavailable, BundleError, OSError) as e:
            reason = str(e)
            logger.warning("Bundle %s: IMX500 network not packaged, so the device keeps the "
                           "CPU model: %s", bundle_id, reason)
            return {"imx500": {"packaged": False, "backend": "cpu",
                               "detail": f"the device keeps the CPU model: {reason}"}}

        logger.info("Bundle %s: IMX500 network packaged into %s", bundle_id, network)
        return {"imx500": {"packaged": True, "backend": "imx500", "network": str(network)}}

    def _undo_staging(self, staging: Path, entry: JournalEntry, placed: bool) -> None:
        """Delete what an unfinished staging step wrote; the running bundle is untouched."""
        self.store.remove_tree(staging)
        if placed and entry.target != entry.previous:
            self.store.remove_tree(self.store.bundles / entry.target)
        if self.store.previous() == entry.target:
            self.store.set_link(PREVIOUS_LINK, None)
        self.journal.clear()

    def _switch_and_confirm(self, verified: VerifiedPackage, bundle_id: str,
                            store: Store) -> None:
        entry = self.journal.read()
        if entry is None:
            raise RuntimeError("journal vanished during an install")
        self.journal.write(replace(entry, step=STEP_SWITCHED))
        crash_point("switching")
        store.set_link(CURRENT_LINK, bundle_id)
        if entry.previous is not None:
            store.set_link(PREVIOUS_LINK, entry.previous)
        crash_point(STEP_SWITCHED)

        ready, reason = restart_and_wait(self.config.service)
        crash_point("restarted")
        if not ready:
            self.journal.write(replace(entry, step=STEP_ROLLING_BACK))
            self._undo_switch(entry)
            self._restart_best_effort()
            self.journal.clear()
            raise ServiceNotReadyError(f"{verified.path}: device service did not become ready "
                                       f"with {bundle_id} ({reason}); switched back to "
                                       f"{entry.previous or 'no bundle'}")
        self.journal.write(replace(entry, step=STEP_COMMITTED))
        crash_point(STEP_COMMITTED)

    def _store_for(self, entry: JournalEntry) -> Store:
        return self.apps.store if entry.area == AREA_APP else self.store

    def _undo_switch(self, entry: JournalEntry) -> None:
        """Restore both links from the journal and delete what an install added."""
        store = self._store_for(entry)
        store.set_link(CURRENT_LINK, entry.previous)
        old_previous = entry.old_previous
        if entry.operation == "install" and old_previous == entry.target:
            old_previous = None
        if old_previous is not None and not (store.bundles / old_previous).is_dir():
            old_previous = None
        store.set_link(PREVIOUS_LINK, old_previous)
        if entry.operation == "install" and entry.target != entry.previous:
            store.remove_tree(store.bundles / entry.target)

    def _restart_best_effort(self) -> None:
        ready, reason = restart_and_wait(self.config.service)
        if not ready:
            logger.error("Device service is not ready after restoring %s: %s",
                         self.store.current(), reason)

    # Scan ----------------------------------------------------------------------------------

    def scan(self, directory: Path, archive: Path | None = None) -> ScanSummary:
        """Install every ``*.cadrpkg`` in ``directory``, oldest bundle version first.

        Packages that are not newer than the running bundle by the time their turn comes
        are skipped and recorded. With ``archive``, each installed or skipped package is
        moved there and each failed entry (of any file type) to ``archive/rejected``, so a
        watched inbox empties. Entries are renamed, never opened, when moved.
        """
        summary = ScanSummary()
        if not directory.is_dir():
            raise StoreError(f"{directory}: scan directory not found")
        with self._session():
            ordered, unreadable = self._ordered_packages(directory, summary)
            if archive is not None:
                for path in unreadable:
                    self._archive(path, archive / REJECTED_ARCHIVE_DIR)

            for path in ordered:
                destination = archive
                try:
                    summary.installed.append(self._install_locked(path))
                except NotNewerError:
                    summary.skipped.append(path.name)
                except UpdateError as e:
                    if not isinstance(e, PackageError):
                        logger.error("Package %s failed: %s", path, e)
                    summary.failed.append((path.name, e))
                    destination = None if archive is None else archive / REJECTED_ARCHIVE_DIR
                if destination is not None:
                    self._archive(path, destination)
        return summary

    def _ordered_packages(self, directory: Path,
                          summary: ScanSummary) -> tuple[list[Path], list[Path]]:
        """Return the readable packages in install order and the entries rejected unread."""
        candidates = sorted(p for p in directory.iterdir()
                            if p.name.endswith(PACKAGE_SUFFIX) and not p.name.startswith("."))
        versioned = []
        unreadable = []
        for path in candidates:
            try:
                identity = read_package_identity(path, self.config.limits)
            except PackageError as e:
                record = {"action": "install", "package": path.name,
                          **read_claims(path, self.config.limits)}
                self.audit.append({**record, "outcome": "failed", "reason": e.reason,
                                   "detail": str(e)})
                _log_rejection(path, record, e)
                summary.failed.append((path.name, e))
                unreadable.append(path)
                continue
            # Apps first, so that a bundle needing the new app installs after it.
            order = 0 if identity.kind == KIND_APP else 1
            versioned.append((order, parse_version(identity.bundle_version), path))
        logger.info("Scan of %s found %d packages", directory, len(candidates))
        return [path for _, _, path in sorted(versioned)], unreadable

    def _archive(self, path: Path, archive: Path) -> None:
        """Rename ``path`` into ``archive``; log the entry and the fix when that fails.

        A rename never opens the entry, so a FIFO, device node, symbolic link or directory
        moves like a file.
        """
        stamp = utc_now().replace(":", "")
        destination = archive / f"{stamp}-{path.name}"
        try:
            archive.mkdir(mode=0o755, parents=True, exist_ok=True)
            copy = 1
            while destination.exists() or destination.is_symlink():
                copy += 1
                destination = archive / f"{stamp}-{copy}-{path.name}"
            os.rename(path, destination)
        except OSError as e:
            logger.error("Cannot move %s to %s (%s), so every later scan finds it again; "
                         "remove it by hand (rm -r -- %s) and see docs/updates.md if "
                         "cadr-update.path stopped", path, archive, e.strerror or e, path)
            return
        logger.info("Moved %s to %s", path.name, destination)

    # Rollback ------------------------------------------------------------------------------

    def rollback(self, app: bool = False) -> str:
        """Swap ``current`` and ``previous`` bundles, or apps with ``app``; return the new current.

        A second rollback swaps them again, so it can move to a newer version: the audit
        record's ``outcome`` is ``rolled_forward`` then, else ``rolled_back``.

        Raises:
            NoRollbackTargetError: If there is no verified previous bundle.
            ServiceNotReadyError: If the service is not ready with it (the bundle it left is
                restored).

        """
        with self._session():
            store = self.apps.store if app else self.store
            origin = store.current()
            record: dict[str, Any] = {"action": "rollback", "started": utc_now(),
                                      "area": store.area}
            try:
                target = self._rollback_locked(store)
            except UpdateError as e:
                self.audit.append({**record, "outcome": "failed", "reason": e.reason,
                                   "detail": str(e)})
                raise
            self.audit.append({**record, "outcome": _rollback_outcome(origin, target),
                               "reason": "ok", "from": origin, "bundle": target,
                               "detail": f"switched from {origin} to {target}"})
            return target

    def _rollback_locked(self, store: Store) -> str:
        target = store.previous()
        current = store.current()
        if target is None or not self._is_usable(store, target):
            raise NoRollbackTargetError(f"{store.bundles}: no verified previous install to "
                                        "roll back to")
        entry = JournalEntry(operation="rollback", step=STEP_SWITCHED, package="-",
                             target=target, previous=current, old_previous=target,
                             started=utc_now(), area=store.area)
        self.journal.write(entry)
        store.set_link(CURRENT_LINK, target)
        store.set_link(PREVIOUS_LINK, current)
        crash_point("rollback_switched")

        ready, reason = restart_and_wait(self.config.service)
        if not ready:
            self.journal.write(replace(entry, step=STEP_ROLLING_BACK))
            self._undo_switch(entry)
            self._restart_best_effort()
            self.journal.clear()
            raise ServiceNotReadyError(f"device service did not become ready with {target} "
                                       f"({reason}); restored {current}")
        self.journal.clear()
        direction = _rollback_outcome(current, target).replace("_", " ").capitalize()
        logger.info("%s: switched from %s to %s", direction, current, target)
        return target

    # Recovery ------------------------------------------------------------------------------

    def recover(self, restart: bool = False) -> str:
        """Finish or undo an interrupted install and make sure ``current`` verifies.

        Runs at boot before the device service. Returns the directory name of the bundle
        ``current`` names afterwards.

        Raises:
            NoBundleError: If no installed bundle verifies.

        """
        self.store.ensure_layout()
        self.apps.store.ensure_layout()
        with self.store.locked():
            changed = self._recover_locked()
            if changed and restart:
                self._restart_best_effort()
            current = self.store.current()
        if current is None:
            raise NoBundleError(f"{self.store.bundles}: no verified bundle is installed; "
                                "install a package with cadr-update install")
        return current

    def _recover_locked(self) -> bool:
        """Return whether ``current`` changed."""
        before = self.store.current()
        entry = self.journal.read()
        if entry is not None:
            self._apply_journal(entry)
        self.store.clean_staging()

        previous = self.store.previous()
        if previous is not None and not (self.store.bundles / previous).is_dir():
            self.store.set_link(PREVIOUS_LINK, None)
        current = self.store.current()
        if current is None or not self._is_verified(current):
            self._fall_back(current)
        app_changed = self._recover_app()
        return self.store.current() != before or app_changed

    def _recover_app(self) -> bool:
        """Make ``app/current`` name a complete venv if it names anything; return if changed."""
        apps = self.apps.store
        apps.clean_staging()
        previous = apps.previous()
        if previous is not None and not is_complete(apps.bundles / previous):
            apps.set_link(PREVIOUS_LINK, None)
        current = apps.current()
        if current is None or is_complete(apps.bundles / current):
            return False
        # NOTE: without any complete venv, app/current is removed and /opt/cadr/venv dangles;
        # the device then needs the app installed again from a wheelhouse.
        candidates = [apps.previous(), *reversed(apps.installed())]
        replacement = next((name for name in candidates if name is not None and name != current
                            and is_complete(apps.bundles / name)), None)
        apps.set_link(CURRENT_LINK, replacement)
        self.audit.append({"action": "recover", "area": AREA_APP, "broken": current,
                           "outcome": "fell_back" if replacement else "failed",
                           "reason": "current_invalid", "bundle": replacement})
        logger.error("App %s is incomplete; switched to %s", current, replacement)
        return True

    def _apply_journal(self, entry: JournalEntry) -> None:
        record = {"action": "recover", "area": entry.area, "operation": entry.operation,
                  "package": entry.package, "bundle": entry.target, "interrupted_step": entry.step}
        if entry.step == STEP_COMMITTED:
            self._store_for(entry).prune(self.config.keep)
            self.audit.append({**record, "outcome": "completed", "reason": "interrupted"})
        else:
            self._undo_switch(entry)
            self.audit.append({**record, "outcome": "undone", "reason": "interrupted",
                               "restored": entry.previous})
        self.journal.clear()
        logger.warning("Recovered %s of %s interrupted at step %s", entry.operation,
                       entry.target, entry.step)

    def _fall_back(self, broken: str | None) -> None:
        """Point ``current`` at the newest verified bundle after it named none or a bad one."""
        candidates = [self.store.previous(), *reversed(self.store.installed())]
        for name in candidates:
            if name is not None and name != broken and self._is_verified(name):
                self.store.set_link(CURRENT_LINK, name)
                self.audit.append({"action": "recover", "outcome": "fell_back",
                                   "reason": "current_invalid", "broken": broken,
                                   "bundle": name})
                logger.error("Bundle %s is missing or invalid; switched to %s", broken, name)
                return
        if broken is not None:
            self.store.set_link(CURRENT_LINK, None)
        self.audit.append({"action": "recover", "outcome": "failed", "reason": "no_bundle",
                           "broken": broken})

    def _is_usable(self, store: Store, name: str) -> bool:
        if store.area == AREA_APP:
            return is_complete(store.bundles / name)
        return self._is_verified(name)

    def _is_verified(self, name: str) -> bool:
        try:
            load_bundle(self.store.bundles / name, self.keyring)
        except BundleError as e:
            logger.error("Installed bundle %s does not verify: %s", name, e)
            return False
        return True

    # Status --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Return the current and previous bundle, installed bundles, journal and last audit."""
        entry = self.journal.read() if self.store.state.is_dir() else None
        installed = self.store.installed() if self.store.bundles.is_dir() else []
        records = self.audit.read()
        apps = self.apps.store
        app_dir = apps.bundles.is_dir()
        return {
            "root": str(self.store.root),
            "app_version": self.app_version() if app_dir else cadr_device.__version__,
            "app": {"current": apps.current() if app_dir else None,
                    "previous": apps.previous() if app_dir else None,
                    "installed": apps.installed() if app_dir else []},
            "current": self.store.current() if self.store.bundles.is_dir() else None,
            "previous": self.store.previous() if self.store.bundles.is_dir() else None,
            "installed": installed,
            "interrupted": None if entry is None else {"operation": entry.operation,
                                                       "area": entry.area,
                                                       "step": entry.step,
                                                       "target": entry.target},
            "last_attempt": records[-1] if records else None,
        }


def _rollback_outcome(origin: str | None, target: str) -> str:
    """Return ``rolled_forward`` when ``target`` has a newer version than ``origin``.

    Returns ``rolled_back`` otherwise, also when either version cannot be read.
    """
    origin_version = None if origin is None else bundle_version(origin)
    target_version = bundle_version(target)
    if origin_version is not None and target_version is not None and \
            target_version > origin_version:
        return "rolled_forward"
    return "rolled_back"


def _log_rejection(path: Path, record: dict[str, Any], error: PackageError) -> None:
    """Log one WARNING line: the package file, the name and version it claims, the reason.

    ``record`` is the audit record: verified ``bundle`` and ``version``, else the unverified
    ``claimed_bundle`` and ``claimed_version`` where the package was readable.
    """
    name = record.get("bundle") or record.get("claimed_bundle")
    version = record.get("version") or record.get("claimed_version")
    claim = f"claims {name} {version}" if name and version else "name and version unreadable"
    logger.warning("Rejected package %s (%s): %s", path, claim, error.detail)


def _match_owner(network: Path, cache_dir: Path) -> None:
    """Give the packaged network and its folders the cache folder's owner, when run as root.

    ``cadr-update`` runs as root but the camera app, which owns the cache, may not, and it
    must still be able to package networks of later bundles next to this one.
    """
    if os.geteuid() != 0:
        return
    owner = cache_dir.stat()
    for path in (network.parent.parent, network.parent, network):
        os.chown(path, owner.st_uid, owner.st_gid)

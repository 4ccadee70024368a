"""The install root's layout, the ``current`` and ``previous`` links, locking and retention.

Layout under the install root (default ``/var/lib/cadr``)::

    bundles/NAME-VERSION/      one verified bundle per directory, never modified in place
    bundles/current -> NAME-VERSION   the bundle the device service runs
    bundles/previous -> NAME-VERSION  the rollback target
    app/cadr-VERSION/venv      one app virtual environment per version (app packages)
    app/current, app/previous  the same links for the app; /opt/cadr/venv points at
                               app/current/venv
    staging/                   scratch directories on the same file system, for extraction
    update/journal.json        present only while an install or rollback runs
    update/audit.jsonl         append-only audit log
    update/lock                flock held by the running cadr-update
    inbox/                     drop packages here; cadr-update.path starts a scan

Links are switched with a temporary link, ``os.replace`` and a directory fsync, so after a
power cut ``current`` names either the old or the new bundle.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cadr_device.update.errors import LockedError, StoreError
from cadr_device.update.fsutil import fsync_directory, replace_symlink
from cadr_device.update.versions import parse_version

logger = logging.getLogger(__name__)

CURRENT_LINK = "current"
PREVIOUS_LINK = "previous"
_BUNDLE_DIR = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]{0,63})-"
                         r"(?P<version>(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*))$")


def bundle_version(directory_name: str) -> tuple[int, int, int] | None:
    """Return the version in a ``NAME-VERSION`` directory name, or None for other names."""
    match = _BUNDLE_DIR.match(directory_name)
    return parse_version(match["version"]) if match else None


#: Directories under the install root that hold versioned installs and their links.
AREA_BUNDLES = "bundles"
AREA_APP = "app"


class Store:
    """One area of an install root: ``bundles/`` for model bundles or ``app/`` for the app.

    Both areas share the staging directory, the journal, the audit log and the lock. The
    attribute ``bundles`` is the area's directory, whichever area it is.
    """

    def __init__(self, root: Path, area: str = AREA_BUNDLES) -> None:
        self.root = root
        self.area = area
        self.bundles = root / area
        self.staging = root / "staging"
        self.state = root / "update"
        self.inbox = root / "inbox"

    @property
    def journal_path(self) -> Path:
        """The install journal file."""
        return self.state / "journal.json"

    @property
    def audit_path(self) -> Path:
        """The audit log file."""
        return self.state / "audit.jsonl"

    def ensure_layout(self) -> None:
        """Create the install root's directories if missing.

        Raises:
            StoreError: If they cannot be created.

        """
        try:
            for directory in (self.root, self.bundles, self.staging, self.state, self.inbox):
                directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{e.filename}: cannot create the install root ({e.strerror}); "
                             "check --root and its permissions") from e

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the install root's exclusive lock for the duration of the block.

        Raises:
            LockedError: If another cadr-update holds it.

        """
        descriptor = os.open(self.state / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    raise LockedError(f"{self.state / 'lock'}: another cadr-update is running; "
                                      "wait for it to finish") from e
                raise
            yield
        finally:
            os.close(descriptor)

    def link_target(self, link_name: str) -> str | None:
        """Return the directory name a link in ``bundles/`` names, or None if absent."""
        link = self.bundles / link_name
        if not link.is_symlink():
            return None
        target = os.readlink(link)
        if "/" in target or bundle_version(target) is None:
            logger.warning("Ignoring link %s -> %s: not a bundle directory name", link, target)
            return None
        return target

    def current(self) -> str | None:
        """Return the running bundle's directory name, or None before the first install."""
        return self.link_target(CURRENT_LINK)

    def previous(self) -> str | None:
        """Return the rollback target's directory name, or None."""
        return self.link_target(PREVIOUS_LINK)

    def set_link(self, link_name: str, target: str | None) -> None:
        """Point ``bundles/<link_name>`` at ``target`` atomically, or remove it for None."""
        link = self.bundles / link_name
        if target is None:
            link.unlink(missing_ok=True)
            fsync_directory(self.bundles)
            return
        if bundle_version(target) is None:
            raise ValueError(f"link target must be a NAME-VERSION directory, got {target!r}")
        replace_symlink(link, target)
        logger.info("Switched %s to %s", link, target)

    def installed(self) -> list[str]:
        """Return installed bundle directory names, oldest version first."""
        names = [p.name for p in self.bundles.iterdir()
                 if not p.is_symlink() and p.is_dir() and bundle_version(p.name) is not None]
        return sorted(names, key=lambda name: (bundle_version(name), name))

    def new_staging_dir(self) -> Path:
        """Create an empty scratch directory on the install root's file system."""
        return Path(tempfile.mkdtemp(prefix="pkg-", dir=self.staging))

    def remove_tree(self, path: Path) -> None:
        """Delete a bundle or staging directory and make the deletion durable."""
        if path.is_symlink():
            raise ValueError(f"refusing to delete through a symbolic link: {path}")
        if path.exists():
            shutil.rmtree(path)
            fsync_directory(path.parent)
            logger.info("Deleted %s", path)

    def clean_staging(self) -> None:
        """Delete every leftover staging directory and temporary link."""
        for entry in self.staging.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                self.remove_tree(entry)
            else:
                entry.unlink()
        for entry in self.bundles.iterdir():
            if entry.name.startswith(".") and entry.is_symlink():
                entry.unlink()
                logger.info("Deleted temporary link %s", entry)

    def prune(self, keep: int) -> list[str]:
        """Delete all but the ``keep`` newest bundles, never ``current`` or ``previous``.

        Returns:
            The deleted directory names.

        """
        protected = {self.current(), self.previous()}
        installed = self.installed()
        excess = installed[:max(0, len(installed) - keep)]
        removed = [name for name in excess if name not in protected]
        for name in removed:
            self.remove_tree(self.bundles / name)
        return removed

"""Writing the bundle beside its destination and moving it into place only when complete.

A run stages everything in ``.OUT.partial-XXXX`` next to ``OUT``; a failed run deletes the
staging folder, so ``OUT`` is either the previous content or a complete new bundle.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from cadr_convert.conversion_errors import InputError

REJECTED_SUFFIX = ".rejected"


def check_destination(out: Path, force: bool) -> None:
    """Raise InputError if ``out`` exists and ``force`` is false, or its parent is missing."""
    if out.exists() and not force:
        raise InputError(f"{out}: already exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; remove it or choose another --out")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: output's parent folder does not exist")


def make_staging(out: Path) -> Path:
    """Create an empty staging folder beside ``out`` on the same file system."""
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))


def publish(staging: Path, out: Path) -> None:
    """Move the finished staging folder to ``out``, replacing an old ``out`` last."""
    if out.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(retired / out.name)
        staging.rename(out)
        shutil.rmtree(retired)
    else:
        staging.rename(out)


def rejected_path(out: Path) -> Path:
    """Return where the report of a bundle that failed the gate goes: ``OUT.rejected``."""
    return out.with_name(out.name + REJECTED_SUFFIX)


def discard(staging: Path) -> None:
    """Delete a staging folder, ignoring one already gone."""
    shutil.rmtree(staging, ignore_errors=True)

"""Packing the app's offline wheelhouse into a signed app update package.

``cadr-package pack-app WHEELHOUSE --key PEM --out DIR`` writes ``cadr-app-VERSION.cadrpkg``:
the package format of :mod:`cadr_device.update.package` with ``"kind": "app"`` and the
wheelhouse under ``wheels/``. The wheelhouse is the output of
:mod:`cadr_convert.wheelhouse`: flat, with the ``cadr`` wheel, every dependency's wheel and
a ``requirements.txt`` that pins each one with ``--hash=sha256:``. The app version comes
from the ``cadr`` wheel's file name, and the platform and Python version from the header
line that the wheelhouse builder writes into ``requirements.txt``.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from cadr_convert.key_policy import demo_key_ids
from cadr_convert.package import write_signed_package
from cadr_convert.signing import SigningError
from cadr_convert.wheelhouse import APP_DISTRIBUTION, REQUIREMENTS_NAME
from cadr_device.bundle import sha256_file
from cadr_device.manifest import SCHEMA_VERSION
from cadr_device.signing import key_id
from cadr_device.update.package import (
    APP_NAME,
    FORMAT_VERSION,
    KIND_APP,
    PACKAGE_SUFFIX,
    WHEELS_PREFIX,
)

logger = logging.getLogger(__name__)

#: The target label the wheelhouse builder writes, for example ``cp311-manylinux_2_36_aarch64``.
_TARGET_LABEL = re.compile(r"^cp3(?P<minor>\d{1,2})-(?P<platform>manylinux_2_\d{1,2}_"
                           r"(aarch64|x86_64))$")
_HEADER_LABEL = re.compile(r"^# Offline wheelhouse for (?P<label>\S+?)[,.]")


def pack_app(wheelhouse: Path, private_key: Ed25519PrivateKey, out_dir: Path, *,
             target: str | None = None, bundle_schema_min: int = SCHEMA_VERSION,
             bundle_schema_max: int = SCHEMA_VERSION) -> Path:
    """Write ``out_dir/cadr-app-VERSION.cadrpkg`` holding ``wheelhouse``, signed with the key.

    Args:
        wheelhouse: A wheelhouse folder from ``python -m cadr_convert.wheelhouse``.
        private_key: The package signing key; the demonstration key is rejected.
        out_dir: Where the package file goes (created if missing).
        target: The wheelhouse's target label, such as ``cp311-manylinux_2_36_aarch64``;
            defaults to the label in ``requirements.txt``.
        bundle_schema_min: Oldest bundle ``schema_version`` the packed app reads.
        bundle_schema_max: Newest bundle ``schema_version`` the packed app reads.

    Returns:
        The package path.

    Raises:
        SigningError: If the wheelhouse, the target or the key does not fit.

    """
    files = _wheelhouse_files(wheelhouse)
    version = _app_version(wheelhouse, files)
    python, platform_tag = _target(wheelhouse, target)
    if not 1 <= bundle_schema_min <= bundle_schema_max:
        raise SigningError(f"bundle schema range {bundle_schema_min}..{bundle_schema_max} is "
                           "invalid; the minimum must be at least 1 and not above the maximum")
    kid = key_id(private_key.public_key())
    if kid in demo_key_ids():
        raise SigningError(f"key {kid} is the published demonstration key; sign app packages "
                           "with a key from cadr-package keygen")

    document = {
        "format_version": FORMAT_VERSION,
        "kind": KIND_APP,
        "app": {"name": APP_NAME, "version": version, "platform": platform_tag,
                "python": python, "bundle_schema_min": bundle_schema_min,
                "bundle_schema_max": bundle_schema_max},
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": [{"path": WHEELS_PREFIX + path.name, "size": path.stat().st_size,
                   "sha256": sha256_file(path)} for path in files],
    }
    package = out_dir / f"{APP_NAME}-app-{version}{PACKAGE_SUFFIX}"
    members = [(WHEELS_PREFIX + path.name, path) for path in files]
    write_signed_package(package, document, members, private_key)
    logger.info("Packed app %s for %s, Python %s (%d files, key %s)", version, platform_tag,
                python, len(files), kid)
    return package


def _wheelhouse_files(wheelhouse: Path) -> list[Path]:
    if not (wheelhouse / REQUIREMENTS_NAME).is_file():
        raise SigningError(f"{wheelhouse / REQUIREMENTS_NAME}: not found; pass a folder made "
                           "by python -m cadr_convert.wheelhouse")
    files = []
    for path in sorted(wheelhouse.iterdir()):
        if path.is_symlink() or not path.is_file():
            raise SigningError(f"{path}: not a regular file; a wheelhouse must contain only "
                               "wheels and their pin files, so remove it")
        files.append(path)
    return files


def _app_version(wheelhouse: Path, files: list[Path]) -> str:
    versions = []
    for path in files:
        if path.suffix != ".whl":
            continue
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except InvalidWheelFilename as e:
            raise SigningError(f"{path}: invalid wheel file name ({e})") from e
        if name == APP_DISTRIBUTION:
            versions.append(str(version))
    if len(versions) != 1:
        raise SigningError(f"{wheelhouse}: expected one {APP_DISTRIBUTION} wheel, found "
                           f"{len(versions)}; build the wheelhouse again")
    return versions[0]


def _target(wheelhouse: Path, label: str | None) -> tuple[str, str]:
    """Return ``(python, platform tag)`` from ``label`` or the requirements header."""
    if label is None:
        header = (wheelhouse / REQUIREMENTS_NAME).read_text(encoding="utf-8").splitlines()
        match = _HEADER_LABEL.match(header[0]) if header else None
        if match is None:
            raise SigningError(f"{wheelhouse / REQUIREMENTS_NAME}: no target line; pass "
                               "--target, for example cp311-manylinux_2_36_aarch64")
        label = match["label"]
    parsed = _TARGET_LABEL.match(label)
    if parsed is None:
        raise SigningError(f"target {label!r} is not like cp311-manylinux_2_36_aarch64")
    return f"3.{parsed['minor']}", parsed["platform"]

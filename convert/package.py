"""Packing a model bundle into a signed update package, and re-signing edited bundles.

The package format is described in :mod:`cadr_device.update.package` and
``docs/updates.md``. Packing checks the bundle with the device's own manifest parser and
file check first, so a package never carries a bundle the device would reject for its
structure. The private key stays on the maker's workstation.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cadr_convert.bundle_writer import write_manifest
from cadr_convert.key_policy import demo_key_ids
from cadr_convert.signing import SigningError, sign_bundle, sign_bytes
from cadr_device.bundle import check_files, read_manifest_text, sha256_file
from cadr_device.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest, parse_manifest
from cadr_device.signing import key_id
from cadr_device.update.package import (
    BUNDLE_PREFIX,
    FORMAT_VERSION,
    PACKAGE_MANIFEST_NAME,
    PACKAGE_SIGNATURE_NAME,
    PACKAGE_SUFFIX,
)
from cadr_device.update.versions import is_valid_version, parse_version

logger = logging.getLogger(__name__)

_MEMBER_MODE = 0o644


def pack_bundle(bundle_dir: Path, private_key: Ed25519PrivateKey, out_dir: Path,
                min_app_version: str | None = None) -> Path:
    """Write ``out_dir/NAME-VERSION.cadrpkg`` holding ``bundle_dir``, signed with the key.

    Args:
        bundle_dir: A signed bundle directory.
        private_key: The package signing key.
        out_dir: Where the package file goes (created if missing).
        min_app_version: Oldest app version that may install it; defaults to the bundle's
            ``min_app_version`` and may only raise it.

    Returns:
        The package path.

    Raises:
        BundleError: If the bundle is malformed or its files do not match its manifest.
        SigningError: If the options or the key do not fit the bundle.

    """
    manifest = _read_bundle(bundle_dir)
    min_app = _choose_min_app_version(manifest, min_app_version)
    _check_key_scope(private_key, manifest)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    files = _bundle_files(bundle_dir)
    document = {
        "format_version": FORMAT_VERSION,
        "bundle": {"name": manifest.name, "version": manifest.version,
                   "demonstration_only": manifest.demonstration_only},
        "min_app_version": min_app,
        "created": created,
        "files": [{"path": BUNDLE_PREFIX + name, "size": path.stat().st_size,
                   "sha256": sha256_file(path)} for name, path in files],
    }
    package = out_dir / f"{manifest.name}-{manifest.version}{PACKAGE_SUFFIX}"
    members = [(BUNDLE_PREFIX + name, path) for name, path in files]
    write_signed_package(package, document, members, private_key)
    logger.info("Packed %s (%d files, key %s)", package, len(files),
                key_id(private_key.public_key()))
    return package


def write_signed_package(package: Path, document: dict[str, Any],
                         members: list[tuple[str, Path]],
                         private_key: Ed25519PrivateKey) -> None:
    """Sign a package manifest and write it, its signature and the members as one tar.

    The tar is written beside ``package`` under a temporary name and renamed at the end,
    so an interrupted run never leaves a package that looks complete.

    Args:
        package: The ``.cadrpkg`` path to create; its folder is created if missing.
        document: The package manifest, already listing every member with size and sha256.
        members: (name in the tar, file to copy) for each member, in order.
        private_key: The signing key.
    """
    manifest_bytes = (json.dumps(document, indent=2) + "\n").encode("utf-8")
    signature_bytes = sign_bytes(private_key, manifest_bytes).encode("utf-8")

    package.parent.mkdir(parents=True, exist_ok=True)
    temporary = package.with_name(f".{package.name}.tmp-{os.getpid()}")
    mtime = int(datetime.now(UTC).timestamp())
    try:
        with tarfile.open(temporary, "w", format=tarfile.PAX_FORMAT) as archive:
            _add_bytes(archive, PACKAGE_MANIFEST_NAME, manifest_bytes, mtime)
            _add_bytes(archive, PACKAGE_SIGNATURE_NAME, signature_bytes, mtime)
            for name, path in members:
                with path.open("rb") as source:
                    _add_stream(archive, name, source, path.stat().st_size, mtime)
        os.replace(temporary, package)
    finally:
        temporary.unlink(missing_ok=True)


def resign_bundle(bundle_dir: Path, private_key: Ed25519PrivateKey,
                  version: str | None = None) -> str:
    """Re-hash a bundle's files into its manifest, optionally set its version, and sign it.

    Use after editing a bundle (a new version, a changed operating point). Returns the
    signing key's id.

    Raises:
        BundleError: If the edited manifest no longer passes the device's validation.
        SigningError: If the version is invalid or a demonstration key would sign a
            clinical bundle.

    """
    manifest_path = bundle_dir / MANIFEST_NAME
    fields: dict[str, Any] = yaml.safe_load(read_manifest_text(manifest_path))
    if not isinstance(fields, dict):
        raise SigningError(f"{manifest_path}: manifest is not a YAML mapping")
    fields.pop("files", None)
    if version is not None:
        if not is_valid_version(version):
            raise SigningError(f"version must be MAJOR.MINOR.PATCH, got {version!r}")
        fields["version"] = version

    (bundle_dir / SIGNATURE_NAME).unlink(missing_ok=True)
    write_manifest(bundle_dir, fields)
    _check_key_scope(private_key, _read_manifest(bundle_dir))
    return sign_bundle(bundle_dir, private_key)


def bump_bundle(bundle_dir: Path, version: str, private_key: Ed25519PrivateKey,
                out_dir: Path | None = None) -> Path:
    """Copy a bundle with a new version in its manifest, re-signed, and return the copy.

    ``out_dir`` defaults to ``NAME-VERSION`` beside ``bundle_dir``.

    Raises:
        SigningError: If ``out_dir`` exists or the version is invalid.

    """
    manifest = _read_bundle(bundle_dir)
    if out_dir is None:
        out_dir = bundle_dir.resolve().parent / f"{manifest.name}-{version}"
    if out_dir.exists():
        raise SigningError(f"{out_dir}: already exists; choose another --out directory")
    shutil.copytree(bundle_dir, out_dir, symlinks=True)
    try:
        resign_bundle(out_dir, private_key, version)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return out_dir


def _check_key_scope(private_key: Ed25519PrivateKey, manifest: Manifest) -> None:
    kid = key_id(private_key.public_key())
    if not manifest.demonstration_only and kid in demo_key_ids():
        raise SigningError(f"key {kid} is the published demonstration key, which devices "
                           "trust only for demonstration_only bundles; sign clinical bundles "
                           "with a key from cadr-package keygen")


def _read_manifest(bundle_dir: Path) -> Manifest:
    manifest_path = bundle_dir / MANIFEST_NAME
    return parse_manifest(read_manifest_text(manifest_path), manifest_path)


def _read_bundle(bundle_dir: Path) -> Manifest:
    manifest = _read_manifest(bundle_dir)
    check_files(bundle_dir, manifest)
    if not (bundle_dir / SIGNATURE_NAME).is_file():
        raise SigningError(f"{bundle_dir / SIGNATURE_NAME}: missing; sign the bundle with "
                           "cadr-package sign first")
    return manifest


def _choose_min_app_version(manifest: Manifest, requested: str | None) -> str:
    if requested is None:
        return manifest.min_app_version
    if not is_valid_version(requested):
        raise SigningError(f"--min-app-version must be MAJOR.MINOR.PATCH, got {requested!r}")
    if parse_version(requested) < parse_version(manifest.min_app_version):
        raise SigningError(f"--min-app-version {requested} is older than the bundle's own "
                           f"min_app_version {manifest.min_app_version}")
    return requested


def _bundle_files(bundle_dir: Path) -> list[tuple[str, Path]]:
    files = []
    for path in sorted(bundle_dir.rglob("*")):
        if path.is_symlink():
            raise SigningError(f"{path}: symbolic links cannot be packed")
        if path.is_file():
            files.append((path.relative_to(bundle_dir).as_posix(), path))
    return files


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    _add_stream(archive, name, io.BytesIO(data), len(data), mtime)


def _add_stream(archive: tarfile.TarFile, name: str, source: Any,
                size: int, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = _MEMBER_MODE
    info.mtime = mtime
    archive.addfile(info, source)

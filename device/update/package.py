"""The signed update package: format, reading and verification.

A package ``NAME-VERSION.cadrpkg`` is an uncompressed POSIX tar file whose members are,
in this order:

1. ``package.json``: the package manifest (format version, bundle name and version,
   whether it is a demonstration bundle, minimum app version, creation time, and every
   other member's path, size and sha256).
2. ``package.sig``: an Ed25519 signature over the exact bytes of ``package.json``, in the
   same JSON form as a bundle's ``manifest.sig`` (algorithm, signer key id, base64).
3. ``bundle/...``: the files of one model bundle, each listed in ``package.json``; or, in
   an app package (``"kind": "app"``), ``wheels/...``: an offline wheelhouse of the cadr app
   (its wheels and the hash-pinned ``requirements.txt``).

Members are read one by one with :mod:`tarfile` and checked here, never with
``extractall`` or extraction filters. Only regular files with clean relative names pass,
without duplicates (also by case), each within its declared size and the package limits,
and each covered by the signature. :func:`verify_package` checks everything without
writing. :func:`extract_package` reads the file again and repeats every check while it
copies the members into a staging directory, so it never trusts the first pass.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from cadr_device.errors import SignatureError
from cadr_device.manifest import MANIFEST_NAME
from cadr_device.signing import Keyring, TrustedKey
from cadr_device.update.config import PackageLimits
from cadr_device.update.errors import PackageError
from cadr_device.update.versions import is_valid_version

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
PACKAGE_SUFFIX = ".cadrpkg"
PACKAGE_MANIFEST_NAME = "package.json"
PACKAGE_SIGNATURE_NAME = "package.sig"
BUNDLE_PREFIX = "bundle/"
WHEELS_PREFIX = "wheels/"

#: Package kinds: a model bundle (``kind`` absent or ``bundle``) or the app's wheelhouse.
KIND_BUNDLE = "bundle"
KIND_APP = "app"

#: Name of the app in an app package; its install directory is ``cadr-VERSION``.
APP_NAME = "cadr"

#: The pinned requirements file every app package's wheelhouse must contain.
APP_REQUIREMENTS_NAME = "requirements.txt"

_COPY_CHUNK_BYTES = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BUNDLE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MANIFEST_KEYS = frozenset({
    "format_version", "bundle", "min_app_version", "created", "files",
})
_APP_MANIFEST_KEYS = frozenset({"format_version", "kind", "app", "created", "files"})
_BUNDLE_KEYS = frozenset({"name", "version", "demonstration_only"})
_APP_KEYS = frozenset({"name", "version", "platform", "python", "bundle_schema_min",
                       "bundle_schema_max"})
_PLATFORM_TAG = re.compile(r"^manylinux_2_(?P<glibc_minor>\d{1,2})_(?P<machine>aarch64|x86_64)$")
_PYTHON_VERSION = re.compile(r"^3\.\d{1,2}$")


@dataclass(frozen=True)
class PackageFile:
    """One bundle member as the signed manifest declares it."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class AppRequirements:
    """The requirements an app package declares: the device it runs on and the bundles it reads.

    Attributes:
        platform: The wheels' manylinux platform tag, for example
            ``manylinux_2_36_aarch64``: the device's CPU and its oldest usable glibc.
        python: The CPython version the wheels were built for, for example ``3.11``.
        bundle_schema_min: Oldest bundle ``schema_version`` the app reads.
        bundle_schema_max: Newest bundle ``schema_version`` the app reads.

    """

    platform: str
    python: str
    bundle_schema_min: int
    bundle_schema_max: int

    @property
    def machine(self) -> str:
        """The CPU architecture of the platform tag, for example ``aarch64``."""
        match = _PLATFORM_TAG.match(self.platform)
        return match["machine"] if match else ""

    @property
    def min_glibc(self) -> tuple[int, int]:
        """The oldest glibc the platform tag runs on, as ``(2, minor)``."""
        match = _PLATFORM_TAG.match(self.platform)
        return (2, int(match["glibc_minor"])) if match else (2, 0)

    def reads_schema(self, schema_version: int) -> bool:
        """Return whether the app reads bundles of ``schema_version``."""
        return self.bundle_schema_min <= schema_version <= self.bundle_schema_max


@dataclass(frozen=True)
class PackageManifest:
    """A parsed, validated ``package.json``.

    An app package has ``kind`` ``app``, ``bundle_name`` :data:`APP_NAME`, the app version
    in ``bundle_version`` and its requirements in ``app``; ``demonstration_only`` is false,
    so the demonstration key can never sign one.
    """

    bundle_name: str
    bundle_version: str
    demonstration_only: bool
    min_app_version: str
    created: str
    files: tuple[PackageFile, ...]
    kind: str = KIND_BUNDLE
    app: AppRequirements | None = None

    @property
    def bundle_id(self) -> str:
        """``NAME-VERSION``, the install directory name (``cadr-VERSION`` for the app)."""
        return f"{self.bundle_name}-{self.bundle_version}"

    @property
    def payload_prefix(self) -> str:
        """The member prefix of the payload: ``bundle/`` or ``wheels/``."""
        return WHEELS_PREFIX if self.kind == KIND_APP else BUNDLE_PREFIX


@dataclass(frozen=True)
class VerifiedPackage:
    """A package whose signature, structure, sizes and hashes all passed verification."""

    path: Path
    manifest: PackageManifest
    manifest_bytes: bytes
    signer: TrustedKey


def verify_package(path: Path, keyring: Keyring, limits: PackageLimits) -> VerifiedPackage:
    """Verify a package completely without writing anything.

    Raises:
        PackageError: Naming the package and the first problem found.

    """
    with _open_package(path) as archive:
        members = _checked_members(path, archive, limits)
        manifest_bytes, signature_bytes = _read_header_members(path, archive, members, limits)
        manifest = parse_package_manifest(manifest_bytes, path, limits)
        signer = _verify_signature(path, manifest, manifest_bytes, signature_bytes, keyring)

        _check_declared_members(path, archive, members, manifest, None)

    logger.info("Verified package %s: bundle %s, %d files, signed by key %s", path.name,
                manifest.bundle_id, len(manifest.files), signer.key_id)
    return VerifiedPackage(path, manifest, manifest_bytes, signer)


def extract_package(package: VerifiedPackage, staging_dir: Path, limits: PackageLimits) -> Path:
    """Copy the payload of a verified package into ``staging_dir/bundle`` or ``staging_dir/wheels``.

    The package file is read again and every check repeats while copying, so a file that
    changed since :func:`verify_package` is rejected. Written files are fsynced.

    Returns:
        The staged bundle or wheelhouse directory.

    Raises:
        PackageError: If the package no longer matches what was verified.
        OSError: If writing fails (for example, the disk is full).

    """
    bundle_dir = staging_dir / package.manifest.payload_prefix.rstrip("/")
    bundle_dir.mkdir(mode=0o755)
    with _open_package(package.path) as archive:
        members = _checked_members(package.path, archive, limits)
        manifest_bytes, _ = _read_header_members(package.path, archive, members, limits)
        if manifest_bytes != package.manifest_bytes:
            raise PackageError(package.path, "package.json changed after verification; "
                               "copy the package again and retry")
        _check_declared_members(package.path, archive, members, package.manifest, bundle_dir)

    _fsync_tree(bundle_dir)
    return bundle_dir


def read_package_identity(path: Path, limits: PackageLimits) -> PackageManifest:
    """Parse only ``package.json`` (unverified), to sort packages before installing them.

    Raises:
        PackageError: If the package or its manifest cannot be read.

    """
    with _open_package(path) as archive:
        try:
            first = archive.next()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise PackageError(path, f"not a readable tar file ({e})") from e
        if first is None or first.name != PACKAGE_MANIFEST_NAME:
            raise PackageError(path, f"the first member must be {PACKAGE_MANIFEST_NAME}")
        _check_member(path, first, limits)
        data = _read_member(path, archive, first, limits.max_manifest_bytes)
    return parse_package_manifest(data, path, limits)


def read_claims(path: Path, limits: PackageLimits) -> dict[str, str]:
    """Return the bundle, version and signer a package claims, unverified, for the audit log.

    Returns an empty mapping when the first two members cannot be read; never raises
    :class:`PackageError`.
    """
    claims: dict[str, str] = {}
    try:
        with _open_package(path) as archive:
            for _ in range(2):
                member = archive.next()
                if member is None:
                    break
                _check_member(path, member, limits)
                data = _read_member(path, archive, member, limits.max_manifest_bytes)
                document = json.loads(data.decode("utf-8"))
                if member.name == PACKAGE_MANIFEST_NAME and isinstance(document, dict):
                    bundle = document.get("app" if document.get("kind") == KIND_APP
                                          else "bundle")
                    if isinstance(bundle, dict):
                        claims["claimed_bundle"] = str(bundle.get("name"))
                        claims["claimed_version"] = str(bundle.get("version"))
                elif member.name == PACKAGE_SIGNATURE_NAME and isinstance(document, dict):
                    claims["claimed_signer"] = str(document.get("key_id"))
    except (PackageError, tarfile.TarError, OSError, EOFError, UnicodeDecodeError,
            json.JSONDecodeError):
        pass
    return claims


def parse_package_manifest(data: bytes, path: Path, limits: PackageLimits) -> PackageManifest:
    """Parse and validate ``package.json`` bytes read from the package at ``path``.

    Raises:
        PackageError: Naming the invalid field.

    """
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PackageError(path, f"package.json is not UTF-8 JSON ({e})") from e
    if not isinstance(document, dict):
        raise PackageError(path, "package.json must be a JSON object")
    if "kind" in document and document["kind"] != KIND_BUNDLE:
        return _parse_app_manifest(document, path, limits)
    _check_top_level(document, path, _MANIFEST_KEYS | {"kind"})

    bundle = document.get("bundle")
    if not isinstance(bundle, dict) or set(bundle) != _BUNDLE_KEYS:
        raise PackageError(path, f"package.json bundle must have exactly {sorted(_BUNDLE_KEYS)}")
    name = _string_field(path, bundle, "name")
    version = _string_field(path, bundle, "version")
    if not _BUNDLE_NAME.match(name):
        raise PackageError(path, f"bundle name {name!r} is invalid")
    if not is_valid_version(version):
        raise PackageError(path, f"bundle version {version!r} is not MAJOR.MINOR.PATCH")
    if not isinstance(bundle["demonstration_only"], bool):
        raise PackageError(path, "bundle demonstration_only must be true or false")

    min_app = _string_field(path, document, "min_app_version")
    if not is_valid_version(min_app):
        raise PackageError(path, f"min_app_version {min_app!r} is not MAJOR.MINOR.PATCH")
    created = _string_field(path, document, "created")

    return PackageManifest(
        bundle_name=name, bundle_version=version,
        demonstration_only=bundle["demonstration_only"], min_app_version=min_app,
        created=created,
        files=_declared_files(path, document.get("files"), limits, BUNDLE_PREFIX,
                              f"{BUNDLE_PREFIX}{MANIFEST_NAME}"),
    )


def _check_top_level(document: dict[str, Any], path: Path, allowed: frozenset[str]) -> None:
    """Reject unknown top-level keys and a format version this reader does not know."""
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise PackageError(path, f"package.json has unknown keys {unknown}")
    if document.get("format_version") != FORMAT_VERSION:
        raise PackageError(path, f"package format_version must be {FORMAT_VERSION}, got "
                           f"{document.get('format_version')!r}; use a matching cadr-update")


def _parse_app_manifest(document: dict[str, Any], path: Path,
                        limits: PackageLimits) -> PackageManifest:
    """Validate the ``package.json`` of an app package (``"kind": "app"``)."""
    if document["kind"] != KIND_APP:
        raise PackageError(path, f"package kind must be {KIND_BUNDLE!r} or {KIND_APP!r}, got "
                           f"{document['kind']!r}; use a matching cadr-update")
    _check_top_level(document, path, _APP_MANIFEST_KEYS)

    app = document.get("app")
    if not isinstance(app, dict) or set(app) != _APP_KEYS:
        raise PackageError(path, f"package.json app must have exactly {sorted(_APP_KEYS)}")
    if app["name"] != APP_NAME:
        raise PackageError(path, f"app name must be {APP_NAME!r}, got {app['name']!r}")
    version = _string_field(path, app, "version")
    if not is_valid_version(version):
        raise PackageError(path, f"app version {version!r} is not MAJOR.MINOR.PATCH")
    platform_tag = _string_field(path, app, "platform")
    if not _PLATFORM_TAG.match(platform_tag):
        raise PackageError(path, f"app platform {platform_tag!r} is not a manylinux_2_N "
                           "aarch64 or x86_64 tag")
    python = _string_field(path, app, "python")
    if not _PYTHON_VERSION.match(python):
        raise PackageError(path, f"app python {python!r} is not a version like 3.11")
    schema_min, schema_max = app["bundle_schema_min"], app["bundle_schema_max"]
    for key, value in (("bundle_schema_min", schema_min), ("bundle_schema_max", schema_max)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PackageError(path, f"app {key} must be a positive integer, got {value!r}")
    if schema_min > schema_max:
        raise PackageError(path, f"app bundle_schema_min {schema_min} is greater than "
                           f"bundle_schema_max {schema_max}")

    return PackageManifest(
        bundle_name=APP_NAME, bundle_version=version, demonstration_only=False,
        min_app_version=version, created=_string_field(path, document, "created"),
        files=_declared_files(path, document.get("files"), limits, WHEELS_PREFIX,
                              f"{WHEELS_PREFIX}{APP_REQUIREMENTS_NAME}"),
        kind=KIND_APP,
        app=AppRequirements(platform=platform_tag, python=python,
                            bundle_schema_min=schema_min, bundle_schema_max=schema_max),
    )


def _declared_files(path: Path, value: Any, limits: PackageLimits, prefix: str,
                    required: str) -> tuple[PackageFile, ...]:
    if not isinstance(value, list) or not value:
        raise PackageError(path, "package.json files must be a non-empty list")
    if len(value) > limits.max_members:
        raise PackageError(path, f"package.json lists {len(value)} files, more than the limit "
                           f"of {limits.max_members}")
    files = []
    total = 0
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"path", "size", "sha256"}:
            raise PackageError(path, "each package.json files entry needs path, size, sha256")
        name, size, digest = entry["path"], entry["size"], entry["sha256"]
        if not isinstance(name, str) or not name.startswith(prefix):
            raise PackageError(path, f"declared file {name!r} is not under {prefix}")
        check_member_name(path, name, limits)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise PackageError(path, f"declared size of {name} must be a non-negative integer")
        if size > limits.max_member_bytes:
            raise PackageError(path, f"{name} is declared as {size} bytes, more than the "
                               f"limit of {limits.max_member_bytes}")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise PackageError(path, f"declared sha256 of {name} is not 64 lowercase hex digits")
        total += size
        files.append(PackageFile(name, size, digest))

    if total > limits.max_total_bytes:
        raise PackageError(path, f"declared files total {total} bytes, more than the limit of "
                           f"{limits.max_total_bytes}")
    names = [f.path for f in files]
    _check_unique(path, names)
    _check_no_file_as_directory(path, names)
    if required not in names:
        raise PackageError(path, f"{required} is not declared")
    return tuple(files)


def check_member_name(path: Path, name: str, limits: PackageLimits) -> None:
    """Reject a member name that is absolute, not normalised, or could escape a directory.

    Raises:
        PackageError: Naming the member.

    """
    if not name or len(name.encode("utf-8", "surrogateescape")) > limits.max_name_bytes:
        raise PackageError(path, f"member name {name!r} is empty or longer than "
                           f"{limits.max_name_bytes} bytes")
    if any(ord(ch) < 0x20 or ch in "\\\x7f" for ch in name):
        raise PackageError(path, f"member name {name!r} contains a control character or "
                           "backslash")
    if name.startswith("/"):
        raise PackageError(path, f"member {name!r} has an absolute path")
    parts = name.split("/")
    if ".." in parts:
        raise PackageError(path, f"member {name!r} contains '..'")
    if any(part in ("", ".") for part in parts) or str(PurePosixPath(name)) != name:
        raise PackageError(path, f"member name {name!r} is not a normalised relative path")


def _check_unique(path: Path, names: list[str]) -> None:
    seen: dict[str, str] = {}
    for name in names:
        folded = name.casefold()
        if folded in seen:
            if seen[folded] == name:
                raise PackageError(path, f"member {name!r} appears twice")
            raise PackageError(path, f"members {seen[folded]!r} and {name!r} differ only by "
                               "case")
        seen[folded] = name


def _check_no_file_as_directory(path: Path, names: list[str]) -> None:
    """Reject a declared file whose name is also a parent directory of another file."""
    declared = set(names)
    for name in names:
        parents = [str(parent) for parent in PurePosixPath(name).parents]
        clash = next((parent for parent in parents if parent in declared), None)
        if clash is not None:
            raise PackageError(path, f"declared file {clash!r} is also the directory of "
                               f"{name!r}")


def _string_field(path: Path, data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise PackageError(path, f"package.json {key} must be a non-empty string")
    return value


_SPECIAL_ENTRY_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket"))


@contextmanager
def _open_package(path: Path) -> Iterator[tarfile.TarFile]:
    if not os.path.lexists(path):
        raise PackageError(path, "package not found")
    kind = _entry_kind(path)
    if kind is not None:
        raise PackageError(path, f"package is {kind}, not a regular file; copy the package "
                           "file itself")

    # An entry swapped for a FIFO after the lstat above must not block, so the open is
    # O_NONBLOCK and fstat checks the type again. Regular files ignore O_NONBLOCK.
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise PackageError(path, f"package cannot be opened ({e.strerror})") from e
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise PackageError(path, "package was replaced by something other than a regular "
                               "file while it was read; copy the package file itself")
        try:
            archive = tarfile.open(name=str(path), fileobj=file, mode="r:")
        except (tarfile.TarError, OSError) as e:
            raise PackageError(path, f"not an uncompressed tar file ({e}); build packages "
                               "with cadr-package pack") from e
        try:
            yield archive
        finally:
            archive.close()


def _entry_kind(path: Path) -> str | None:
    """Describe a path that is not a regular file, from ``lstat`` alone; None for a file.

    Neither follows a symbolic link nor opens the entry, so a FIFO or device cannot block.
    """
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return f"a symbolic link to {os.readlink(path)}"
    return next((kind for is_kind, kind in _SPECIAL_ENTRY_KINDS if is_kind(mode)),
                "a special file")


def _checked_members(path: Path, archive: tarfile.TarFile,
                     limits: PackageLimits) -> list[tarfile.TarInfo]:
    """Read every member header and check type, name, size, uniqueness and totals."""
    members: list[tarfile.TarInfo] = []
    total = 0
    while True:
        try:
            member = archive.next()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise PackageError(path, f"tar file is truncated or damaged ({e}); copy the package "
                               "again") from e
        if member is None:
            break
        if len(members) >= limits.max_members + 2:
            raise PackageError(path, f"more than {limits.max_members} bundle files")
        _check_member(path, member, limits)
        total += member.size
        if total > limits.max_total_bytes:
            raise PackageError(path, f"members total more than {limits.max_total_bytes} bytes")
        members.append(member)

    _check_unique(path, [m.name for m in members])
    names = [m.name for m in members[:2]]
    if names != [PACKAGE_MANIFEST_NAME, PACKAGE_SIGNATURE_NAME]:
        raise PackageError(path, f"the first members must be {PACKAGE_MANIFEST_NAME} and "
                           f"{PACKAGE_SIGNATURE_NAME}, found {names}; the package is unsigned "
                           "or was not made by cadr-package")
    return members


def _check_member(path: Path, member: tarfile.TarInfo, limits: PackageLimits) -> None:
    kind = _unsafe_kind(member)
    if kind is not None:
        raise PackageError(path, f"member {member.name!r} is a {kind}; packages may contain "
                           "regular files only")
    check_member_name(path, member.name, limits)
    if member.size > limits.max_member_bytes:
        raise PackageError(path, f"member {member.name!r} is {member.size} bytes, more than "
                           f"the limit of {limits.max_member_bytes}")


def _unsafe_kind(member: tarfile.TarInfo) -> str | None:
    if member.type in (tarfile.REGTYPE, tarfile.AREGTYPE) and not member.issparse():
        return None
    kinds = [
        (member.issym(), "symbolic link"), (member.islnk(), "hard link"),
        (member.isdir(), "directory"), (member.isfifo(), "FIFO"),
        (member.ischr(), "character device"), (member.isblk(), "block device"),
        (member.issparse(), "sparse file"),
    ]
    return next((label for flag, label in kinds if flag), f"member of tar type {member.type!r}")


def _read_member(path: Path, archive: tarfile.TarFile, member: tarfile.TarInfo,
                 max_bytes: int) -> bytes:
    if member.size > max_bytes:
        raise PackageError(path, f"{member.name} is {member.size} bytes, more than the limit "
                           f"of {max_bytes}")
    source = _member_stream(path, archive, member)
    try:
        data = source.read(member.size + 1)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise PackageError(path, f"{member.name} is truncated ({e})") from e
    if len(data) != member.size:
        raise PackageError(path, f"{member.name} is truncated")
    return data


def _member_stream(path: Path, archive: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    source = archive.extractfile(member)
    if source is None:
        raise PackageError(path, f"member {member.name!r} has no data")
    return source


def _read_header_members(path: Path, archive: tarfile.TarFile, members: list[tarfile.TarInfo],
                         limits: PackageLimits) -> tuple[bytes, bytes]:
    manifest = _read_member(path, archive, members[0], limits.max_manifest_bytes)
    signature = _read_member(path, archive, members[1], limits.max_signature_bytes)
    return manifest, signature


def _verify_signature(path: Path, manifest: PackageManifest, manifest_bytes: bytes,
                      signature_bytes: bytes, keyring: Keyring) -> TrustedKey:
    # Keyring.verify reads the signature from a file, so it is written to a private scratch
    # directory outside the install root for that call.
    with tempfile.TemporaryDirectory(prefix="cadr-sig-") as scratch:
        signature_path = Path(scratch) / PACKAGE_SIGNATURE_NAME
        signature_path.write_bytes(signature_bytes)
        try:
            return keyring.verify(manifest_bytes, signature_path, manifest.demonstration_only)
        except SignatureError as e:
            detail = str(e).split(": ", 1)[-1]
            raise PackageError(path, f"package signature rejected: {detail}") from e


def _check_declared_members(path: Path, archive: tarfile.TarFile,
                            members: list[tarfile.TarInfo], manifest: PackageManifest,
                            destination: Path | None) -> None:
    """Hash every payload member against its declaration, copying it when asked."""
    declared = {f.path: f for f in manifest.files}
    present = {m.name for m in members[2:]}
    extra = sorted(present - set(declared))
    if extra:
        raise PackageError(path, f"member {extra[0]!r} is not covered by the signed manifest")
    missing = sorted(set(declared) - present)
    if missing:
        raise PackageError(path, f"declared file {missing[0]!r} is missing; the package is "
                           "truncated or incomplete")

    for member in members[2:]:
        expected = declared[member.name]
        if member.size != expected.size:
            raise PackageError(path, f"{member.name} is {member.size} bytes, the signed "
                               f"manifest says {expected.size}")
        target = None
        if destination is not None:
            target = destination / member.name.removeprefix(manifest.payload_prefix)
        digest = _copy_member(path, archive, member, target)
        if digest != expected.sha256:
            raise PackageError(path, f"{member.name} has sha256 {digest}, the signed manifest "
                               f"says {expected.sha256}; the package was altered or damaged")


def _copy_member(path: Path, archive: tarfile.TarFile, member: tarfile.TarInfo,
                 target: Path | None) -> str:
    digest = hashlib.sha256()
    remaining = member.size
    source = _member_stream(path, archive, member)
    sink = _open_new_file(target) if target is not None else None
    try:
        while remaining > 0:
            try:
                chunk = source.read(min(_COPY_CHUNK_BYTES, remaining))
            except (tarfile.TarError, OSError, EOFError) as e:
                raise PackageError(path, f"{member.name} is truncated ({e})") from e
            if not chunk:
                raise PackageError(path, f"{member.name} is truncated")
            digest.update(chunk)
            if sink is not None:
                sink.write(chunk)
            remaining -= len(chunk)
        if sink is not None:
            sink.flush()
            os.fsync(sink.fileno())
    finally:
        if sink is not None:
            sink.close()
    return digest.hexdigest()


def _open_new_file(target: Path) -> IO[bytes]:
    """Create ``target`` exclusively, never following a symbolic link."""
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    return os.fdopen(os.open(target, flags, 0o644), "wb")


def _fsync_tree(root: Path) -> None:
    """Fsync every directory under ``root`` so new entries survive a power cut."""
    for directory, _, _ in os.walk(root):
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

"""Loading a model bundle directory and proving it is complete, untouched and signed.

Load order: read ``manifest.yaml`` → check the signature in ``manifest.sig`` against the
trusted keys → parse and validate the manifest → hash every listed file → reject any file
the manifest does not list. Only a bundle that passes every step is returned.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from cadr_device import __version__
from cadr_device.errors import BundleError
from cadr_device.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest, parse_manifest
from cadr_device.signing import Keyring, TrustedKey
from cadr_device.update.versions import parse_version

logger = logging.getLogger(__name__)

#: Largest manifest read, in bytes.
MAX_MANIFEST_BYTES = 1024 * 1024

_HASH_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk."""

    path: Path
    manifest: Manifest
    signer: TrustedKey

    @property
    def model_path(self) -> Path:
        """The ``.tflite`` model file inside the bundle."""
        return self.path / self.manifest.model.file

    @property
    def model_sha256(self) -> str:
        """The model file's sha256 as listed in the manifest."""
        return self.manifest.files[self.manifest.model.file]

    def file(self, name: str) -> Path:
        """Return the path of a listed bundle file."""
        if name not in self.manifest.files:
            raise BundleError(self.path / name, "not listed in the manifest")
        return self.path / name


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def load_bundle(path: Path, keyring: Keyring) -> Bundle:
    """Load and verify the bundle directory at ``path``.

    Raises:
        BundleError: Naming the file and, for manifest problems, the field; its subclass
            SignatureError when the signature does not verify.
    """
    if path.is_file():
        raise BundleError(path, "is a file, not a bundle directory; pass the folder that "
                          "contains manifest.yaml and the model")
    if not path.is_dir():
        raise BundleError(path, "bundle directory not found; pass --bundle with a bundle made "
                          "by cadr-convert")
    manifest_path = path / MANIFEST_NAME
    text = read_manifest_text(manifest_path)

    flag = _demonstration_flag(text, manifest_path)
    signer = keyring.verify(text.encode("utf-8"), path / SIGNATURE_NAME, flag)
    manifest = parse_manifest(text, manifest_path)

    check_files(path, manifest)
    logger.info("Loaded bundle %s (signed by key %s%s)", manifest.model_id, signer.key_id,
                ", demonstration key" if signer.demo_only else "")
    return Bundle(path=path, manifest=manifest, signer=signer)


def check_app_version(bundle: Bundle, app_version: str = __version__) -> None:
    """Reject a bundle whose ``min_app_version`` is newer than ``app_version``.

    Raises:
        BundleError: Naming the bundle, both versions and the fix (update the app).
    """
    required = bundle.manifest.min_app_version
    if parse_version(required) > parse_version(app_version):
        raise BundleError(
            bundle.path / MANIFEST_NAME,
            f"bundle {bundle.manifest.model_id} needs cadr app {required} or newer, but this "
            f"app is {app_version}; update the app (cadr-update install "
            "cadr-app-VERSION.cadrpkg) or use a bundle made for this app",
            field="min_app_version",
        )


def read_manifest_text(manifest_path: Path) -> str:
    """Read a manifest as UTF-8 text, refusing a missing, huge or binary file."""
    try:
        if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(manifest_path, f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
        return manifest_path.read_bytes().decode("utf-8")
    except FileNotFoundError as e:
        raise BundleError(manifest_path,
                          "manifest is missing; this is not a bundle directory") from e
    except UnicodeDecodeError as e:
        raise BundleError(manifest_path, "manifest is not UTF-8 text") from e
    except OSError as e:
        raise BundleError(manifest_path, f"cannot read manifest ({e.strerror})") from e


def check_files(path: Path, manifest: Manifest) -> None:
    """Check that the bundle contains exactly the listed files with their listed hashes."""
    listed = set(manifest.files)
    required = {manifest.model.file, *(case.file for case in manifest.selftest.cases)}
    for name in sorted(required - listed):
        raise BundleError(path / MANIFEST_NAME, f"{name!r} is used but not listed", "files")

    for name in sorted(listed):
        file_path = path / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError(path / MANIFEST_NAME, f"file name {name!r} leaves the bundle",
                              "files")
        if file_path.is_symlink() or not file_path.is_file():
            raise BundleError(file_path, "listed in the manifest but missing or not a regular file")
        actual = sha256_file(file_path)
        if actual != manifest.files[name]:
            raise BundleError(
                file_path, f"sha256 is {actual}, the manifest says {manifest.files[name]}; "
                "the file was altered or damaged, reinstall the bundle",
            )

    present = {
        p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() or p.is_symlink()
    }
    extra = sorted(present - listed - {MANIFEST_NAME, SIGNATURE_NAME})
    if extra:
        raise BundleError(path / extra[0], "file is not listed in the signed manifest; "
                          "remove it or rebuild the bundle")


def _demonstration_flag(text: str, manifest_path: Path) -> bool:
    """Read ``demonstration_only`` before full validation, for the signer-scope check."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BundleError(manifest_path, f"manifest is not valid YAML ({e})") from e
    flag = data.get("demonstration_only") if isinstance(data, dict) else None
    return flag is True

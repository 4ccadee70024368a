"""Ed25519 signature checks against the device's trusted public keys.

The device trusts the PEM public keys (``*.pub``) in one directory; several may be
present so keys can be rotated. A key whose file name ends in ``.demo.pub`` is trusted
only for bundles whose manifest says ``demonstration_only: true``: its private key is
published in the repository so anyone can rebuild the demonstration bundle, so it must
never vouch for a clinical model. Signing lives in ``cadr_convert``; no private key is
ever read on the device. The published demonstration key is also recognised by its key
id (:data:`DEMO_KEY_IDS`), so a copy of it renamed to ``*.pub`` stays demo-only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cadr_device.errors import SignatureError

logger = logging.getLogger(__name__)

#: Package-shipped keys, used when no system key directory exists.
PACKAGED_KEY_DIR = Path(__file__).with_name("keys")

#: System key directory on a device.
SYSTEM_KEY_DIR = Path("/etc/cadr/keys")

DEMO_KEY_SUFFIX = ".demo.pub"

#: Key ids of keys whose private half is published (``models/keys/`` in the repository).
#: Whatever their file is called, they may sign demonstration bundles only.
DEMO_KEY_IDS = frozenset({"c3eb980c456c0e09"})
ALGORITHM = "ed25519"
MAX_SIGNATURE_BYTES = 4096


@dataclass(frozen=True)
class TrustedKey:
    """A trusted public key and its scope."""

    key_id: str
    public_key: Ed25519PublicKey
    demo_only: bool
    source: Path


def key_id(public_key: Ed25519PublicKey) -> str:
    """Return the key id: the first 16 hex digits of the sha256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def default_key_dir() -> Path:
    """Return ``/etc/cadr/keys`` when it exists, else the keys shipped with the package."""
    return SYSTEM_KEY_DIR if SYSTEM_KEY_DIR.is_dir() else PACKAGED_KEY_DIR


class Keyring:
    """The set of public keys a device trusts, read from one directory."""

    def __init__(self, keys: dict[str, TrustedKey], directory: Path) -> None:
        self.keys = keys
        self.directory = directory

    @classmethod
    def from_directory(cls, directory: Path) -> Keyring:
        """Read every ``*.pub`` file of ``directory``.

        Raises:
            SignatureError: If the directory is missing, contains no key, or a key file is not an
                Ed25519 public key in PEM form.
        """
        if not directory.is_dir():
            raise SignatureError(directory, "trusted key directory not found; "
                                 "install the maker's public keys there")
        keys: dict[str, TrustedKey] = {}
        for path in sorted(directory.glob("*.pub")):
            try:
                loaded = serialization.load_pem_public_key(path.read_bytes())
            except (ValueError, OSError) as e:
                raise SignatureError(path, f"not a PEM public key ({e})") from e
            if not isinstance(loaded, Ed25519PublicKey):
                raise SignatureError(path, "not an Ed25519 public key")
            kid = key_id(loaded)
            demo_only = path.name.endswith(DEMO_KEY_SUFFIX) or kid in DEMO_KEY_IDS
            trusted = TrustedKey(kid, loaded, demo_only, path)
            keys[trusted.key_id] = trusted
        if not keys:
            raise SignatureError(directory, "no *.pub key found; install the maker's public keys")
        logger.debug("Loaded %d trusted keys from %s", len(keys), directory)
        return cls(keys, directory)

    def verify(self, message: bytes, signature_path: Path, demonstration_only: bool) -> TrustedKey:
        """Check the detached signature in ``signature_path`` over ``message``.

        Args:
            message: The exact signed bytes (a manifest file's content).
            signature_path: A JSON file ``{"algorithm", "key_id", "signature"}``.
            demonstration_only: The signed manifest's flag; a demo key may sign only when true.

        Returns:
            The key that made the signature.

        Raises:
            SignatureError: If the signature file is missing or malformed, the key is not
                trusted, the key may not sign this kind of bundle, or the signature is invalid.
        """
        record = read_signature_file(signature_path)
        trusted = self.keys.get(record.key_id)
        if trusted is None:
            raise SignatureError(
                signature_path, f"signed by key {record.key_id}, which is not among the "
                f"trusted keys in {self.directory}; install the signer's public key or re-sign",
            )
        if trusted.demo_only and not demonstration_only:
            raise SignatureError(
                signature_path, f"key {trusted.key_id} may sign demonstration bundles only, "
                "but this manifest says demonstration_only: false",
            )
        try:
            trusted.public_key.verify(record.signature, message)
        except InvalidSignature as e:
            raise SignatureError(
                signature_path, f"signature by key {trusted.key_id} does not match the manifest; "
                "the bundle was altered after signing",
            ) from e
        return trusted


@dataclass(frozen=True)
class DetachedSignature:
    """A parsed ``manifest.sig``: the signer's key id and the raw 64-byte signature."""

    key_id: str
    signature: bytes


def read_signature_file(path: Path) -> DetachedSignature:
    """Parse a detached signature file.

    Raises:
        SignatureError: If the file is missing, too large or malformed.
    """
    try:
        if path.stat().st_size > MAX_SIGNATURE_BYTES:
            raise SignatureError(path, f"larger than {MAX_SIGNATURE_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise SignatureError(path, "signature file is missing; the bundle is unsigned, "
                             "sign it with cadr-package sign") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SignatureError(path, f"signature file is unreadable or not JSON ({e})") from e

    if not isinstance(data, dict) or data.get("algorithm") != ALGORITHM:
        raise SignatureError(path, f"algorithm must be {ALGORITHM!r}", "algorithm")
    kid = data.get("key_id")
    sig = data.get("signature")
    if not isinstance(kid, str) or not isinstance(sig, str):
        raise SignatureError(path, "key_id and signature must be strings", "signature")
    try:
        signature = base64.b64decode(sig, validate=True)
    except ValueError as e:
        raise SignatureError(path, "signature is not valid base64", "signature") from e
    return DetachedSignature(kid, signature)


def signature_document(kid: str, signature: bytes) -> str:
    """Return the JSON text of a detached signature file."""
    return json.dumps(
        {"algorithm": ALGORITHM, "key_id": kid, "signature": base64.b64encode(signature).decode()},
        indent=2,
    ) + "\n"

"""Ed25519 key generation and bundle signing, for the maker's workstation only.

The private key never goes on a device; the device only verifies, with
:mod:`cadr_device.signing`.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cadr_device.manifest import MANIFEST_NAME, SIGNATURE_NAME
from cadr_device.signing import key_id, signature_document


class SigningError(Exception):
    """A private key cannot be read or used."""


def generate_keypair(private_path: Path, public_path: Path, force: bool = False) -> str:
    """Write a new Ed25519 key pair as PEM files and return its key id.

    The private key file is created with mode 0600 and is not encrypted; keep it off
    devices and out of version control.
    """
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise SigningError(f"{path}: already exists; pass --force to overwrite it")

    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
    )

    private_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(private_pem)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_bytes(public_pem)
    return key_id(private_key.public_key())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an unencrypted PEM Ed25519 private key."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise SigningError(f"{path}: cannot read an unencrypted PEM private key ({e})") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: not an Ed25519 private key")
    return key


def sign_bytes(private_key: Ed25519PrivateKey, message: bytes) -> str:
    """Return the detached signature document (JSON text) for ``message``."""
    return signature_document(key_id(private_key.public_key()), private_key.sign(message))


def sign_bundle(bundle_dir: Path, private_key: Ed25519PrivateKey) -> str:
    """Sign ``bundle_dir/manifest.yaml`` into ``manifest.sig`` and return the key id."""
    message = (bundle_dir / MANIFEST_NAME).read_bytes()
    (bundle_dir / SIGNATURE_NAME).write_text(sign_bytes(private_key, message), encoding="utf-8")
    return key_id(private_key.public_key())

"""Which private key may sign which bundle, and the keyring that checks the result.

The demonstration key's private half is published in ``models/keys``, so anyone can
sign with it; it may therefore sign only ``demonstration_only`` bundles. The check
compares key ids with the ``*.demo.pub`` keys shipped in ``cadr_device/keys``, so a
renamed copy of the demonstration key is still recognised.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cadr_convert.conversion_errors import InputError
from cadr_convert.signing import SigningError, load_private_key
from cadr_device.signing import (
    DEMO_KEY_IDS,
    DEMO_KEY_SUFFIX,
    PACKAGED_KEY_DIR,
    Keyring,
    TrustedKey,
    key_id,
)

#: The published demonstration signing key, relative to the repository root.
DEMO_PRIVATE_KEY = Path("models/keys/cadr-demo-signing-key.pem")


def demo_key_ids(directory: Path = PACKAGED_KEY_DIR) -> set[str]:
    """Return the published demonstration key ids plus those of `*.demo.pub` keys in `directory`."""
    ids = set(DEMO_KEY_IDS)
    for path in directory.glob(f"*{DEMO_KEY_SUFFIX}"):
        public = serialization.load_pem_public_key(path.read_bytes())
        if isinstance(public, Ed25519PublicKey):
            ids.add(key_id(public))
    return ids


def load_signing_key(path: Path | None, demonstration_only: bool) -> Ed25519PrivateKey:
    """Load the signing key and check that it may sign this bundle.

    Raises:
        InputError: If no key is given, it cannot be read, or it is the demonstration
            key and the bundle is not ``demonstration_only``.
    """
    if path is None:
        raise InputError(
            "no signing key given; pass --signing-key PEM (a key made with cadr-package "
            f"keygen, or {DEMO_PRIVATE_KEY} together with --demonstration-only)"
        )
    try:
        key = load_private_key(path)
    except SigningError as e:
        raise InputError(str(e)) from e

    if key_id(key.public_key()) in demo_key_ids() and not demonstration_only:
        raise InputError(f"{path}: this is the published demonstration key, which may sign only "
                         "--demonstration-only bundles; sign clinical bundles with your own key")
    return key


def keyring_for(key: Ed25519PrivateKey, source: Path) -> Keyring:
    """Return a keyring that trusts only ``key``'s public half, scoped as the device would."""
    public = key.public_key()
    kid = key_id(public)
    trusted = TrustedKey(kid, public, demo_only=kid in demo_key_ids(), source=source)
    return Keyring({kid: trusted}, source.parent)

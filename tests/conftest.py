"""Shared fixtures: ``tiny_bundle``, one real signed bundle built once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class TinyBundle:
    """A bundle made by ``cadr_convert.convert.convert_int8`` from a freshly trained tiny CNN.

    Attributes:
        bundle: The bundle directory; treat it as read-only (copy it before tampering).
        key_dir: Directory with the test public key ``cadr-test.pub``, for a Keyring.
        private_key: The test signing key (PEM) that signed the bundle.
        model: The trained source ``.keras`` model (mobilenet normalisation).
        train: Labelled image folder used for training and calibration.
        validation: Labelled image folder used for validation.
    """

    bundle: Path
    key_dir: Path
    private_key: Path
    model: Path
    train: Path
    validation: Path


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    from tiny_classifier import LABELS, train_model, write_image_folder

    from cadr_convert.convert import ConversionRequest, convert_int8
    from cadr_convert.signing import generate_keypair

    root = tmp_path_factory.mktemp("tiny_bundle")
    key_dir = root / "keys"
    private_key = root / "cadr-test-signing-key.pem"
    generate_keypair(private_key, key_dir / "cadr-test.pub")

    train = write_image_folder(root / "train", per_label=60, seed=1)
    validation = write_image_folder(root / "validation", per_label=30, seed=2)
    model = train_model(train, root / "tiny.keras")

    request = ConversionRequest(
        model=model, calibration=train, validation=validation, out=root / "bundle",
        name="tiny-test", version="1.0.0", signing_key=private_key, labels=LABELS,
        normalisation="mobilenet", allow_small_calibration=True,
    )
    result = convert_int8(request)
    return TinyBundle(result.bundle, key_dir, private_key, model, train, validation)

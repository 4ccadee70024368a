"""load_bundle rejects tampered or malformed bundles made by the real converter."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from cadr_convert.signing import load_private_key, sign_bundle
from cadr_device.bundle import load_bundle
from cadr_device.errors import BundleError, SignatureError
from cadr_device.signing import Keyring

pytestmark = pytest.mark.slow


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.bundle, copy)
    return copy


def keyring(tiny_bundle) -> Keyring:
    return Keyring.from_directory(tiny_bundle.key_dir)


def rewrite_manifest(bundle: Path, tiny_bundle, change) -> None:
    """Edit the manifest mapping with ``change`` and sign it again with the test key."""
    path = bundle / "manifest.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    sign_bundle(bundle, load_private_key(tiny_bundle.private_key))


def test_untouched_bundle_loads(tiny_bundle, bundle_copy: Path) -> None:
    bundle = load_bundle(bundle_copy, keyring(tiny_bundle))
    assert bundle.manifest.name == "tiny-test"


def test_tampered_model_bytes_rejected(tiny_bundle, bundle_copy: Path) -> None:
    model = bundle_copy / "model.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.tflite: sha256 is"):
        load_bundle(bundle_copy, keyring(tiny_bundle))


def test_edited_manifest_breaks_signature(tiny_bundle, bundle_copy: Path) -> None:
    path = bundle_copy / "manifest.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("threshold: ", "threshold: 0"),
                    encoding="utf-8")
    with pytest.raises(SignatureError):
        load_bundle(bundle_copy, keyring(tiny_bundle))


def test_missing_field_rejected(tiny_bundle, bundle_copy: Path) -> None:
    rewrite_manifest(bundle_copy, tiny_bundle, lambda m: m["decision"].pop("threshold"))
    with pytest.raises(BundleError, match="'decision.threshold': required field is missing"):
        load_bundle(bundle_copy, keyring(tiny_bundle))


def test_wrong_schema_version_rejected(tiny_bundle, bundle_copy: Path) -> None:
    rewrite_manifest(bundle_copy, tiny_bundle, lambda m: m.update(schema_version=2))
    with pytest.raises(BundleError, match="schema version 2 is not supported"):
        load_bundle(bundle_copy, keyring(tiny_bundle))


def test_unknown_positive_label_rejected(tiny_bundle, bundle_copy: Path) -> None:
    rewrite_manifest(bundle_copy, tiny_bundle, lambda m: m.update(positive_label="benign"))
    with pytest.raises(BundleError, match="positive label 'benign' is not one of"):
        load_bundle(bundle_copy, keyring(tiny_bundle))


def test_extra_file_rejected(tiny_bundle, bundle_copy: Path) -> None:
    (bundle_copy / "notes.txt").write_text("added later", encoding="utf-8")
    with pytest.raises(BundleError, match="not listed in the signed manifest"):
        load_bundle(bundle_copy, keyring(tiny_bundle))


def test_untrusted_key_rejected(bundle_copy: Path) -> None:
    repo_keys = Path(__file__).resolve().parent.parent / "device" / "keys"
    with pytest.raises(SignatureError):
        load_bundle(bundle_copy, Keyring.from_directory(repo_keys))


def test_renamed_demo_key_stays_demo_only(tiny_bundle, bundle_copy: Path,
                                          tmp_path: Path) -> None:
    # The demonstration private key is published, so a copy of its public half under a
    # clinical-looking name must not let it vouch for a clinical bundle.
    repository = Path(__file__).resolve().parents[1]
    demo_private = repository / "models" / "keys" / "cadr-demo-signing-key.pem"
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copy(repository / "device" / "keys" / "cadr-demo.demo.pub", trusted / "vendor.pub")

    manifest_path = bundle_copy / "manifest.yaml"
    manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    manifest["demonstration_only"] = False
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    sign_bundle(bundle_copy, load_private_key(demo_private))

    with pytest.raises(SignatureError, match="demonstration bundles only"):
        load_bundle(bundle_copy, Keyring.from_directory(trusted))

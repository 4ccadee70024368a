"""``cadr-package``: key generation, re-signing, version bumps and packing, via its CLI."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from update_support import DEMO_PRIVATE_KEY, read_members

from cadr_device.bundle import load_bundle
from cadr_device.signing import Keyring
from cadr_device.update.config import PackageLimits
from cadr_device.update.package import verify_package


def run_package(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cadr_convert.package_cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def bundle(tmp_path: Path, tiny_bundle: object) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.bundle, copy)  # type: ignore[attr-defined]
    return copy


@pytest.fixture
def key(tiny_bundle: object) -> Path:
    return tiny_bundle.private_key  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def keyring(tiny_bundle: object) -> Keyring:
    return Keyring.from_directory(tiny_bundle.key_dir)  # type: ignore[attr-defined]


def manifest_of(bundle: Path) -> dict[str, object]:
    return yaml.safe_load((bundle / "manifest.yaml").read_text(encoding="utf-8"))


def test_keygen_writes_private_key_0600(tmp_path: Path) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "keys" / "k.pub"

    result = run_package("keygen", private, public)

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert Keyring.from_directory(public.parent).keys
    again = run_package("keygen", private, public)
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_pack_lists_every_file(bundle: Path, key: Path, keyring: Keyring,
                               tmp_path: Path) -> None:
    result = run_package("pack", bundle, "--key", key, "--out", tmp_path / "out")

    assert result.returncode == 0, result.stderr
    package = Path(result.stdout.strip())
    assert package.name == "tiny-test-1.0.0.cadrpkg"
    verified = verify_package(package, keyring, PackageLimits())
    bundle_files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*")
                          if p.is_file())
    assert sorted(f.path for f in verified.manifest.files) == [
        f"bundle/{name}" for name in bundle_files]
    names = [info.name for info, _ in read_members(package)]
    assert names[:2] == ["package.json", "package.sig"]
    assert all(info.type == tarfile.REGTYPE for info, _ in read_members(package))


def test_pack_raises_min_app_version(bundle: Path, key: Path, tmp_path: Path) -> None:
    result = run_package("pack", bundle, "--key", key, "--out", tmp_path,
                         "--min-app-version", "0.5.0")

    assert result.returncode == 0, result.stderr
    document = json.loads(read_members(Path(result.stdout.strip()))[0][1])
    assert document["min_app_version"] == "0.5.0"


def test_pack_rejects_lower_min_app_version(bundle: Path, key: Path, tmp_path: Path) -> None:
    assert manifest_of(bundle)["min_app_version"] == "0.1.0"

    result = run_package("pack", bundle, "--key", key, "--out", tmp_path,
                         "--min-app-version", "0.0.1")

    assert result.returncode == 1
    assert "older than the bundle's own min_app_version" in result.stderr


def test_pack_rejects_unlisted_file(bundle: Path, key: Path, tmp_path: Path) -> None:
    (bundle / "notes.txt").write_text("added after signing")

    result = run_package("pack", bundle, "--key", key, "--out", tmp_path / "out")

    assert result.returncode == 1
    assert "notes.txt" in result.stderr
    assert not (tmp_path / "out").exists()


def test_pack_rejects_demo_key_for_clinical(bundle: Path, key: Path, tmp_path: Path) -> None:
    fields = manifest_of(bundle)
    assert fields["demonstration_only"] is False

    result = run_package("pack", bundle, "--key", DEMO_PRIVATE_KEY, "--out", tmp_path / "out")

    assert result.returncode == 1
    assert "published demonstration key" in result.stderr


def test_sign_rewrites_version(bundle: Path, key: Path, keyring: Keyring) -> None:
    old_signature = (bundle / "manifest.sig").read_text()

    result = run_package("sign", bundle, "--key", key, "--version", "2.3.4")

    assert result.returncode == 0, result.stderr
    assert load_bundle(bundle, keyring).manifest.version == "2.3.4"
    assert (bundle / "manifest.sig").read_text() != old_signature


def test_sign_after_edit_verifies(bundle: Path, key: Path, keyring: Keyring) -> None:
    fields = manifest_of(bundle)
    fields["selftest"]["cases"][0]["probability"] = 0.5  # type: ignore[index]
    (bundle / "manifest.yaml").write_text(yaml.safe_dump(fields, sort_keys=False))
    with pytest.raises(Exception, match="altered after signing"):
        load_bundle(bundle, keyring)

    result = run_package("sign", bundle, "--key", key)

    assert result.returncode == 0, result.stderr
    assert load_bundle(bundle, keyring).manifest.selftest.cases[0].probability == 0.5


def test_sign_rejects_invalid_version(bundle: Path, key: Path) -> None:
    result = run_package("sign", bundle, "--key", key, "--version", "2.3")

    assert result.returncode == 1
    assert "MAJOR.MINOR.PATCH" in result.stderr


def test_bump_copies_and_resigns(bundle: Path, key: Path, keyring: Keyring,
                                 tmp_path: Path) -> None:
    before = (bundle / "manifest.yaml").read_bytes()

    result = run_package("bump", bundle, "--version", "1.4.0", "--key", key)

    assert result.returncode == 0, result.stderr
    copy = Path(result.stdout.strip())
    assert copy == tmp_path / "tiny-test-1.4.0"
    assert load_bundle(copy, keyring).manifest.version == "1.4.0"
    assert (bundle / "manifest.yaml").read_bytes() == before
    again = run_package("bump", bundle, "--version", "1.4.0", "--key", key)
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_demo_bundle_bump_and_pack(tmp_path: Path, tiny_bundle: object) -> None:
    # The demonstration key may sign a demonstration bundle; the shipped demo key verifies it.
    demo = tmp_path / "demo"
    shutil.copytree(tiny_bundle.bundle, demo)  # type: ignore[attr-defined]
    fields = manifest_of(demo)
    fields["demonstration_only"] = True
    (demo / "manifest.yaml").write_text(yaml.safe_dump(fields, sort_keys=False))
    assert run_package("sign", demo, "--key", DEMO_PRIVATE_KEY).returncode == 0

    bumped = run_package("bump", demo, "--version", "0.2.0", "--key", DEMO_PRIVATE_KEY,
                         "--out", tmp_path / "demo-0.2.0")
    packed = run_package("pack", tmp_path / "demo-0.2.0", "--key", DEMO_PRIVATE_KEY, "--out",
                         tmp_path / "out")

    assert bumped.returncode == 0, bumped.stderr
    assert packed.returncode == 0, packed.stderr
    shipped = Keyring.from_directory(Path(__file__).resolve().parent.parent / "device" / "keys")
    verified = verify_package(Path(packed.stdout.strip()), shipped, PackageLimits())
    assert verified.signer.demo_only

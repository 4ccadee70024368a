"""Helpers for the update tests: versioned bundles, packages, raw tar members, snapshots.

Bundles are copies of the session's ``tiny_bundle`` with a new version, re-signed with its
test key through ``cadr_convert.package``. Packages are real tar files signed with real
Ed25519 keys.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cadr_convert.package import bump_bundle, pack_bundle, resign_bundle
from cadr_convert.signing import load_private_key, sign_bytes
from cadr_device.bundle import load_bundle
from cadr_device.signing import Keyring
from cadr_device.update.config import PackageLimits, ServiceSettings, UpdateConfig
from cadr_device.update.install import Updater

REPO = Path(__file__).resolve().parent.parent
DEMO_PUBLIC_KEY = REPO / "device" / "keys" / "cadr-demo.demo.pub"
DEMO_PRIVATE_KEY = REPO / "models" / "keys" / "cadr-demo-signing-key.pem"
NO_SERVICE = ServiceSettings(restart_command=(), ready_command=())


@dataclass
class UpdateWorkspace:
    """An install root, a trusted key directory and a folder for bundles and packages."""

    source: Path
    key_path: Path
    keys: Path
    root: Path
    work: Path

    @property
    def key(self) -> Ed25519PrivateKey:
        return load_private_key(self.key_path)

    def config(self, **overrides: object) -> UpdateConfig:
        settings: dict[str, object] = {"root": self.root, "key_dir": self.keys,
                                       "service": NO_SERVICE}
        settings.update(overrides)
        return UpdateConfig(**settings)  # type: ignore[arg-type]

    def updater(self, **overrides: object) -> Updater:
        return Updater(self.config(**overrides))

    def bundle(self, version: str, edit: dict[str, object] | None = None) -> Path:
        """Copy the source bundle as ``version``; ``edit`` sets top-level manifest keys."""
        out = self.work / "bundles" / f"{version}-{len(list(self.work.glob('bundles/*')))}"
        out.parent.mkdir(parents=True, exist_ok=True)
        bump_bundle(self.source, version, self.key, out)
        if edit:
            manifest_path = out / "manifest.yaml"
            fields = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
            fields.update(edit)
            manifest_path.write_text(yaml.safe_dump(fields, sort_keys=False), encoding="utf-8")
            resign_bundle(out, self.key)
        return out

    def package(self, version: str, edit: dict[str, object] | None = None,
                min_app_version: str | None = None) -> Path:
        out = self.work / "packages" / f"{version}-{len(list(self.work.glob('packages/*')))}"
        return pack_bundle(self.bundle(version, edit), self.key, out, min_app_version)


def make_workspace(tmp_path: Path, source: Path, private_key: Path, key_dir: Path) -> \
        UpdateWorkspace:
    keys = tmp_path / "keys"
    keys.mkdir()
    for public in key_dir.glob("*.pub"):
        (keys / public.name).write_bytes(public.read_bytes())
    (keys / DEMO_PUBLIC_KEY.name).write_bytes(DEMO_PUBLIC_KEY.read_bytes())
    return UpdateWorkspace(source, private_key, keys, tmp_path / "root", tmp_path / "work")


def snapshot(root: Path) -> dict[str, object]:
    """Return links, every installed file's sha256, leftover staging entries and the journal."""
    bundles = root / "bundles"
    files = {}
    for path in sorted(bundles.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files[path.relative_to(bundles).as_posix()] = hashlib.sha256(
                path.read_bytes()).hexdigest()
    links = {name: os.readlink(bundles / name) for name in ("current", "previous")
             if (bundles / name).is_symlink()}
    return {
        "links": links,
        "files": files,
        "staging": sorted(p.name for p in (root / "staging").iterdir()),
        "journal": (root / "update" / "journal.json").exists(),
    }


def audit_records(root: Path) -> list[dict[str, object]]:
    path = root / "update" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_members(package: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Return every member of a package with its data."""
    members = []
    with tarfile.open(package, "r:") as archive:
        for member in archive:
            source = archive.extractfile(member)
            members.append((member, source.read() if source else b""))
    return members


def write_members(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """Write a tar file of ``members`` exactly as given, whatever their type or name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return path


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


def resigned(members: list[tuple[tarfile.TarInfo, bytes]], document: dict[str, object],
             key: Ed25519PrivateKey) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Replace package.json with ``document`` and package.sig with a fresh signature by ``key``."""
    manifest = (json.dumps(document, indent=2) + "\n").encode("utf-8")
    signature = sign_bytes(key, manifest).encode("utf-8")
    return [regular("package.json", manifest), regular("package.sig", signature), *members[2:]]


def package_document(members: list[tuple[tarfile.TarInfo, bytes]]) -> dict[str, object]:
    return json.loads(members[0][1])


def declare(document: dict[str, object], name: str, data: bytes) -> None:
    """Add or update a files entry of a package manifest for member ``name``."""
    files = [f for f in document["files"] if f["path"] != name]  # type: ignore[attr-defined]
    files.append({"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    document["files"] = files


def run_cli(*args: str | Path,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cadr-update`` in a subprocess with the test interpreter."""
    return subprocess.run([sys.executable, "-m", "cadr_device.update.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, **(env or {})})


def assert_runnable(root: Path, keys: Path) -> str:
    """Assert that ``current`` names a verified bundle whose self-test passes; return it."""
    current = root / "bundles" / "current"
    assert current.is_symlink()
    load_bundle(current, Keyring.from_directory(keys))
    result = subprocess.run([sys.executable, "-m", "cadr_device.update.selftest_cli",
                             str(current), "--keys", str(keys)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return os.readlink(current)


SMALL_LIMITS = PackageLimits(max_member_bytes=64 * 1024, max_total_bytes=128 * 1024)

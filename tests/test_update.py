"""Install, scan, rollback and every rejected package: the installed state never changes.

Each attack builds a real tar file from a valid signed package and alters it. The test
checks that ``cadr-update`` rejects it with the right error. ``current``, ``previous``,
every installed file, the staging area and the journal must stay exactly as they were.
"""

from __future__ import annotations

import fcntl
import gzip
import logging
import os
import resource
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from accel_support import install_fake_packager
from device_bundle import INPUT_SIZE
from update_support import (
    DEMO_PRIVATE_KEY,
    SMALL_LIMITS,
    UpdateWorkspace,
    assert_runnable,
    audit_records,
    declare,
    make_workspace,
    package_document,
    read_members,
    regular,
    resigned,
    run_cli,
    snapshot,
    special,
    write_members,
)

from cadr_convert.package import pack_bundle, resign_bundle
from cadr_convert.signing import generate_keypair, load_private_key
from cadr_device.signing import key_id
from cadr_device.update.config import ServiceSettings
from cadr_device.update.errors import (
    IncompatibleError,
    LockedError,
    NoRollbackTargetError,
    NotNewerError,
    PackageError,
    SelfTestFailedError,
    ServiceNotReadyError,
    UpdateError,
)


@pytest.fixture
def workspace(tmp_path: Path, tiny_bundle: object) -> UpdateWorkspace:
    """A workspace with bundle 1.0.0 installed as ``current``."""
    space = make_workspace(tmp_path, tiny_bundle.bundle, tiny_bundle.private_key,  # type: ignore[attr-defined]
                           tiny_bundle.key_dir)  # type: ignore[attr-defined]
    space.updater().install(space.package("1.0.0"))
    return space


@pytest.fixture
def valid_members(workspace: UpdateWorkspace) -> list[tuple[tarfile.TarInfo, bytes]]:
    """The members of a valid signed package of version 1.1.0."""
    return read_members(workspace.package("1.1.0"))


def assert_rejected(workspace: UpdateWorkspace, package: Path, error: type[UpdateError],
                    message: str, **overrides: object) -> None:
    before = snapshot(workspace.root)
    with pytest.raises(error) as caught:
        workspace.updater(**overrides).install(package)
    assert message in str(caught.value)
    assert snapshot(workspace.root) == before
    last = audit_records(workspace.root)[-1]
    assert last["package"] == package.name
    assert last["reason"] == error.reason


def first_bundle_member(members: list[tuple[tarfile.TarInfo, bytes]], suffix: str) -> int:
    return next(i for i, (info, _) in enumerate(members) if info.name.endswith(suffix))


# Successful paths ---------------------------------------------------------------------------


def test_install_switches_current_and_previous(workspace: UpdateWorkspace) -> None:
    installed = workspace.updater().install(workspace.package("1.1.0"))

    state = snapshot(workspace.root)
    assert installed == "tiny-test-1.1.0"
    assert state["links"] == {"current": "tiny-test-1.1.0", "previous": "tiny-test-1.0.0"}
    assert state["staging"] == []
    assert state["journal"] is False
    assert assert_runnable(workspace.root, workspace.keys) == "tiny-test-1.1.0"
    last = audit_records(workspace.root)[-1]
    assert last["outcome"] == "installed"
    assert last["version"] == "1.1.0"
    assert last["signer"] == key_id(load_private_key(workspace.key_path).public_key())


def test_install_restarts_and_waits_for_ready_file(workspace: UpdateWorkspace,
                                                   tmp_path: Path) -> None:
    ready_file = tmp_path / "ready"
    restart = (sys.executable, "-c",
               "import os, sys; open(sys.argv[1], 'w').write(os.readlink(sys.argv[2]))",
               str(ready_file), str(workspace.root / "bundles" / "current"))
    ready = (sys.executable, "-c", "import os, sys; sys.exit(not os.path.exists(sys.argv[1]))",
             str(ready_file))
    service = ServiceSettings(restart_command=restart, ready_command=ready, ready_timeout_s=60,
                              ready_poll_s=0.1)

    workspace.updater(service=service).install(workspace.package("1.1.0"))

    assert ready_file.read_text() == "tiny-test-1.1.0"


def test_service_never_ready_restores_previous(workspace: UpdateWorkspace,
                                               tmp_path: Path) -> None:
    restarts = tmp_path / "restarts.log"
    restart = (sys.executable, "-c",
               "import os, sys; open(sys.argv[1], 'a').write(os.readlink(sys.argv[2]) + '\\n')",
               str(restarts), str(workspace.root / "bundles" / "current"))
    never_ready = (sys.executable, "-c", "import sys; sys.exit(3)")
    service = ServiceSettings(restart_command=restart, ready_command=never_ready,
                              ready_timeout_s=1.0, ready_poll_s=0.2)
    before = snapshot(workspace.root)
    package = workspace.package("1.1.0")

    with pytest.raises(ServiceNotReadyError) as caught:
        workspace.updater(service=service).install(package)

    assert "switched back to tiny-test-1.0.0" in str(caught.value)
    assert snapshot(workspace.root) == before
    assert restarts.read_text().splitlines() == ["tiny-test-1.1.0", "tiny-test-1.0.0"]
    last = audit_records(workspace.root)[-1]
    assert last["outcome"] == "failed"
    assert last["reason"] == "service_not_ready"
    assert last["version"] == "1.1.0"


def test_selftest_mismatch_rejected(workspace: UpdateWorkspace) -> None:
    manifest = (workspace.source / "manifest.yaml").read_text(encoding="utf-8")
    import yaml

    selftest = yaml.safe_load(manifest)["selftest"]
    selftest["cases"][0]["probability"] = 1.0 - selftest["cases"][0]["probability"]
    package = workspace.package("1.1.0", edit={"selftest": selftest})

    assert_rejected(workspace, package, SelfTestFailedError, "self-test failed")
    assert audit_records(workspace.root)[-1]["outcome"] == "failed"


def test_rollback_switches_back_and_forth(workspace: UpdateWorkspace) -> None:
    updater = workspace.updater()
    updater.install(workspace.package("1.1.0"))

    assert updater.rollback() == "tiny-test-1.0.0"
    assert snapshot(workspace.root)["links"] == {"current": "tiny-test-1.0.0",
                                                 "previous": "tiny-test-1.1.0"}
    assert updater.rollback() == "tiny-test-1.1.0"
    assert audit_records(workspace.root)[-1]["outcome"] == "rolled_forward"


def test_rollback_names_its_direction(workspace: UpdateWorkspace,
                                      caplog: pytest.LogCaptureFixture) -> None:
    updater = workspace.updater()
    updater.install(workspace.package("1.1.0"))
    caplog.set_level(logging.INFO, logger="cadr_device.update.install")

    updater.rollback()
    updater.rollback()

    back, forward = audit_records(workspace.root)[-2:]
    assert back["outcome"] == "rolled_back"
    assert back["from"] == "tiny-test-1.1.0"
    assert back["bundle"] == "tiny-test-1.0.0"
    assert back["detail"] == "switched from tiny-test-1.1.0 to tiny-test-1.0.0"
    assert forward["outcome"] == "rolled_forward"
    assert forward["from"] == "tiny-test-1.0.0"
    assert forward["bundle"] == "tiny-test-1.1.0"
    assert forward["detail"] == "switched from tiny-test-1.0.0 to tiny-test-1.1.0"
    messages = [r.getMessage() for r in caplog.records if "switched from" in r.getMessage()]
    assert messages == ["Rolled back: switched from tiny-test-1.1.0 to tiny-test-1.0.0",
                        "Rolled forward: switched from tiny-test-1.0.0 to tiny-test-1.1.0"]


def test_rollback_without_previous(workspace: UpdateWorkspace) -> None:
    with pytest.raises(NoRollbackTargetError):
        workspace.updater().rollback()
    assert snapshot(workspace.root)["links"] == {"current": "tiny-test-1.0.0"}


def test_retention_keeps_current_and_previous(workspace: UpdateWorkspace) -> None:
    updater = workspace.updater(keep=1)
    for version in ("1.1.0", "1.2.0", "1.3.0"):
        updater.install(workspace.package(version))

    assert updater.store.installed() == ["tiny-test-1.2.0", "tiny-test-1.3.0"]
    removed = [r["removed"] for r in audit_records(workspace.root) if r["outcome"] == "installed"]
    assert removed[-1] == ["tiny-test-1.1.0"]


def test_scan_installs_oldest_first(workspace: UpdateWorkspace, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for version in ("1.2.0", "1.1.0", "0.9.0"):
        package = workspace.package(version)
        package.rename(inbox / package.name)
    (inbox / "notes.txt").write_text("not a package")

    result = run_cli("--root", workspace.root, "--keys", workspace.keys, "--no-restart",
                     "scan", inbox, "--archive", tmp_path / "done")

    assert result.returncode == 0, result.stderr
    installs = [(r["version"], r["outcome"]) for r in audit_records(workspace.root)[1:]]
    assert installs == [("0.9.0", "skipped"), ("1.1.0", "installed"), ("1.2.0", "installed")]
    assert sorted(p.name for p in inbox.iterdir()) == ["notes.txt"]
    assert len(list((tmp_path / "done").iterdir())) == 3


def test_scan_with_nothing_newer_exits_11(workspace: UpdateWorkspace, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    package = workspace.package("1.0.0")
    package.rename(inbox / package.name)

    result = run_cli("--root", workspace.root, "--keys", workspace.keys, "--no-restart",
                     "scan", inbox)

    assert result.returncode == NotNewerError.exit_code, result.stderr


def test_cli_status_prints_current(workspace: UpdateWorkspace) -> None:
    import json

    result = run_cli("--root", workspace.root, "--keys", workspace.keys, "status")

    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["current"] == "tiny-test-1.0.0"
    assert status["last_attempt"]["outcome"] == "installed"


def test_cli_help_lists_exit_codes() -> None:
    result = run_cli("--help")

    assert result.returncode == 0
    for code in ("10", "11", "12", "13", "14", "15", "16", "17", "18", "19"):
        assert f"  {code}  " in result.stdout


def test_missing_key_directory_exits_19(workspace: UpdateWorkspace, tmp_path: Path) -> None:
    before = snapshot(workspace.root)

    result = run_cli("--root", workspace.root, "--keys", tmp_path / "no-keys", "--no-restart",
                     "install", workspace.package("1.1.0"))

    assert result.returncode == 19
    assert "trusted key directory not found" in result.stderr
    assert snapshot(workspace.root) == before


def test_lock_held_rejects_second_run(workspace: UpdateWorkspace) -> None:
    package = workspace.package("1.1.0")
    descriptor = os.open(workspace.root / "update" / "lock", os.O_RDWR)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        result = run_cli("--root", workspace.root, "--keys", workspace.keys, "--no-restart",
                         "install", package)
    finally:
        os.close(descriptor)

    assert result.returncode == LockedError.exit_code
    assert "another cadr-update is running" in result.stderr


# Version and compatibility ------------------------------------------------------------------


def test_downgrade_rejected(workspace: UpdateWorkspace) -> None:
    package = workspace.package("0.9.0")
    assert_rejected(workspace, package, NotNewerError, "not newer than the running")

    result = run_cli("--root", workspace.root, "--keys", workspace.keys, "--no-restart",
                     "install", package)
    assert result.returncode == NotNewerError.exit_code


def test_downgrade_allowed_when_requested(workspace: UpdateWorkspace) -> None:
    workspace.updater(allow_downgrade=True).install(workspace.package("0.9.0"))

    assert snapshot(workspace.root)["links"]["current"] == "tiny-test-0.9.0"
    assert audit_records(workspace.root)[-1]["downgrade"] is True


def test_same_version_rejected(workspace: UpdateWorkspace) -> None:
    assert_rejected(workspace, workspace.package("1.0.0"), NotNewerError,
                    "already installed and running", allow_downgrade=True)


def test_incompatible_app_version_rejected(workspace: UpdateWorkspace) -> None:
    package = workspace.package("1.1.0", min_app_version="99.0.0")

    assert_rejected(workspace, package, IncompatibleError, "needs cadr app 99.0.0")
    result = run_cli("--root", workspace.root, "--keys", workspace.keys, "--no-restart",
                     "install", package)
    assert result.returncode == IncompatibleError.exit_code


def test_incompatible_bundle_min_app_rejected(workspace: UpdateWorkspace) -> None:
    package = workspace.package("1.1.0", edit={"min_app_version": "50.0.0"})

    assert_rejected(workspace, package, IncompatibleError, "needs cadr app 50.0.0")


# Signature attacks --------------------------------------------------------------------------


def test_tampered_file_rejected(workspace: UpdateWorkspace, valid_members: list) -> None:
    index = first_bundle_member(valid_members, "model.tflite")
    info, data = valid_members[index]
    valid_members[index] = (info, data[:-1] + bytes([data[-1] ^ 0xFF]))
    package = write_members(workspace.work / "tampered.cadrpkg", valid_members)

    assert_rejected(workspace, package, PackageError, "the package was altered or damaged")
    last = audit_records(workspace.root)[-1]
    assert last["claimed_version"] == "1.1.0"
    assert last["claimed_signer"] == key_id(load_private_key(workspace.key_path).public_key())


def test_tampered_package_manifest_rejected(workspace: UpdateWorkspace,
                                            valid_members: list) -> None:
    info, data = valid_members[0]
    valid_members[0] = (info, data.replace(b'"1.1.0"', b'"1.9.0"'))
    package = write_members(workspace.work / "tampered.cadrpkg", valid_members)

    assert_rejected(workspace, package, PackageError, "does not match the manifest")


def test_tampered_bundle_manifest_rejected(workspace: UpdateWorkspace,
                                           valid_members: list) -> None:
    # The package signature is valid again, but the bundle's own signature is not.
    index = first_bundle_member(valid_members, "manifest.yaml")
    info, data = valid_members[index]
    changed = data.replace(b"threshold:", b"threshold: 0.01\n  old_threshold:", 1)
    valid_members[index] = (info, changed)
    document = package_document(valid_members)
    declare(document, info.name, changed)
    members = resigned(valid_members, document, load_private_key(workspace.key_path))
    package = write_members(workspace.work / "tampered.cadrpkg", members)

    assert_rejected(workspace, package, PackageError, "bundle inside the package is invalid")


def test_wrong_key_rejected(workspace: UpdateWorkspace, valid_members: list) -> None:
    generate_keypair(workspace.work / "other.pem", workspace.work / "other.pub")
    members = resigned(valid_members, package_document(valid_members),
                       load_private_key(workspace.work / "other.pem"))
    package = write_members(workspace.work / "wrong-key.cadrpkg", members)

    assert_rejected(workspace, package, PackageError, "not among the trusted keys")


def test_demo_key_on_clinical_package_rejected(workspace: UpdateWorkspace,
                                               valid_members: list) -> None:
    document = package_document(valid_members)
    document["bundle"]["demonstration_only"] = False  # type: ignore[index]
    members = resigned(valid_members, document, load_private_key(DEMO_PRIVATE_KEY))
    package = write_members(workspace.work / "demo-key.cadrpkg", members)

    assert_rejected(workspace, package, PackageError, "may sign demonstration bundles only")


def test_unsigned_package_rejected(workspace: UpdateWorkspace, valid_members: list) -> None:
    members = [m for m in valid_members if m[0].name != "package.sig"]
    package = write_members(workspace.work / "unsigned.cadrpkg", members)

    assert_rejected(workspace, package, PackageError, "the package is unsigned")


def test_garbage_signature_rejected(workspace: UpdateWorkspace, valid_members: list) -> None:
    valid_members[1] = regular("package.sig", b'{"algorithm": "ed25519"}')
    package = write_members(workspace.work / "bad-sig.cadrpkg", valid_members)

    assert_rejected(workspace, package, PackageError, "package signature rejected")


# Unsafe members -----------------------------------------------------------------------------


UNSAFE_MEMBERS = {
    "absolute_path": (regular("/etc/cadr-evil", b"x"), "absolute path"),
    "dot_dot": (regular("bundle/../../evil", b"x"), "contains '..'"),
    "dot_component": (regular("bundle/./model.tflite", b"x"), "not a normalised"),
    "backslash": (regular("bundle\\evil", b"x"), "backslash"),
    "symlink": (special("bundle/link", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
    "hardlink": (special("bundle/hard", tarfile.LNKTYPE, "bundle/model.tflite"), "hard link"),
    "char_device": (special("bundle/tty", tarfile.CHRTYPE), "character device"),
    "block_device": (special("bundle/sda", tarfile.BLKTYPE), "block device"),
    "fifo": (special("bundle/pipe", tarfile.FIFOTYPE), "FIFO"),
    "directory": (special("bundle/subdir", tarfile.DIRTYPE), "directory"),
    "undeclared": (regular("bundle/extra.txt", b"not signed"), "not covered by the signed"),
    "case_only": (regular("bundle/MODEL.tflite", b"x"), "differ only by case"),
}


@pytest.mark.parametrize("kind", sorted(UNSAFE_MEMBERS))
def test_unsafe_member_rejected(workspace: UpdateWorkspace, valid_members: list,
                                kind: str) -> None:
    member, message = UNSAFE_MEMBERS[kind]
    package = write_members(workspace.work / f"{kind}.cadrpkg", [*valid_members, member])

    assert_rejected(workspace, package, PackageError, message)


def test_declared_unsafe_name_rejected(workspace: UpdateWorkspace, valid_members: list) -> None:
    # Signed and declared, so only the name check can stop it.
    document = package_document(valid_members)
    declare(document, "bundle/../escape", b"x")
    members = resigned(valid_members, document, load_private_key(workspace.key_path))
    package = write_members(workspace.work / "declared.cadrpkg",
                            [*members, regular("bundle/../escape", b"x")])

    assert_rejected(workspace, package, PackageError, "contains '..'")
    assert not (workspace.root / "escape").exists()


def test_file_used_as_directory_rejected(workspace: UpdateWorkspace,
                                         valid_members: list) -> None:
    document = package_document(valid_members)
    declare(document, "bundle/model.tflite/inner", b"x")
    members = resigned(valid_members, document, load_private_key(workspace.key_path))
    package = write_members(workspace.work / "file-dir.cadrpkg",
                            [*members, regular("bundle/model.tflite/inner", b"x")])

    assert_rejected(workspace, package, PackageError, "is also the directory of")


def test_duplicate_member_rejected(workspace: UpdateWorkspace, valid_members: list) -> None:
    index = first_bundle_member(valid_members, "model.tflite")
    info, _ = valid_members[index]
    package = write_members(workspace.work / "duplicate.cadrpkg",
                            [*valid_members, regular(info.name, b"second copy")])

    assert_rejected(workspace, package, PackageError, "appears twice")


def test_oversize_member_rejected(workspace: UpdateWorkspace, valid_members: list) -> None:
    big = b"\0" * (SMALL_LIMITS.max_member_bytes + 1)
    package = write_members(workspace.work / "big.cadrpkg",
                            [*valid_members, regular("bundle/big.bin", big)])

    assert_rejected(workspace, package, PackageError, "more than the limit",
                    limits=SMALL_LIMITS)


def test_oversize_total_rejected(workspace: UpdateWorkspace, valid_members: list) -> None:
    chunk = b"\0" * (SMALL_LIMITS.max_member_bytes - 1024)
    extra = [regular(f"bundle/part{i}.bin", chunk) for i in range(3)]
    package = write_members(workspace.work / "total.cadrpkg", [*valid_members, *extra])

    assert_rejected(workspace, package, PackageError,
                    f"members total more than {SMALL_LIMITS.max_total_bytes}",
                    limits=SMALL_LIMITS)


def test_truncated_package_rejected(workspace: UpdateWorkspace) -> None:
    package = workspace.package("1.1.0")
    data = package.read_bytes()
    model_offset = data.index(b"TFL3") + 64
    for cut in (model_offset, len(data) // 2, 700):
        truncated = workspace.work / f"truncated-{cut}.cadrpkg"
        truncated.write_bytes(data[:cut])

        assert_rejected(workspace, truncated, PackageError, "truncated")


def test_compressed_or_garbage_rejected(workspace: UpdateWorkspace) -> None:
    package = workspace.package("1.1.0")
    compressed = workspace.work / "compressed.cadrpkg"
    compressed.write_bytes(gzip.compress(package.read_bytes()))
    garbage = workspace.work / "garbage.cadrpkg"
    garbage.write_bytes(os.urandom(4096))

    for bad in (compressed, garbage):
        assert_rejected(workspace, bad, PackageError, "not an uncompressed tar file")


def test_symlinked_package_file_rejected(workspace: UpdateWorkspace) -> None:
    link = workspace.work / "link.cadrpkg"
    link.symlink_to(workspace.package("1.1.0"))

    assert_rejected(workspace, link, PackageError, "not a regular file")


def test_full_disk_during_extraction(workspace: UpdateWorkspace) -> None:
    # RLIMIT_FSIZE makes every write past the limit fail with EFBIG (Python ignores
    # SIGXFSZ), as a full disk fails with ENOSPC; the model is larger than the limit.
    package = workspace.package("1.1.0")
    model_size = max(info.size for info, _ in read_members(package))
    limit = model_size // 2
    assert limit > 4096
    before = snapshot(workspace.root)

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "cadr_device.update.cli", "--root", str(workspace.root),
         "--keys", str(workspace.keys), "--no-restart", "install", str(package)],
        capture_output=True, text=True, timeout=300, check=False,
        preexec_fn=limit_file_size,  # noqa: PLW1509 - sets one rlimit, no threads yet
    )

    assert result.returncode == 16, result.stderr
    assert "free space" in result.stderr
    assert snapshot(workspace.root) == before
    assert audit_records(workspace.root)[-1]["reason"] == "store_error"


# IMX500 network packaging -------------------------------------------------------------------


def _imx500_package(workspace: UpdateWorkspace, version: str) -> Path:
    """Return a signed package whose bundle has an IMX500 network entry."""
    bundle = workspace.bundle(version)
    (bundle / "imx500").mkdir()
    with zipfile.ZipFile(bundle / "imx500" / "packerOut.zip", "w") as packer:
        packer.writestr("dnnParams.xml", "<dnnParams/>")
    manifest_path = bundle / "manifest.yaml"
    fields = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    fields["accelerators"] = {"imx500": {
        "file": "imx500/packerOut.zip",
        "input": {"width": INPUT_SIZE, "height": INPUT_SIZE, "color_order": "RGB"},
        "output": {"positive_index": 0},
        "decision": {"threshold": 0.6, "target_sensitivity": 0.9},
    }}
    manifest_path.write_text(yaml.safe_dump(fields, sort_keys=False), encoding="utf-8")
    resign_bundle(bundle, workspace.key)
    return pack_bundle(bundle, workspace.key, workspace.work / "packages" / f"imx500-{version}")


def test_install_packages_imx500_network(workspace: UpdateWorkspace, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_packager(tmp_path / "bin")
    calls = tmp_path / "packager.log"
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_PACKAGER_LOG", str(calls))
    monkeypatch.delenv("CADR_STATE_DIR", raising=False)

    installed = workspace.updater().install(_imx500_package(workspace, "1.1.0"))

    assert installed == "tiny-test-1.1.0"
    networks = list((workspace.root / "accel" / "imx500").glob("*/network.rpk"))
    assert len(networks) == 1
    assert len(calls.read_text().splitlines()) == 1
    assert "packerOut.zip" in calls.read_text()
    last = audit_records(workspace.root)[-1]
    assert last["outcome"] == "installed"
    assert last["accelerators"] == {"imx500": {"packaged": True, "backend": "imx500",
                                               "network": str(networks[0])}}


def test_install_without_packager_keeps_cpu(workspace: UpdateWorkspace, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))

    installed = workspace.updater(accel_state_dir=tmp_path / "accel").install(
        _imx500_package(workspace, "1.1.0"))

    assert installed == "tiny-test-1.1.0"
    assert snapshot(workspace.root)["links"]["current"] == "tiny-test-1.1.0"
    assert not list((tmp_path / "accel").glob("imx500/*/network.rpk"))
    last = audit_records(workspace.root)[-1]
    assert last["outcome"] == "installed"
    entry = last["accelerators"]["imx500"]
    assert entry["packaged"] is False
    assert entry["backend"] == "cpu"
    assert "the device keeps the CPU model" in entry["detail"]
    assert "imx500-package not found" in entry["detail"]


def test_install_without_imx500_entry_skips_packaging(workspace: UpdateWorkspace) -> None:
    workspace.updater().install(workspace.package("1.1.0"))

    assert "accelerators" not in audit_records(workspace.root)[-1]
    assert not (workspace.root / "accel").exists()

"""Scanning a watched inbox: every rejected entry leaves it, whatever its file type.

``cadr-update.path`` starts a scan while any ``*.cadrpkg`` entry exists, so an entry the
scan leaves behind starts it again and again. Each test runs the real CLI in a subprocess,
which would hit its timeout if the scan opened a FIFO.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from update_support import (
    REPO,
    UpdateWorkspace,
    make_workspace,
    read_members,
    run_cli,
    snapshot,
    write_members,
)

from cadr_device.update.errors import PackageError
from cadr_device.update.install import REJECTED_ARCHIVE_DIR


@pytest.fixture
def workspace(tmp_path: Path, tiny_bundle: object) -> UpdateWorkspace:
    """A workspace with bundle 1.0.0 installed as ``current``."""
    space = make_workspace(tmp_path, tiny_bundle.bundle, tiny_bundle.private_key,  # type: ignore[attr-defined]
                           tiny_bundle.key_dir)  # type: ignore[attr-defined]
    space.updater().install(space.package("1.0.0"))
    return space


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_link_to_device(path: Path) -> None:
    path.symlink_to("/dev/zero")


def make_link_to_directory(path: Path) -> None:
    target = path.parent.parent / "some-folder"
    target.mkdir()
    path.symlink_to(target)


def make_directory(path: Path) -> None:
    path.mkdir()
    (path / "package.json").write_text("{}")


ENTRY_KINDS: dict[str, tuple[Callable[[Path], None], Callable[[int], bool]]] = {
    "fifo": (make_fifo, stat.S_ISFIFO),
    "symlink to /dev/zero": (make_link_to_device, stat.S_ISLNK),
    "symlink to directory": (make_link_to_directory, stat.S_ISLNK),
    "directory": (make_directory, stat.S_ISDIR),
}


def tampered_package(workspace: UpdateWorkspace, path: Path) -> Path:
    """Write a signed 1.1.0 package with one flipped byte in its model to ``path``."""
    members = read_members(workspace.package("1.1.0"))
    index = next(i for i, (info, _) in enumerate(members) if info.name.endswith(".tflite"))
    info, data = members[index]
    members[index] = (info, data[:-1] + bytes([data[-1] ^ 0xFF]))
    return write_members(path, members)


def warning_lines(stderr: str, name: str) -> list[str]:
    return [line for line in stderr.splitlines() if " WARNING " in line and name in line]


def scan_inbox(workspace: UpdateWorkspace, inbox: Path, archive: Path) -> \
        tuple[int, str]:
    result = run_cli("--root", workspace.root, "--keys", workspace.keys, "--no-restart",
                     "scan", inbox, "--archive", archive)
    return result.returncode, result.stderr


@pytest.mark.parametrize("kind", ENTRY_KINDS)
def test_non_regular_entry_moved_out(workspace: UpdateWorkspace, tmp_path: Path,
                                     kind: str) -> None:
    make_entry, is_kind = ENTRY_KINDS[kind]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_entry(inbox / "x.cadrpkg")
    archive = tmp_path / "processed"
    before = snapshot(workspace.root)

    code, stderr = scan_inbox(workspace, inbox, archive)

    assert code == PackageError.exit_code, stderr
    assert list(inbox.iterdir()) == []
    moved = list((archive / REJECTED_ARCHIVE_DIR).iterdir())
    assert [path.name.endswith("-x.cadrpkg") for path in moved] == [True]
    assert is_kind(os.lstat(moved[0]).st_mode)
    assert snapshot(workspace.root) == before


def test_good_package_installs_beside_rejected(workspace: UpdateWorkspace,
                                               tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    os.mkfifo(inbox / "a.cadrpkg")
    package = workspace.package("1.1.0")
    package.rename(inbox / package.name)
    archive = tmp_path / "processed"

    code, stderr = scan_inbox(workspace, inbox, archive)

    assert code == PackageError.exit_code, stderr
    assert list(inbox.iterdir()) == []
    assert snapshot(workspace.root)["links"] == {"current": "tiny-test-1.1.0",
                                                 "previous": "tiny-test-1.0.0"}
    assert [p.name.endswith(package.name) for p in archive.glob("*.cadrpkg")] == [True]
    assert len(list((archive / REJECTED_ARCHIVE_DIR).iterdir())) == 1


def test_failed_install_moved_to_rejected(workspace: UpdateWorkspace, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "garbage.cadrpkg").write_bytes(b"not a tar file" * 100)
    archive = tmp_path / "processed"

    code, stderr = scan_inbox(workspace, inbox, archive)

    assert code == PackageError.exit_code, stderr
    assert list(inbox.iterdir()) == []
    assert len(list((archive / REJECTED_ARCHIVE_DIR).iterdir())) == 1


def test_unmovable_entry_logs_fix(workspace: UpdateWorkspace, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    entry = inbox / "x.cadrpkg"
    os.mkfifo(entry)
    archive = tmp_path / "processed"
    archive.write_text("a file where the archive folder should be")

    code, stderr = scan_inbox(workspace, inbox, archive)

    assert code == PackageError.exit_code, stderr
    assert "Traceback" not in stderr
    assert f"Cannot move {entry}" in stderr
    assert f"rm -r -- {entry}" in stderr
    assert stat.S_ISFIFO(os.lstat(entry).st_mode)


def unit_setting(name: str, key: str) -> list[str]:
    text = (REPO / "systemd" / name).read_text(encoding="utf-8")
    return [line.split("=", 1)[1] for line in text.splitlines()
            if line.startswith(f"{key}=")]


def test_path_unit_rescans_are_bounded() -> None:
    assert unit_setting("cadr-update.path", "TriggerLimitIntervalSec") == ["10min"]
    assert unit_setting("cadr-update.path", "TriggerLimitBurst") == ["10"]
    assert unit_setting("cadr-update.service", "StartLimitIntervalSec") == ["10min"]
    assert unit_setting("cadr-update.service", "StartLimitBurst") == ["10"]


def test_docs_say_how_to_restart_inbox() -> None:
    docs = (REPO / "docs" / "updates.md").read_text(encoding="utf-8")

    assert "systemctl reset-failed cadr-update.path cadr-update.service" in docs
    assert "systemctl start cadr-update.path" in docs


def test_scan_warns_once_per_rejection(workspace: UpdateWorkspace, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    os.mkfifo(inbox / "fifo.cadrpkg")
    tampered_package(workspace, inbox / "tampered.cadrpkg")
    (inbox / "garbage.cadrpkg").write_bytes(b"not a tar file" * 100)

    code, stderr = scan_inbox(workspace, inbox, tmp_path / "processed")

    assert code == PackageError.exit_code, stderr
    fifo = warning_lines(stderr, "fifo.cadrpkg")
    assert len(fifo) == 1, stderr
    assert "name and version unreadable" in fifo[0]
    assert "is a FIFO, not a regular file" in fifo[0]
    tampered = warning_lines(stderr, "tampered.cadrpkg")
    assert len(tampered) == 1, stderr
    assert "claims tiny-test 1.1.0" in tampered[0]
    assert "the package was altered or damaged" in tampered[0]
    garbage = warning_lines(stderr, "garbage.cadrpkg")
    assert len(garbage) == 1, stderr
    assert "not an uncompressed tar file" in garbage[0]
    assert " ERROR " not in stderr


def test_install_warns_once_for_rejection(workspace: UpdateWorkspace) -> None:
    package = tampered_package(workspace, workspace.work / "tampered.cadrpkg")

    result = run_cli("--root", workspace.root, "--keys", workspace.keys, "--no-restart",
                     "install", package)

    assert result.returncode == PackageError.exit_code, result.stderr
    lines = warning_lines(result.stderr, "tampered.cadrpkg")
    assert len(lines) == 1, result.stderr
    assert "claims tiny-test 1.1.0" in lines[0]
    assert "the package was altered or damaged" in lines[0]
    assert f"Nothing was installed from {package}" in result.stderr


def test_scan_help_names_rejected_folder() -> None:
    result = run_cli("scan", "--help")

    assert result.returncode == 0, result.stderr
    assert f"ARCHIVE/{REJECTED_ARCHIVE_DIR}" in result.stdout

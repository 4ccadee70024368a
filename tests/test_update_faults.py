"""Power cuts mid-install: SIGKILL the installer at every step, then run ``recover``.

After recovery the install root must contain the bundles it had before, plus the new one
only when the install had committed. ``current`` must name a bundle that verifies and
passes its self-test in a fresh process, and no staging leftovers or journal may remain.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from update_support import (
    UpdateWorkspace,
    assert_runnable,
    audit_records,
    make_workspace,
    run_cli,
    snapshot,
)

from cadr_device.bundle import load_bundle
from cadr_device.signing import Keyring
from cadr_device.update.errors import NoBundleError
from cadr_device.update.faults import CRASH_ENV

#: Crash points in install order, and whether recovery keeps the new bundle.
CRASH_STEPS = {
    "staging": False,
    "extracted": False,
    "staged": False,
    "selftest_passed": False,
    "switching": False,
    "switched": False,
    "restarted": False,
    "committed": True,
}


@pytest.fixture
def workspace(tmp_path: Path, tiny_bundle: object) -> UpdateWorkspace:
    space = make_workspace(tmp_path, tiny_bundle.bundle, tiny_bundle.private_key,  # type: ignore[attr-defined]
                           tiny_bundle.key_dir)  # type: ignore[attr-defined]
    space.updater().install(space.package("1.0.0"))
    return space


def cli_options(workspace: UpdateWorkspace) -> list[str | Path]:
    return ["--root", workspace.root, "--keys", workspace.keys, "--restart-command", "true",
            "--ready-command", "true"]


@pytest.mark.parametrize("step", list(CRASH_STEPS))
def test_crash_then_recover_leaves_one_bundle(workspace: UpdateWorkspace, step: str) -> None:
    package = workspace.package("1.1.0")

    crashed = run_cli(*cli_options(workspace), "install", package, env={CRASH_ENV: step})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    recovered = run_cli(*cli_options(workspace), "recover")
    assert recovered.returncode == 0, recovered.stderr

    expected = "tiny-test-1.1.0" if CRASH_STEPS[step] else "tiny-test-1.0.0"
    assert assert_runnable(workspace.root, workspace.keys) == expected
    state = snapshot(workspace.root)
    assert state["staging"] == []
    assert state["journal"] is False
    bundles = sorted(p.name for p in (workspace.root / "bundles").iterdir()
                     if not p.is_symlink())
    expected_bundles = ["tiny-test-1.0.0"]
    if CRASH_STEPS[step]:
        expected_bundles.append("tiny-test-1.1.0")
    assert bundles == expected_bundles
    keyring = Keyring.from_directory(workspace.keys)
    for name in bundles:
        load_bundle(workspace.root / "bundles" / name, keyring)
    assert audit_records(workspace.root)[-1]["action"] == "recover"


@pytest.mark.parametrize("step", ["staged", "switched"])
def test_next_install_recovers_first(workspace: UpdateWorkspace, step: str) -> None:
    crashed = run_cli(*cli_options(workspace), "install", workspace.package("1.1.0"),
                      env={CRASH_ENV: step})
    assert crashed.returncode == -signal.SIGKILL

    retried = run_cli(*cli_options(workspace), "install", workspace.package("1.1.0"))

    assert retried.returncode == 0, retried.stderr
    assert assert_runnable(workspace.root, workspace.keys) == "tiny-test-1.1.0"
    actions = [r["action"] for r in audit_records(workspace.root)]
    assert actions[-2:] == ["recover", "install"]


def test_crash_during_rollback_is_undone(workspace: UpdateWorkspace) -> None:
    workspace.updater().install(workspace.package("1.1.0"))

    crashed = run_cli(*cli_options(workspace), "rollback", env={CRASH_ENV: "rollback_switched"})
    assert crashed.returncode == -signal.SIGKILL
    recovered = run_cli(*cli_options(workspace), "recover")

    assert recovered.returncode == 0, recovered.stderr
    assert assert_runnable(workspace.root, workspace.keys) == "tiny-test-1.1.0"
    assert snapshot(workspace.root)["links"] == {"current": "tiny-test-1.1.0",
                                                 "previous": "tiny-test-1.0.0"}
    assert workspace.updater().store.installed() == ["tiny-test-1.0.0", "tiny-test-1.1.0"]


def test_recover_replaces_damaged_current(workspace: UpdateWorkspace) -> None:
    workspace.updater().install(workspace.package("1.1.0"))
    model = workspace.root / "bundles" / "tiny-test-1.1.0" / "model.tflite"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")

    result = run_cli(*cli_options(workspace), "recover")

    assert result.returncode == 0, result.stderr
    assert assert_runnable(workspace.root, workspace.keys) == "tiny-test-1.0.0"
    assert audit_records(workspace.root)[-1]["outcome"] == "fell_back"


def test_recover_without_bundle_exits_17(workspace: UpdateWorkspace) -> None:
    manifest = workspace.root / "bundles" / "tiny-test-1.0.0" / "manifest.yaml"
    manifest.write_text(manifest.read_text() + "\n# altered\n")

    result = run_cli(*cli_options(workspace), "recover")

    assert result.returncode == NoBundleError.exit_code
    assert not (workspace.root / "bundles" / "current").exists()
    assert snapshot(workspace.root)["journal"] is False

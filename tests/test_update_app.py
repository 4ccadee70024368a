"""App updates: signed wheelhouse packages installed into versioned venvs with real pip.

One session builds the cadr wheels (1.0.0, 1.1.0, a 1.2.0 whose ``cadr_device.app`` fails
to import, and 0.9.0) and an install root with the tiny bundle and app 1.0.0; each test
copies that root. See ``app_update_support`` for the wheelhouse shortcut these tests take.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from app_update_support import build_app_wheel, dependency_site_dir, make_wheelhouse
from update_support import (
    DEMO_PRIVATE_KEY,
    UpdateWorkspace,
    assert_runnable,
    audit_records,
    make_workspace,
    package_document,
    read_members,
    regular,
    resigned,
    run_cli,
    snapshot,
    write_members,
)

from cadr_convert.app_package import pack_app
from cadr_convert.signing import SigningError, load_private_key
from cadr_device.update.config import PackageLimits, ServiceSettings
from cadr_device.update.errors import (
    IncompatibleError,
    NotNewerError,
    PackageError,
    SelfTestFailedError,
    ServiceNotReadyError,
)
from cadr_device.update.faults import CRASH_ENV
from cadr_device.update.package import parse_package_manifest

pytestmark = pytest.mark.slow

SELFCHECK_TIMEOUT_S = 300

#: Crash points of an app install in order, and whether recovery keeps the new app.
CRASH_STEPS = {
    "staging": False,
    "extracted": False,
    "staged": False,
    "venv_created": False,
    "pip_installed": False,
    "selftest_passed": False,
    "switching": False,
    "switched": False,
    "restarted": False,
    "committed": True,
}


@dataclass
class AppWheels:
    """Wheelhouse folders by app version, and the dependency folder for ``PYTHONPATH``."""

    wheelhouses: dict[str, Path]
    site: Path


@pytest.fixture(scope="session")
def app_wheels(tmp_path_factory: pytest.TempPathFactory) -> AppWheels:
    work = tmp_path_factory.mktemp("app-wheels")
    wheelhouses = {}
    for version, broken in (("0.9.0", False), ("1.0.0", False), ("1.1.0", False),
                            ("1.2.0", True)):
        wheelhouses[version] = make_wheelhouse(work, build_app_wheel(work, version, broken))
    return AppWheels(wheelhouses, dependency_site_dir(work))


@pytest.fixture(scope="session")
def app_base(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: object,
             app_wheels: AppWheels) -> Path:
    """Return an install root with bundle tiny-test-1.0.0 and app cadr-1.0.0."""
    space = make_workspace(tmp_path_factory.mktemp("app-base"), tiny_bundle.bundle,  # type: ignore[attr-defined]
                           tiny_bundle.private_key, tiny_bundle.key_dir)  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(app_wheels.site))
        space.updater().install(space.package("1.0.0"))
        space.updater().install(pack_app(app_wheels.wheelhouses["1.0.0"], space.key,
                                         space.work / "apps"))
    return space.root


@pytest.fixture
def workspace(tmp_path: Path, tiny_bundle: object, app_base: Path, app_wheels: AppWheels,
              monkeypatch: pytest.MonkeyPatch) -> UpdateWorkspace:
    space = make_workspace(tmp_path, tiny_bundle.bundle, tiny_bundle.private_key,  # type: ignore[attr-defined]
                           tiny_bundle.key_dir)  # type: ignore[attr-defined]
    shutil.copytree(app_base, space.root, symlinks=True)
    monkeypatch.setenv("PYTHONPATH", str(app_wheels.site))
    return space


def app_package(space: UpdateWorkspace, wheels: AppWheels, version: str,
                **options: object) -> Path:
    out = space.work / "apps" / f"{version}-{len(list(space.work.glob('apps/*')))}"
    return pack_app(wheels.wheelhouses[version], space.key, out, **options)  # type: ignore[arg-type]


def app_state(root: Path) -> dict[str, object]:
    """Return the app links and app directories with their entries, plus the bundle state."""
    app = root / "app"
    links = {name: os.readlink(app / name) for name in ("current", "previous")
             if (app / name).is_symlink()}
    directories = {p.name: sorted(c.name for c in p.iterdir()) for p in sorted(app.iterdir())
                   if p.is_dir() and not p.is_symlink()}
    return {"links": links, "directories": directories, "bundles": snapshot(root)}


def assert_app_runnable(root: Path, keys: Path) -> str:
    """Assert that ``app/current`` is a venv that passes the self-check; return its name."""
    current = root / "app" / "current"
    assert current.is_symlink()
    name = os.readlink(current)
    version = name.removeprefix("cadr-")
    result = subprocess.run(
        [str(current / "venv" / "bin" / "python"), "-m", "cadr_device.update.selftest_cli",
         str(root / "bundles" / "current"), "--keys", str(keys), "--app-version", version],
        cwd=root, capture_output=True, text=True, timeout=SELFCHECK_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stderr
    assert (current / "installed.json").is_file()
    assert (current / "venv" / "bin" / "cadr-device").is_file()
    return name


def cli_options(space: UpdateWorkspace) -> list[str | Path]:
    return ["--root", space.root, "--keys", space.keys, "--restart-command", "true",
            "--ready-command", "true"]


def test_install_switches_app(workspace: UpdateWorkspace, app_wheels: AppWheels) -> None:
    package = app_package(workspace, app_wheels, "1.1.0")

    installed = workspace.updater().install(package)

    assert package.name == "cadr-app-1.1.0.cadrpkg"
    assert installed == "cadr-1.1.0"
    state = app_state(workspace.root)
    assert state["links"] == {"current": "cadr-1.1.0", "previous": "cadr-1.0.0"}
    assert state["directories"] == {"cadr-1.0.0": ["installed.json", "venv"],
                                    "cadr-1.1.0": ["installed.json", "venv"]}
    assert assert_app_runnable(workspace.root, workspace.keys) == "cadr-1.1.0"
    status = workspace.updater().status()
    assert status["app_version"] == "1.1.0"
    assert status["app"]["current"] == "cadr-1.1.0"
    record = audit_records(workspace.root)[-1]
    assert (record["kind"], record["outcome"], record["version"]) == ("app", "installed",
                                                                      "1.1.0")


def test_rollback_app_from_cli(workspace: UpdateWorkspace, app_wheels: AppWheels) -> None:
    workspace.updater().install(app_package(workspace, app_wheels, "1.1.0"))

    result = run_cli(*cli_options(workspace), "rollback", "--app")

    assert result.returncode == 0, result.stderr
    assert app_state(workspace.root)["links"] == {"current": "cadr-1.0.0",
                                                  "previous": "cadr-1.1.0"}
    assert assert_app_runnable(workspace.root, workspace.keys) == "cadr-1.0.0"
    assert os.readlink(workspace.root / "bundles" / "current") == "tiny-test-1.0.0"


def test_tampered_wheel_rejected(workspace: UpdateWorkspace, app_wheels: AppWheels) -> None:
    package = app_package(workspace, app_wheels, "1.1.0")
    members = read_members(package)
    wheel_index = next(i for i, (info, _) in enumerate(members) if info.name.endswith(".whl"))
    info, data = members[wheel_index]
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    members[wheel_index] = (info, bytes(damaged))
    write_members(package, members)
    before = app_state(workspace.root)

    with pytest.raises(PackageError, match="altered or damaged"):
        workspace.updater().install(package)

    assert app_state(workspace.root) == before
    assert audit_records(workspace.root)[-1]["reason"] == "rejected"


def test_unlisted_wheel_rejected(workspace: UpdateWorkspace, app_wheels: AppWheels) -> None:
    package = app_package(workspace, app_wheels, "1.1.0")
    members = read_members(package)
    extra = (app_wheels.wheelhouses["0.9.0"] / "cadr-0.9.0-py3-none-any.whl").read_bytes()
    members.append(regular("wheels/cadr-0.9.0-py3-none-any.whl", extra))
    write_members(package, members)
    before = app_state(workspace.root)

    with pytest.raises(PackageError, match="not covered by the signed manifest"):
        workspace.updater().install(package)

    assert app_state(workspace.root) == before


def test_app_package_needs_requirements(workspace: UpdateWorkspace,
                                        app_wheels: AppWheels) -> None:
    members = read_members(app_package(workspace, app_wheels, "1.1.0"))
    document = package_document(members)
    kept = [f for f in document["files"]  # type: ignore[attr-defined]
            if not f["path"].endswith("requirements.txt")]
    document["files"] = kept
    members = [m for m in members if not m[0].name.endswith("requirements.txt")]
    package = write_members(workspace.work / "no-requirements.cadrpkg",
                            resigned(members, document, workspace.key))

    with pytest.raises(PackageError, match="wheels/requirements.txt is not declared"):
        workspace.updater().install(package)


def test_downgrade_rejected(workspace: UpdateWorkspace, app_wheels: AppWheels) -> None:
    before = app_state(workspace.root)

    with pytest.raises(NotNewerError, match="allow-downgrade"):
        workspace.updater().install(app_package(workspace, app_wheels, "0.9.0"))
    with pytest.raises(NotNewerError, match="already installed"):
        workspace.updater().install(app_package(workspace, app_wheels, "1.0.0"))

    assert app_state(workspace.root) == before
    assert audit_records(workspace.root)[-1]["outcome"] == "skipped"


def test_failed_selfcheck_keeps_old_app(workspace: UpdateWorkspace,
                                        app_wheels: AppWheels) -> None:
    before = app_state(workspace.root)

    result = run_cli(*cli_options(workspace), "install",
                     app_package(workspace, app_wheels, "1.2.0"))

    assert result.returncode == SelfTestFailedError.exit_code, result.stderr
    assert "broken on purpose" in result.stderr
    assert app_state(workspace.root) == before
    assert assert_app_runnable(workspace.root, workspace.keys) == "cadr-1.0.0"
    record = audit_records(workspace.root)[-1]
    assert (record["outcome"], record["reason"]) == ("failed", "selftest_failed")


def test_service_not_ready_restores_app(workspace: UpdateWorkspace,
                                        app_wheels: AppWheels) -> None:
    service = ServiceSettings(restart_command=("true",), ready_command=("false",),
                              ready_timeout_s=0.5, ready_poll_s=0.1)

    with pytest.raises(ServiceNotReadyError):
        workspace.updater(service=service).install(app_package(workspace, app_wheels, "1.1.0"))

    state = app_state(workspace.root)
    assert state["links"] == {"current": "cadr-1.0.0"}
    assert list(state["directories"]) == ["cadr-1.0.0"]  # type: ignore[call-overload]
    assert assert_app_runnable(workspace.root, workspace.keys) == "cadr-1.0.0"


def test_unreadable_bundle_schema_rejected(workspace: UpdateWorkspace,
                                           app_wheels: AppWheels) -> None:
    package = app_package(workspace, app_wheels, "1.1.0", bundle_schema_min=2,
                          bundle_schema_max=3)
    before = app_state(workspace.root)

    with pytest.raises(IncompatibleError, match="reads bundle schema 2 to 3"):
        workspace.updater().install(package)

    assert app_state(workspace.root) == before


def test_other_platform_rejected(workspace: UpdateWorkspace, app_wheels: AppWheels) -> None:
    machine = "x86_64" if os.uname().machine == "aarch64" else "aarch64"
    package = app_package(workspace, app_wheels, "1.1.0",
                          target=f"cp311-manylinux_2_17_{machine}")

    with pytest.raises(IncompatibleError, match=f"wheels are for {machine}"):
        workspace.updater().install(package)


def test_bundle_checked_against_installed_app(workspace: UpdateWorkspace) -> None:
    # min_app_version is compared with app/current (1.0.0), not with this process's cadr.
    installed = workspace.updater().install(workspace.package("1.1.0", min_app_version="1.0.0"))
    assert installed == "tiny-test-1.1.0"

    with pytest.raises(IncompatibleError, match="runs 1.0.0"):
        workspace.updater().install(workspace.package("1.2.0", min_app_version="1.1.0"))


def test_scan_installs_app_before_bundle(workspace: UpdateWorkspace,
                                         app_wheels: AppWheels) -> None:
    inbox = workspace.work / "inbox"
    inbox.mkdir(parents=True)
    bundle = workspace.package("1.1.0", min_app_version="1.1.0")
    app = app_package(workspace, app_wheels, "1.1.0")
    shutil.copy2(bundle, inbox / bundle.name)
    shutil.copy2(app, inbox / app.name)

    summary = workspace.updater().scan(inbox)

    assert summary.installed == ["cadr-1.1.0", "tiny-test-1.1.0"]
    assert summary.failed == []
    assert assert_app_runnable(workspace.root, workspace.keys) == "cadr-1.1.0"
    assert assert_runnable(workspace.root, workspace.keys) == "tiny-test-1.1.0"


def test_pack_app_rejects_demo_key(workspace: UpdateWorkspace, app_wheels: AppWheels) -> None:
    with pytest.raises(SigningError, match="demonstration key"):
        pack_app(app_wheels.wheelhouses["1.1.0"], load_private_key(DEMO_PRIVATE_KEY),
                 workspace.work / "demo")


def test_pack_app_cli_writes_manifest(workspace: UpdateWorkspace,
                                      app_wheels: AppWheels) -> None:
    out = workspace.work / "cli"
    result = subprocess.run(
        [sys.executable, "-m", "cadr_convert.package_cli", "pack-app",
         str(app_wheels.wheelhouses["1.1.0"]), "--key",
         str(workspace.key_path), "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr
    package = out / "cadr-app-1.1.0.cadrpkg"
    assert result.stdout.strip() == str(package)
    document = json.loads(read_members(package)[0][1])
    assert document["kind"] == "app"
    assert document["app"]["version"] == "1.1.0"
    assert document["app"]["bundle_schema_min"] == 1
    paths = sorted(f["path"] for f in document["files"])
    assert paths == ["wheels/cadr-1.1.0-py3-none-any.whl", "wheels/requirements.txt"]


@pytest.mark.parametrize("step", list(CRASH_STEPS))
def test_crash_then_recover_leaves_one_app(workspace: UpdateWorkspace, app_wheels: AppWheels,
                                           step: str) -> None:
    package = app_package(workspace, app_wheels, "1.1.0")

    crashed = run_cli(*cli_options(workspace), "install", package, env={CRASH_ENV: step})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    recovered = run_cli(*cli_options(workspace), "recover")
    assert recovered.returncode == 0, recovered.stderr

    expected = "cadr-1.1.0" if CRASH_STEPS[step] else "cadr-1.0.0"
    assert assert_app_runnable(workspace.root, workspace.keys) == expected
    state = app_state(workspace.root)
    expected_directories = {"cadr-1.0.0": ["installed.json", "venv"]}
    if CRASH_STEPS[step]:
        expected_directories["cadr-1.1.0"] = ["installed.json", "venv"]
    assert state["directories"] == expected_directories
    bundles = state["bundles"]
    assert bundles["staging"] == []  # type: ignore[index]
    assert bundles["journal"] is False  # type: ignore[index]
    assert assert_runnable(workspace.root, workspace.keys) == "tiny-test-1.0.0"
    assert audit_records(workspace.root)[-1]["action"] == "recover"


def valid_app_document() -> dict[str, object]:
    return {
        "format_version": 1, "kind": "app",
        "app": {"name": "cadr", "version": "1.1.0", "platform": "manylinux_2_36_aarch64",
                "python": "3.11", "bundle_schema_min": 1, "bundle_schema_max": 1},
        "created": "2026-01-01T00:00:00Z",
        "files": [{"path": "wheels/requirements.txt", "size": 1, "sha256": "0" * 64}],
    }


@pytest.mark.parametrize(("key", "value", "message"), [
    ("kind", "firmware", "package kind must be"),
    ("bundle", {}, "unknown keys"),
    ("python", "3", "is not a version like 3.11"),
    ("platform", "linux_armv7l", "is not a manylinux_2_N"),
    ("bundle_schema_min", 2, "greater than bundle_schema_max"),
    ("bundle_schema_max", True, "must be a positive integer"),
    ("name", "other", "app name must be"),
    ("files", [{"path": "bundle/manifest.yaml", "size": 1, "sha256": "0" * 64}],
     "is not under wheels/"),
])
def test_app_manifest_invalid_field(key: str, value: object, message: str) -> None:
    document = valid_app_document()
    app = document["app"]
    if key in app:  # type: ignore[operator]
        app[key] = value  # type: ignore[index]
    else:
        document[key] = value

    with pytest.raises(PackageError, match=message):
        parse_package_manifest(json.dumps(document).encode(), Path("app.cadrpkg"),
                               PackageLimits())


def test_app_manifest_parses() -> None:
    manifest = parse_package_manifest(json.dumps(valid_app_document()).encode(),
                                      Path("app.cadrpkg"), PackageLimits())

    assert manifest.kind == "app"
    assert manifest.bundle_id == "cadr-1.1.0"
    assert manifest.payload_prefix == "wheels/"
    assert manifest.demonstration_only is False
    assert manifest.app is not None
    assert manifest.app.machine == "aarch64"
    assert manifest.app.min_glibc == (2, 36)
    assert manifest.app.reads_schema(1)
    assert not manifest.app.reads_schema(2)

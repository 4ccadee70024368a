"""The offline wheelhouse builder: targets, pins, hash files and a real offline pip install."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cadr_convert.wheelhouse import (
    REQUIREMENTS_NAME,
    SHA256SUMS_NAME,
    Target,
    WheelhouseError,
    describe_wheel,
    pip_download_argv,
    read_dependencies,
)

REPO = Path(__file__).resolve().parent.parent
PIP_TIMEOUT_S = 600


def write_wheel(folder: Path, name: str, version: str, tag: str = "py3-none-any",
                requires: tuple[str, ...] = ()) -> Path:
    """Write a minimal valid wheel with one module ``name`` that stores its version."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": "\n".join(metadata) + "\n",
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              f"Tag: {tag}\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")

    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


def write_project(folder: Path, dependencies: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    listed = ", ".join(f'"{line}"' for line in dependencies)
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "cadr"\nversion = "0.1.0"\ndependencies = [{listed}]\n',
        encoding="utf-8")
    return folder


def run_builder(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cadr_convert.wheelhouse", *args],
                          capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)


@pytest.fixture
def offline_sources(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Return a project, its app wheel and a local index folder of its dependencies."""
    index = tmp_path / "index"
    write_wheel(index, "cadrdep", "1.2.0", requires=("cadrleaf>=1",))
    write_wheel(index, "cadrleaf", "1.0.0")
    write_wheel(index, "cadrarm", "1.0.0")
    app_wheel = write_wheel(tmp_path / "app", "cadr", "0.1.0",
                            requires=("cadrdep>=1", "cadrarm; platform_machine == 'aarch64'"))
    project = write_project(tmp_path / "project", [
        "cadrdep>=1.0",
        "cadrarm; platform_machine == 'aarch64'",
    ])
    return project, app_wheel, index


def test_target_rejects_invalid_values() -> None:
    with pytest.raises(ValueError, match="machine must be one of"):
        Target("armv7l", "3.11")
    with pytest.raises(ValueError, match="python must be a CPython version"):
        Target("aarch64", "3")
    with pytest.raises(ValueError, match="glibc must be a version"):
        Target("aarch64", "3.11", "2.12")


def test_platform_tags_for_bookworm_aarch64() -> None:
    tags = Target("aarch64", "3.11", "2.36").platform_tags()

    assert tags[0] == "manylinux_2_36_aarch64"
    assert "manylinux_2_17_aarch64" in tags
    assert "manylinux2014_aarch64" in tags
    assert "manylinux_2_37_aarch64" not in tags
    assert all(tag.endswith("_aarch64") for tag in tags)


def test_platform_tags_x86_64_include_legacy_names() -> None:
    tags = Target("x86_64", "3.13").platform_tags()

    assert "manylinux2010_x86_64" in tags
    assert "manylinux1_x86_64" in tags
    assert Target("x86_64", "3.13").abi == "cp313"


def test_dependencies_follow_target_markers(tmp_path: Path) -> None:
    project = write_project(tmp_path, ["numpy>=1.24", "ai-edge-litert>=2.1; platform_machine == "
                                       "'x86_64' or platform_machine == 'aarch64'",
                                       "onlyx86; platform_machine == 'x86_64'"])

    aarch64 = read_dependencies(project / "pyproject.toml", Target("aarch64", "3.11"))
    x86_64 = read_dependencies(project / "pyproject.toml", Target("x86_64", "3.11"))

    assert aarch64 == ["numpy>=1.24", "ai-edge-litert>=2.1"]
    assert x86_64 == ["numpy>=1.24", "ai-edge-litert>=2.1", "onlyx86"]


def test_project_dependencies_exclude_tensorflow() -> None:
    for machine in ("aarch64", "x86_64"):
        names = [line.split(">")[0].split("=")[0]
                 for line in read_dependencies(REPO / "pyproject.toml", Target(machine, "3.11"))]

        assert "ai-edge-litert" in names
        assert "cryptography" in names
        assert not [name for name in names if "tensorflow" in name]


def test_dependencies_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(WheelhouseError, match="pyproject.toml: not found"):
        read_dependencies(tmp_path / "pyproject.toml", Target("aarch64", "3.11"))


def test_dependencies_empty_list_rejected(tmp_path: Path) -> None:
    project = write_project(tmp_path, [])

    with pytest.raises(WheelhouseError, match="dependencies is missing or empty"):
        read_dependencies(project / "pyproject.toml", Target("aarch64", "3.11"))


def test_download_argv_pins_target(tmp_path: Path) -> None:
    target = Target("aarch64", "3.13", "2.41")
    argv = pip_download_argv(target, ["numpy>=1.24"], tmp_path, [tmp_path / "local"], True)

    assert "--only-binary=:all:" in argv
    assert argv[argv.index("--python-version") + 1] == "3.13"
    assert argv[argv.index("--abi") + 1] == "cp313"
    assert "manylinux_2_41_aarch64" in argv
    assert "--no-index" in argv
    assert argv[argv.index("--find-links") + 1] == str(tmp_path / "local")
    assert argv[-1] == "numpy>=1.24"


@pytest.mark.parametrize(("file_name", "fits"), [
    ("numpy-2.4.6-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl", True),
    ("cryptography-50.0.2-cp311-abi3-manylinux_2_34_aarch64.whl", True),
    ("protobuf-7.36.2-cp310-abi3-manylinux2014_aarch64.whl", True),
    ("tqdm-4.70.1-py3-none-any.whl", True),
    ("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.whl", False),
    ("numpy-2.4.6-cp313-cp313-manylinux_2_27_aarch64.whl", False),
    ("numpy-2.4.6-cp311-cp311-manylinux_2_39_aarch64.whl", False),
    ("cryptography-50.0.2-cp312-abi3-manylinux_2_34_aarch64.whl", False),
    ("numpy-2.4.6-cp311-cp311-musllinux_1_2_aarch64.whl", False),
], ids=lambda value: str(value)[:40])
def test_describe_wheel_checks_tags(tmp_path: Path, file_name: str, fits: bool) -> None:
    path = tmp_path / file_name
    path.write_bytes(b"not read for the tag check")
    target = Target("aarch64", "3.11", "2.36")

    if fits:
        wheel = describe_wheel(path, target)
        assert wheel.sha256 == hashlib.sha256(b"not read for the tag check").hexdigest()
    else:
        with pytest.raises(WheelhouseError, match="do not load on cp311-manylinux_2_36_aarch64"):
            describe_wheel(path, target)


def test_describe_wheel_rejects_sdist(tmp_path: Path) -> None:
    path = tmp_path / "pyyaml-6.0.4.tar.gz"
    path.write_bytes(b"sdist")

    with pytest.raises(WheelhouseError, match="not a wheel file name"):
        describe_wheel(path, Target("aarch64", "3.11"))


def test_offline_build_installs_with_hashes(tmp_path: Path,
                                            offline_sources: tuple[Path, Path, Path]) -> None:
    project, app_wheel, index = offline_sources
    out = tmp_path / "wheelhouse"

    result = run_builder("--machine", "aarch64", "--python", "3.11", "--project", str(project),
                         "--app-wheel", str(app_wheel), "--find-links", str(index),
                         "--no-index", "--out", str(out))

    assert result.returncode == 0, result.stderr
    assert f"{out}: 4 wheels for cp311-manylinux_2_36_aarch64" in result.stdout
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([REQUIREMENTS_NAME, SHA256SUMS_NAME, "cadr-0.1.0-py3-none-any.whl",
                            "cadrarm-1.0.0-py3-none-any.whl", "cadrdep-1.2.0-py3-none-any.whl",
                            "cadrleaf-1.0.0-py3-none-any.whl"])

    requirements = (out / REQUIREMENTS_NAME).read_text(encoding="utf-8")
    for name, version in (("cadr", "0.1.0"), ("cadrarm", "1.0.0"), ("cadrdep", "1.2.0"),
                          ("cadrleaf", "1.0.0")):
        wheel = next(out.glob(f"{name}-{version}-*.whl"))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert f"{name}=={version} \\\n    --hash=sha256:{digest}\n" in requirements
        assert f"{digest}  {wheel.name}\n" in (out / SHA256SUMS_NAME).read_text(encoding="utf-8")

    sha256sum = shutil.which("sha256sum")
    assert sha256sum is not None
    checked = subprocess.run([sha256sum, "--check", "--strict", SHA256SUMS_NAME], cwd=out,
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    target_dir = tmp_path / "installed"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-index",
         "--find-links", str(out), "--require-hashes", "-r", str(out / REQUIREMENTS_NAME),
         "--target", str(target_dir)],
        capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    assert installed.returncode == 0, installed.stderr
    assert (target_dir / "cadrdep" / "__init__.py").read_text() == "VERSION = '1.2.0'\n"
    assert (target_dir / "cadrleaf" / "__init__.py").is_file()


def test_x86_64_build_skips_aarch64_only(tmp_path: Path,
                                         offline_sources: tuple[Path, Path, Path]) -> None:
    project, app_wheel, index = offline_sources
    out = tmp_path / "wheelhouse"

    result = run_builder("--machine", "x86_64", "--project", str(project), "--app-wheel",
                         str(app_wheel), "--find-links", str(index), "--no-index",
                         "--out", str(out))

    assert result.returncode == 0, result.stderr
    requirements = (out / REQUIREMENTS_NAME).read_text(encoding="utf-8")
    assert "cadrdep==1.2.0" in requirements
    assert "cadrarm" not in requirements


def test_pin_selects_older_version(tmp_path: Path,
                                   offline_sources: tuple[Path, Path, Path]) -> None:
    project, app_wheel, index = offline_sources
    write_wheel(index, "cadrdep", "1.1.0", requires=("cadrleaf>=1",))
    out = tmp_path / "wheelhouse"

    result = run_builder("--project", str(project), "--app-wheel", str(app_wheel),
                         "--find-links", str(index), "--no-index", "--out", str(out),
                         "--pin", "cadrdep<1.2")

    assert result.returncode == 0, result.stderr
    requirements = (out / REQUIREMENTS_NAME).read_text(encoding="utf-8")
    assert "cadrdep==1.1.0" in requirements
    assert "cadrdep==1.2.0" not in requirements


def test_tampered_wheel_fails_install(tmp_path: Path,
                                      offline_sources: tuple[Path, Path, Path]) -> None:
    project, app_wheel, index = offline_sources
    out = tmp_path / "wheelhouse"
    result = run_builder("--project", str(project), "--app-wheel", str(app_wheel),
                         "--find-links", str(index), "--no-index", "--out", str(out))
    assert result.returncode == 0, result.stderr

    tampered = next(out.glob("cadrleaf-*.whl"))
    # Same name and version, other content: a different METADATA line.
    write_wheel(tmp_path / "other", "cadrleaf", "1.0.0", requires=("cadrdep",)).replace(tampered)
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-index",
         "--find-links", str(out), "--require-hashes", "-r", str(out / REQUIREMENTS_NAME),
         "--target", str(tmp_path / "installed")],
        capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)

    assert installed.returncode != 0
    assert "DO NOT MATCH THE HASHES" in installed.stderr


def test_missing_dependency_fails_and_keeps_no_folder(
        tmp_path: Path, offline_sources: tuple[Path, Path, Path]) -> None:
    project, app_wheel, index = offline_sources
    (index / "cadrleaf-1.0.0-py3-none-any.whl").unlink()
    out = tmp_path / "wheelhouse"

    result = run_builder("--project", str(project), "--app-wheel", str(app_wheel),
                         "--find-links", str(index), "--no-index", "--out", str(out))

    assert result.returncode == 1
    assert "downloading wheels for cp311-manylinux_2_36_aarch64 failed" in result.stderr
    assert "cadrleaf" in result.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".wheelhouse")] == []


def test_existing_out_needs_replace(tmp_path: Path,
                                    offline_sources: tuple[Path, Path, Path]) -> None:
    project, app_wheel, index = offline_sources
    out = tmp_path / "wheelhouse"
    out.mkdir()
    (out / "keep.txt").write_text("kept", encoding="utf-8")
    common = ("--project", str(project), "--app-wheel", str(app_wheel), "--find-links",
              str(index), "--no-index", "--out", str(out))

    refused = run_builder(*common)
    assert refused.returncode == 1
    assert "already exists; pass --replace" in refused.stderr
    assert (out / "keep.txt").read_text(encoding="utf-8") == "kept"

    replaced = run_builder(*common, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert not (out / "keep.txt").exists()
    assert (out / REQUIREMENTS_NAME).is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--machine", "armv7l"], "invalid choice: 'armv7l'"),
    (["--python", "three"], "python must be a CPython version"),
    (["--glibc", "2.5"], "glibc must be a version"),
    (["--app-wheel", "/nonexistent/cadr.whl"], "--app-wheel /nonexistent/cadr.whl: file not found"),
    (["--pin", "numpy<<2"], "--pin 'numpy<<2': invalid requirement"),
])
def test_cli_rejects_bad_arguments(args: list[str], message: str) -> None:
    result = run_builder(*args)

    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.slow
def test_real_aarch64_wheelhouse_from_pypi(tmp_path: Path) -> None:
    out = tmp_path / "wheelhouse"

    result = run_builder("--machine", "aarch64", "--python", "3.11", "--project", str(REPO),
                         "--out", str(out))

    assert result.returncode == 0, result.stderr
    requirements = (out / REQUIREMENTS_NAME).read_text(encoding="utf-8")
    for name in ("cadr", "ai-edge-litert", "numpy", "pillow", "pyyaml", "cryptography"):
        assert f"\n{name}==" in requirements, name
    assert "tensorflow" not in requirements
    wheels = [p.name for p in out.glob("*.whl")]
    assert len(wheels) == requirements.count("--hash=sha256:")
    assert all(name.endswith(("-any.whl", "_aarch64.whl")) for name in wheels), wheels
    assert any(name.startswith("cryptography-") and "-abi3-" in name for name in wheels), wheels

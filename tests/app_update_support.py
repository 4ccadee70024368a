"""Helpers for the app update tests: real cadr wheels, wheelhouses and a shared site dir.

Each wheel is built with ``pip wheel --no-deps --no-build-isolation`` from a copy of this
repository's ``pyproject.toml``, ``device/`` and ``convert/`` with the version rewritten,
and the wheelhouse gets a ``requirements.txt`` from the real builder
(:func:`cadr_convert.wheelhouse.write_requirements`).

Test shortcut: the wheelhouses hold only the ``cadr`` wheel. numpy, Pillow, PyYAML,
cryptography and ai-edge-litert come from :func:`dependency_site_dir`, a folder of links to
the test venv's installed packages (without cadr itself and without pip) that the tests put
on ``PYTHONPATH``. pip then finds every dependency already installed and needs no wheel
or hash for it. A real wheelhouse from ``python -m cadr_convert.wheelhouse`` contains every
dependency.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from cadr_convert.wheelhouse import Target, describe_wheel, write_requirements

REPO = Path(__file__).resolve().parent.parent
PIP_TIMEOUT_S = 300

#: Installed names left out of the dependency site dir: the app itself and the installers.
_EXCLUDED_PREFIXES = ("cadr", "__editable__", "pip", "setuptools", "_distutils_hack",
                      "wheel", "distutils-precedence")


def this_target() -> Target:
    """Return the wheelhouse target of the machine running the tests."""
    glibc = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 2.36"
    major, minor = glibc.removeprefix("glibc ").split(".")[:2]
    return Target(platform.machine(), f"{sys.version_info.major}.{sys.version_info.minor}",
                  f"{major}.{minor}")


def build_app_wheel(work: Path, version: str, broken: bool = False) -> Path:
    """Build a cadr wheel of ``version``; ``broken`` makes ``cadr_device.app`` fail to import.

    NOTE: ``--no-build-isolation`` builds offline with the test venv's setuptools, which
    Python 3.11's ``venv`` installs (``make venv-dev``); a Python 3.12 venv has none.
    """
    source = work / f"src-{version}"
    source.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("device", "convert"):
        shutil.copytree(REPO / folder, source / folder, ignore=ignore)
    shutil.copy2(REPO / "README.md", source / "README.md")

    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    pyproject = pyproject.replace('\nversion = "0.1.0"\n', f'\nversion = "{version}"\n', 1)
    (source / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    init = source / "device" / "__init__.py"
    init.write_text(init.read_text(encoding="utf-8").replace(
        '__version__ = "0.1.0"', f'__version__ = "{version}"'), encoding="utf-8")
    if broken:
        with (source / "device" / "app.py").open("a", encoding="utf-8") as app:
            app.write('\nraise ImportError("cadr_device.app is broken on purpose by a test")\n')

    out = work / f"wheel-{version}"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stderr
    wheels = list(out.glob("cadr-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def make_wheelhouse(work: Path, wheel: Path) -> Path:
    """Return a wheelhouse folder with ``wheel`` and its hash-pinned ``requirements.txt``."""
    folder = work / f"wheelhouse-{wheel.name}"
    folder.mkdir()
    copied = folder / wheel.name
    shutil.copy2(wheel, copied)
    target = this_target()
    write_requirements(folder, [describe_wheel(copied, target)], target)
    return folder


def dependency_site_dir(work: Path) -> Path:
    """Return a folder of links to the test venv's packages, except cadr, pip and setuptools."""
    site = work / "dependencies"
    site.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name
        if name.startswith(_EXCLUDED_PREFIXES) or name.endswith(".pth") or \
                name == "__pycache__":
            continue
        (site / name).symlink_to(entry)
    return site

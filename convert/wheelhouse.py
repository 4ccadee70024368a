"""Build an offline wheelhouse for the device app: every wheel it needs, pinned by sha256.

The device has no network, so its Python packages arrive as a folder of wheels made on a
workstation for the device's CPU and Python::

    python -m cadr_convert.wheelhouse --machine aarch64 --python 3.11 --out dist/wheelhouse

The folder contains the wheels of the base dependencies in ``pyproject.toml`` and of their
dependencies (never TensorFlow, which only the converter uses), the ``cadr`` wheel itself,
a ``requirements.txt`` that pins every file with ``--hash=sha256:`` and a ``SHA256SUMS``
for ``sha256sum -c``. On the device it installs with::

    pip install --no-index --find-links DIR --require-hashes -r DIR/requirements.txt

picamera2, libcamera, gpiozero and lgpio are not in the wheelhouse: they come from
Raspberry Pi OS's apt packages, because picamera2 binds to the system's libcamera build,
and the app's venv imports them through ``--system-site-packages``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import parse_wheel_filename

from cadr_device.bundle import sha256_file

logger = logging.getLogger(__name__)

#: CPU architectures the device app has wheels for (ai-edge-litert publishes these two).
MACHINES = ("aarch64", "x86_64")

#: glibc of Debian 12 Bookworm and Raspberry Pi OS Bookworm.
DEFAULT_GLIBC = "2.36"

#: Oldest glibc a manylinux tag can name (manylinux2014 is manylinux_2_17).
MIN_MANYLINUX_GLIBC_MINOR = 17

#: Time limit for one pip run, in seconds; downloads of numpy and ai-edge-litert are tens of MB.
PIP_TIMEOUT_S = 1800

REQUIREMENTS_NAME = "requirements.txt"
SHA256SUMS_NAME = "SHA256SUMS"

#: Distribution name of the app in pyproject.toml.
APP_DISTRIBUTION = "cadr"



class WheelhouseError(Exception):
    """The wheelhouse could not be built; the message names the step and what to do."""


@dataclass(frozen=True)
class Target:
    """The device's CPU, CPython version and glibc, which decide which wheels fit."""

    machine: str
    python: str
    glibc: str = DEFAULT_GLIBC

    def __post_init__(self) -> None:
        if self.machine not in MACHINES:
            raise ValueError(f"machine must be one of {MACHINES}, got {self.machine!r}")
        if not re.fullmatch(r"3\.\d{1,2}", self.python):
            raise ValueError(f"python must be a CPython version like 3.11, got {self.python!r}")
        match = re.fullmatch(r"2\.(\d{1,2})", self.glibc)
        if match is None or int(match.group(1)) < MIN_MANYLINUX_GLIBC_MINOR:
            raise ValueError(f"glibc must be a version from 2.{MIN_MANYLINUX_GLIBC_MINOR} on, "
                             f"like {DEFAULT_GLIBC}, got {self.glibc!r}")

    @property
    def abi(self) -> str:
        """CPython ABI tag, for example ``cp311``."""
        return "cp" + self.python.replace(".", "")

    @property
    def name(self) -> str:
        """Folder-friendly label, for example ``cp311-manylinux_2_36_aarch64``."""
        return f"{self.abi}-manylinux_{self.glibc.replace('.', '_')}_{self.machine}"

    def platform_tags(self) -> list[str]:
        """Return every manylinux platform tag a system with this glibc can load, newest first."""
        newest = int(self.glibc.split(".")[1])
        tags = [f"manylinux_2_{minor}_{self.machine}"
                for minor in range(newest, MIN_MANYLINUX_GLIBC_MINOR - 1, -1)]
        tags.append(f"manylinux2014_{self.machine}")
        if self.machine == "x86_64":
            tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
        return tags

    def marker_environment(self) -> dict[str, str]:
        """Return the PEP 508 marker values of the target, for evaluating dependency markers."""
        environment = {key: str(value) for key, value in default_environment().items()}
        environment.update({
            "platform_machine": self.machine,
            "platform_system": "Linux",
            "sys_platform": "linux",
            "os_name": "posix",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "python_version": self.python,
            "python_full_version": self.python + ".0",
        })
        return environment


@dataclass(frozen=True)
class Wheel:
    """One file of the wheelhouse with its pinned name, version and hash."""

    path: Path
    name: str
    version: str
    sha256: str


def read_dependencies(pyproject: Path, target: Target) -> list[str]:
    """Read ``[project] dependencies`` and keep those whose marker holds on the target.

    Markers are evaluated here for the target, because pip evaluates markers such as
    ``platform_machine`` for the machine it runs on, not for ``--platform``.

    Raises:
        WheelhouseError: If the file is missing or has no ``[project] dependencies`` list.

    """
    try:
        with pyproject.open("rb") as f:
            project = tomllib.load(f).get("project", {})
    except FileNotFoundError as e:
        raise WheelhouseError(f"{pyproject}: not found; pass --project with the folder that "
                              "contains the app's pyproject.toml") from e
    except tomllib.TOMLDecodeError as e:
        raise WheelhouseError(f"{pyproject}: invalid TOML ({e})") from e

    dependencies = project.get("dependencies")
    if not isinstance(dependencies, list) or not dependencies:
        raise WheelhouseError(f"{pyproject}: [project] dependencies is missing or empty")

    environment = target.marker_environment()
    selected = []
    for line in dependencies:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            logger.info("Skipping %s: its marker does not hold on %s", line, target.name)
            continue
        requirement.marker = None
        selected.append(str(requirement))
    return selected


def pip_download_argv(target: Target, requirements: Sequence[str], dest: Path,
                      find_links: Sequence[Path] = (), no_index: bool = False) -> list[str]:
    """Return the ``pip download`` command that fetches binary wheels for the target only."""
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
            "--only-binary=:all:", "--implementation", "cp", "--python-version", target.python,
            "--abi", target.abi, "--abi", "abi3", "--abi", "none", "--dest", str(dest)]
    for tag in target.platform_tags():
        argv += ["--platform", tag]
    for folder in find_links:
        argv += ["--find-links", str(folder)]
    if no_index:
        argv.append("--no-index")
    return argv + list(requirements)


def pip_wheel_argv(project: Path, dest: Path) -> list[str]:
    """Return the ``pip wheel`` command that builds the app's own pure-Python wheel."""
    return [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-deps",
            "--wheel-dir", str(dest), str(project)]


def run_pip(argv: list[str], step: str) -> None:
    """Run one pip command, raising with its stderr when it fails or times out."""
    logger.info("Running %s: %s", step, " ".join(argv))
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                                check=False)
    except subprocess.TimeoutExpired as e:
        raise WheelhouseError(f"{step} timed out after {PIP_TIMEOUT_S} s; check the network "
                              "connection to the package index") from e
    if result.returncode != 0:
        raise WheelhouseError(f"{step} failed with exit code {result.returncode}:\n"
                              f"{result.stderr.strip()[-4000:]}")


def describe_wheel(path: Path, target: Target) -> Wheel:
    """Parse a wheel's file name, check that it loads on the target, and hash it.

    Raises:
        WheelhouseError: If the file is not a wheel or is built for another platform or Python.

    """
    try:
        name, version, _, tags = parse_wheel_filename(path.name)
    except ValueError as e:
        raise WheelhouseError(f"{path}: not a wheel file name ({e}); only wheels may be in "
                              "the wheelhouse") from e

    platforms = {"any", *target.platform_tags()}
    python_tags = {"py3", target.abi, f"py{target.abi[2:]}"}
    abi3_pythons = {f"cp3{minor}" for minor in range(2, int(target.python.split(".")[1]) + 1)}
    fits = any(
        tag.platform in platforms and (
            (tag.abi == "none" and tag.interpreter in python_tags)
            or (tag.abi == target.abi and tag.interpreter == target.abi)
            or (tag.abi == "abi3" and tag.interpreter in abi3_pythons)
        )
        for tag in tags
    )
    if not fits:
        raise WheelhouseError(f"{path}: tags {sorted(str(t) for t in tags)} do not load on "
                              f"{target.name}; remove it and build the wheelhouse again")
    return Wheel(path=path, name=str(name), version=str(version), sha256=sha256_file(path))


def write_requirements(folder: Path, wheels: Sequence[Wheel], target: Target) -> Path:
    """Write ``requirements.txt`` pinning every wheel by version and sha256."""
    lines = [
        f"# Offline wheelhouse for {target.name}, written by cadr_convert.wheelhouse.",
        "# Install with: pip install --no-index --find-links DIR --require-hashes "
        f"-r DIR/{REQUIREMENTS_NAME}",
    ]
    for wheel in sorted(wheels, key=lambda w: w.name):
        lines.append(f"{wheel.name}=={wheel.version} \\")
        lines.append(f"    --hash=sha256:{wheel.sha256}")
    path = folder / REQUIREMENTS_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_sha256sums(folder: Path, wheels: Sequence[Wheel]) -> Path:
    """Write ``SHA256SUMS`` in the format ``sha256sum -c`` reads."""
    ordered = sorted(wheels, key=lambda w: w.path.name)
    lines = [f"{wheel.sha256}  {wheel.path.name}" for wheel in ordered]
    path = folder / SHA256SUMS_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build_wheelhouse(target: Target, out: Path, project: Path, *, app_wheel: Path | None = None,
                     find_links: Sequence[Path] = (), no_index: bool = False,
                     replace: bool = False, pins: Sequence[str] = ()) -> list[Wheel]:
    """Download the device app's wheels for the target into ``out`` and pin them.

    The folder is assembled next to ``out`` and renamed into place at the end, so an
    interrupted build never leaves a half-filled wheelhouse under the final name.

    Args:
        target: Device CPU, Python and glibc.
        out: Folder to create.
        project: Folder with the app's ``pyproject.toml``.
        app_wheel: A ``cadr`` wheel built before; when None, ``pip wheel --no-deps project``
            builds one.
        find_links: Local folders of wheels for pip to search, as ``pip --find-links``.
        no_index: Do not contact the package index; every wheel must be in ``find_links``.
        replace: Replace ``out`` if it exists.
        pins: Extra version requirements such as ``numpy<2``, resolved together with the
            project's dependencies.

    Raises:
        WheelhouseError: If ``out`` exists without ``replace``, or a pip step or check fails.

    """
    if out.exists() and not replace:
        raise WheelhouseError(f"{out}: already exists; pass --replace to build it again")
    requirements = read_dependencies(project / "pyproject.toml", target) + list(pins)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))

    try:
        if app_wheel is None:
            run_pip(pip_wheel_argv(project, staging), "building the app wheel")
        else:
            shutil.copy2(app_wheel, staging / app_wheel.name)

        run_pip(pip_download_argv(target, requirements, staging, find_links, no_index),
                f"downloading wheels for {target.name}")

        wheels = [describe_wheel(path, target) for path in sorted(staging.iterdir())]
        if not any(wheel.name == APP_DISTRIBUTION for wheel in wheels):
            raise WheelhouseError(f"no {APP_DISTRIBUTION} wheel was built from {project}")
        write_requirements(staging, wheels, target)
        write_sha256sums(staging, wheels)

        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)

    logger.info("Wrote %d wheels for %s to %s", len(wheels), target.name, out)
    return [Wheel(out / w.path.name, w.name, w.version, w.sha256) for w in wheels]


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m cadr_convert.wheelhouse",
        description="Download every wheel the cadr device app needs for one device platform "
                    "and write hash-pinned install files, for installing with no network.",
    )
    parser.add_argument("--machine", choices=MACHINES, default="aarch64",
                        help="device CPU architecture (default: %(default)s)")
    parser.add_argument("--python", default="3.11",
                        help="device CPython version, 3.11 on Bookworm, 3.13 on Trixie "
                             "(default: %(default)s)")
    parser.add_argument("--glibc", default=DEFAULT_GLIBC,
                        help="device glibc version; wheels needing a newer one are left out "
                             "(default: %(default)s, Debian and Raspberry Pi OS Bookworm)")
    parser.add_argument("--out", type=Path,
                        help="folder to create (default: dist/wheelhouse/TARGET under --project)")
    parser.add_argument("--project", type=Path, default=Path(),
                        help="folder with the app's pyproject.toml (default: current folder)")
    parser.add_argument("--app-wheel", type=Path,
                        help="use this cadr wheel instead of building one from --project")
    parser.add_argument("--find-links", type=Path, action="append", default=[],
                        help="local folder of wheels for pip to search; repeatable")
    parser.add_argument("--no-index", action="store_true",
                        help="do not contact the package index; all wheels come from --find-links")
    parser.add_argument("--pin", action="append", default=[], metavar="SPEC",
                        help="extra version requirement resolved with the dependencies, for "
                             "example 'numpy<2' to match apt's C extensions; repeatable")
    parser.add_argument("--replace", action="store_true", help="replace --out if it exists")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("CADR_LOG_LEVEL", "INFO"),
                        format="%(levelname)s %(name)s: %(message)s")

    try:
        target = Target(args.machine, args.python, args.glibc)
    except ValueError as e:
        parser.error(str(e))
    for pin in args.pin:
        try:
            Requirement(pin)
        except InvalidRequirement as e:
            parser.error(f"--pin {pin!r}: invalid requirement ({e})")
    if args.app_wheel is not None and not args.app_wheel.is_file():
        parser.error(f"--app-wheel {args.app_wheel}: file not found")
    out = args.out or args.project / "dist" / "wheelhouse" / target.name

    try:
        wheels = build_wheelhouse(target, out, args.project, app_wheel=args.app_wheel,
                                  find_links=args.find_links, no_index=args.no_index,
                                  replace=args.replace, pins=args.pin)
    except WheelhouseError as e:
        logger.error("%s", e)
        return 1

    print(f"{out}: {len(wheels)} wheels for {target.name}; install with "
          f"pip install --no-index --find-links {out} --require-hashes "
          f"-r {out / REQUIREMENTS_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

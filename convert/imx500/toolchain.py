"""Running the IMX500 toolchain (its own venv) as subprocesses: the driver and ``imxconv-tf``.

The toolchain venv is made by ``scripts/imx500-toolchain.sh``; this module only finds it
and runs it, and never installs anything. Every run uses an argv list and a timeout, and
a failure raises :class:`~cadr_convert.conversion_errors.ConversionError` with the tool's
own error lines.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cadr_convert.conversion_errors import ConversionError, InputError

logger = logging.getLogger(__name__)

#: Environment variable naming the toolchain venv; the default is ``.cache/imx500-venv``
#: in the repository.
VENV_VARIABLE = "CADR_IMX500_VENV"

#: Default venv folder, relative to the repository root.
DEFAULT_VENV = Path(".cache") / "imx500-venv"

#: The driver script run with the toolchain's Python.
DRIVER = Path(__file__).with_name("driver.py")

#: Time limit of the quantization driver, in seconds. An estimate with a wide margin: the
#: driver took 11 s for a 10-layer test model with 40 calibration inputs on 2 x86-64 cores.
DRIVER_TIMEOUT_S = 1800.0

#: Time limit of ``imxconv-tf``, in seconds; it took 47 s for the same 10-layer model.
CONVERTER_TIMEOUT_S = 1800.0

#: Exit code of the driver for a model it cannot rebuild or quantize.
DRIVER_EXIT_MODEL = 2

#: Lines of a failed tool's stderr kept in the error message.
STDERR_TAIL_LINES = 12

#: imxconv-tf error lines, for example ``... ERROR : CODE: [USOP] The network contains ...``.
_CONVERTER_ERROR = re.compile(r"\bERROR\s*:\s*(?P<message>.+?)(?:\s+\[/[^\]]*\])?$")

#: TensorFlow start-up chatter, dropped from error messages.
_TENSORFLOW_NOISE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] |^To enable the |"
                               r"^WARNING: All log messages before|^I0000 ")


@dataclass(frozen=True)
class Toolchain:
    """The IMX500 toolchain venv: its Python and its ``imxconv-tf`` command."""

    venv: Path

    @property
    def python(self) -> Path:
        """The venv's Python interpreter."""
        return self.venv / "bin" / "python"

    @property
    def converter(self) -> Path:
        """The venv's ``imxconv-tf`` console script."""
        return self.venv / "bin" / "imxconv-tf"


def default_venv() -> Path:
    """Return the venv from ``CADR_IMX500_VENV``, else ``.cache/imx500-venv`` in the repository."""
    configured = os.environ.get(VENV_VARIABLE)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / DEFAULT_VENV


def find_toolchain(venv: Path | None = None) -> Toolchain:
    """Return the toolchain in ``venv`` (default: :func:`default_venv`).

    Raises:
        InputError: If the venv or ``imxconv-tf`` is missing, saying how to create it.
    """
    toolchain = Toolchain(venv or default_venv())
    for required in (toolchain.python, toolchain.converter):
        if not required.is_file():
            raise InputError(
                f"IMX500 toolchain not found: {required} is missing; run "
                f"scripts/imx500-toolchain.sh (or set {VENV_VARIABLE} to its venv)"
            )
    return toolchain


def run_driver(toolchain: Toolchain, work_dir: Path, timeout_s: float = DRIVER_TIMEOUT_S) -> None:
    """Run ``driver.py`` on ``work_dir`` with the toolchain's Python.

    Raises:
        ConversionError: If the driver rejects the model, fails or times out.
    """
    argv = [str(toolchain.python), str(DRIVER), str(work_dir)]
    completed = _run(argv, timeout_s, "IMX500 quantization driver")
    if completed.returncode == DRIVER_EXIT_MODEL:
        raise ConversionError(f"IMX500 target: {_driver_message(completed.stderr)}")
    if completed.returncode != 0:
        raise ConversionError(
            f"IMX500 quantization driver failed with exit code {completed.returncode}:\n"
            f"{_tail(completed.stderr)}"
        )


def run_converter(toolchain: Toolchain, model: Path, out_dir: Path,
                  timeout_s: float = CONVERTER_TIMEOUT_S) -> None:
    """Run ``imxconv-tf -i MODEL -o OUT_DIR``, which writes ``packerOut.zip`` and reports.

    Raises:
        ConversionError: With imxconv-tf's own error lines when it rejects the model
            (for example an unsupported operation, or a network too large for the sensor).
    """
    argv = [str(toolchain.converter), "-i", str(model), "-o", str(out_dir), "--overwrite-output"]
    completed = _run(argv, timeout_s, "imxconv-tf")
    output = completed.stdout + "\n" + completed.stderr
    errors = converter_errors(output)
    if completed.returncode != 0 or errors:
        detail = "\n".join(errors) if errors else _tail(output)
        raise ConversionError(
            f"imxconv-tf rejected the model (exit code {completed.returncode}):\n{detail}\n"
            "change the model to use layers and sizes the IMX500 supports, or leave out "
            "--target imx500"
        )


def converter_errors(output: str) -> list[str]:
    """Return the distinct messages of imxconv-tf's ``ERROR`` lines, without source paths.

    The converter repeats an error in its Java exception line, so repeats are dropped.
    """
    messages: list[str] = []
    for line in output.splitlines():
        match = _CONVERTER_ERROR.search(line)
        if match and match.group("message").strip() not in messages:
            messages.append(match.group("message").strip())
    return messages


def _run(argv: list[str], timeout_s: float, what: str) -> subprocess.CompletedProcess[str]:
    logger.info("Running %s: %s", what, " ".join(argv))
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else ""
        raise ConversionError(f"{what} timed out after {timeout_s:.0f} s:\n{_tail(stderr)}") from e
    except OSError as e:
        raise ConversionError(f"{what} could not start ({argv[0]}: {e.strerror}); run "
                              "scripts/imx500-toolchain.sh again") from e


def _driver_message(stderr: str) -> str:
    prefix = "cadr-imx500-driver: error: "
    lines = [line[len(prefix):] for line in stderr.splitlines() if line.startswith(prefix)]
    return "\n".join(lines) if lines else _tail(stderr)


def _tail(text: str) -> str:
    lines = [line for line in text.splitlines()
             if line.strip() and not _TENSORFLOW_NOISE.search(line)]
    return "\n".join(lines[-STDERR_TAIL_LINES:]) or "(no output)"

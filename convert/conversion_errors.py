"""Errors of ``cadr-convert --int8`` and the process exit code each one maps to.

Exit codes: 0 success, 2 usage error (argparse's own), 3 input error (model, labels,
images, signing key, output folder), 4 quality gate failed, 5 conversion or final
bundle check failed.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_GATE = 4
EXIT_CONVERSION = 5


class ConversionError(Exception):
    """Base class of every error the converter reports as one line on stderr."""

    exit_code = EXIT_CONVERSION


class InputError(ConversionError):
    """The model, a folder, a label, the signing key or the output path is unusable."""

    exit_code = EXIT_INPUT


class GateError(ConversionError):
    """The int8 model failed the quality gate; no bundle was written."""

    exit_code = EXIT_GATE


class TargetUnavailableError(InputError):
    """An accelerator target was requested but its module is not installed."""

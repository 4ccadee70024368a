"""Error hierarchy of the device side.

Data problems (a bad image, a tampered bundle, a full disk) raise a subclass of
``CadrError`` with a message that names the file and the next step. Misuse by a
caller raises ``ValueError``, ``TypeError`` or ``RuntimeError``.
"""

from __future__ import annotations

from pathlib import Path

from cadr_device.names import display_name


class CadrError(Exception):
    """Base class of every data error the device side reports to a user."""

    exit_code = 1


class BundleError(CadrError):
    """A model bundle is missing, malformed, tampered with or unsigned."""

    exit_code = 3

    def __init__(self, path: Path | str, message: str, field: str | None = None) -> None:
        self.path = Path(path)
        self.field = field
        where = f"{self.path}" if field is None else f"{self.path}: field {field!r}"
        super().__init__(f"{where}: {message}")


class SignatureError(BundleError):
    """The bundle's signature is missing, invalid, or made by a key the device does not trust."""


class ImageError(CadrError):
    """An input image cannot be decoded or is outside the accepted size limits."""

    exit_code = 4

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = Path(path)
        self.reason = message
        super().__init__(f"{display_name(self.path)}: {message}")


class RuntimeLoadError(CadrError):
    """No TFLite runtime (LiteRT or tflite-runtime) could be imported or built."""

    exit_code = 5


class SelfTestError(CadrError):
    """The bundle's golden self-test inputs did not give their expected outputs."""

    exit_code = 6


class RecordError(CadrError):
    """A capture record could not be written durably (for example, the disk is full)."""

    exit_code = 7

"""The one adapter module that imports a TFLite interpreter.

LiteRT (``ai_edge_litert``) is preferred; ``tflite_runtime`` is the fallback for 32-bit
Raspberry Pi OS, where LiteRT has no wheel. Everything else in the package receives an
interpreter object from :func:`build_interpreter` and never imports a runtime itself.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from cadr_device.errors import RuntimeLoadError

logger = logging.getLogger(__name__)

#: (import path of the interpreter module, distribution name), in order of preference.
RUNTIMES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
)


@dataclass(frozen=True)
class RuntimeInfo:
    """Which runtime loaded, for logs and records."""

    module: Any
    distribution: str
    version: str

    @property
    def label(self) -> str:
        """Distribution and version for logs and records, e.g. ``ai-edge-litert 2.3.0``."""
        return f"{self.distribution} {self.version}"


_loaded: RuntimeInfo | None = None


def load_runtime(preferred: str | None = None) -> RuntimeInfo:
    """Import the first available TFLite runtime and log which one.

    Args:
        preferred: A distribution name from :data:`RUNTIMES` to try alone, or None to try
            them in order.

    Raises:
        RuntimeLoadError: If no runtime imports.
    """
    global _loaded  # noqa: PLW0603 - the import is process-wide; cache it once
    if _loaded is not None and preferred in (None, _loaded.distribution):
        return _loaded

    candidates = [r for r in RUNTIMES if preferred in (None, r[1])]
    if not candidates:
        raise ValueError(f"unknown runtime {preferred!r}; choose one of {[r[1] for r in RUNTIMES]}")

    failures = []
    for module_name, distribution in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:  # an optional back-end: try the next one
            failures.append(f"{distribution}: {e}")
            continue
        info = RuntimeInfo(module, distribution, _version(distribution))
        logger.info("Loaded TFLite runtime %s", info.label)
        _loaded = info
        return info

    raise RuntimeLoadError(
        "no TFLite runtime could be imported (" + "; ".join(failures) + "); "
        "install ai-edge-litert, or tflite-runtime on 32-bit Raspberry Pi OS"
    )


def build_interpreter(
    model_path: Path, num_threads: int, delegates: list[Any] | None = None,
    runtime: RuntimeInfo | None = None,
) -> Any:
    """Build and allocate an interpreter once; callers reuse it for every frame.

    Args:
        model_path: The ``.tflite`` file.
        num_threads: CPU threads for the interpreter, fixed at construction.
        delegates: Loaded delegates (for example the Edge TPU), or None for the CPU.
        runtime: The runtime to use; :func:`load_runtime` when None.
    """
    runtime = runtime or load_runtime()
    interpreter = runtime.module.Interpreter(
        model_path=str(model_path), num_threads=num_threads,
        experimental_delegates=delegates or None,
    )
    interpreter.allocate_tensors()
    return interpreter


def load_delegate(library: str, options: dict[str, str] | None = None,
                  runtime: RuntimeInfo | None = None) -> Any:
    """Load an external delegate library such as ``libedgetpu.so.1``.

    Raises:
        ValueError or OSError: As the runtime raises them when the library or device is missing.
    """
    runtime = runtime or load_runtime()
    return runtime.module.load_delegate(library, options or {})


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"

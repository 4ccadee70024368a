"""A stand-in for a TFLite runtime module with or without a Coral Edge TPU attached.

It follows the runtime API the device uses (``ai_edge_litert.interpreter`` 2.3 and
``tflite_runtime.interpreter``): ``load_delegate(library, options=None)`` returns a
delegate object or raises as the real one does, and ``Interpreter(model_path=,
num_threads=, experimental_delegates=)`` builds an interpreter. The failures copy what
the real stack raises:

- missing library: ``OSError`` from ctypes' ``dlopen`` ("libedgetpu.so.1: cannot open
  shared object file: No such file or directory"), which ai-edge-litert 2.3 lets through;
- no device, or no permission on it: ``ValueError("Failed to load delegate from
  libedgetpu.so.1\\n")`` from ``load_delegate`` (the delegate factory returns NULL);
- runtime older than the model's compiler: the interpreter fails to prepare the Edge TPU
  custom op with libedgetpu's "Package requires runtime version (14), which is newer than
  this runtime version (13)";
- other allocate failures: ``RuntimeError`` from ``allocate_tensors``.

There is no Edge TPU here, so a "working" delegate is a marker object and the model file
runs on the real LiteRT CPU interpreter. Tests use a copy of the CPU model as the bundle's
Edge TPU file, never a compiled one.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import numpy as np
from ai_edge_litert import interpreter as litert

from cadr_device.runtime import RuntimeInfo

MODES = ("works", "missing_library", "no_device", "runtime_too_old", "allocate_failure",
         "hang", "crash", "wrong_output")


class FakeDelegate:
    """What ``load_delegate`` returns: the real one wraps a native ``TfLiteDelegate`` pointer."""

    def __init__(self, library: str, options: dict[str, Any]) -> None:
        self.library = library
        self.options = dict(options)

    def _get_native_delegate_pointer(self) -> int:
        return 0


class FakeEdgeTpuModule:
    """Module-like object with ``load_delegate`` and ``Interpreter`` for one failure mode."""

    def __init__(self, mode: str = "works") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fake Edge TPU mode {mode!r}; choose one of {MODES}")
        self.mode = mode
        self.release = threading.Event()
        self.load_calls: list[tuple[str, dict[str, Any]]] = []

    def load_delegate(self, library: str, options: dict[str, Any] | None = None) -> FakeDelegate:
        self.load_calls.append((library, dict(options or {})))
        if self.mode == "missing_library":
            raise OSError(f"{library}: cannot open shared object file: No such file or directory")
        if self.mode == "no_device":
            raise ValueError(f"Failed to load delegate from {library}\n")
        if self.mode == "hang":
            # A USB enumeration that never returns; the test sets release when it ends.
            self.release.wait()
            raise ValueError(f"Failed to load delegate from {library}\n")
        if self.mode == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        return FakeDelegate(library, options or {})

    def Interpreter(self, model_path: str, num_threads: int | None = None,  # noqa: N802
                    experimental_delegates: list[Any] | None = None) -> Any:
        """Build the real LiteRT interpreter, failing as the Edge TPU stack would."""
        has_tpu = any(isinstance(d, FakeDelegate) for d in experimental_delegates or ())
        if has_tpu and self.mode == "runtime_too_old":
            raise ValueError(
                "Failed to prepare for TPU. Failed precondition: Package requires runtime "
                "version (14), which is newer than this runtime version (13).Node number 0 "
                "(EdgeTpuDelegateForCustomOp) failed to prepare.\n"
            )
        real = litert.Interpreter(model_path=model_path, num_threads=num_threads)
        if has_tpu and self.mode == "allocate_failure":
            return _FailingAllocate(real)
        if has_tpu and self.mode == "wrong_output":
            return _ShiftedOutput(real)
        return real


class _FailingAllocate:
    def __init__(self, real: Any) -> None:
        self._real = real

    def allocate_tensors(self) -> None:
        raise RuntimeError("Encountered unresolved custom op: edgetpu-custom-op.\nNode number 0 "
                           "(edgetpu-custom-op) failed to prepare.\n")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _ShiftedOutput:
    """An interpreter whose output tensor is off by a large amount, as a faulty device would be."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def get_tensor(self, index: int) -> np.ndarray:
        value = self._real.get_tensor(index)
        return (value.astype(np.int32) + 100).clip(np.iinfo(value.dtype).min,
                                                   np.iinfo(value.dtype).max).astype(value.dtype)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def fake_runtime(mode: str = "works") -> RuntimeInfo:
    """Return a RuntimeInfo whose module is a :class:`FakeEdgeTpuModule` in ``mode``."""
    return RuntimeInfo(FakeEdgeTpuModule(mode), "ai-edge-litert", "2.3.0")

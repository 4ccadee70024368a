"""Accelerator back-ends (Coral Edge TPU, Raspberry Pi AI Camera IMX500) with a CPU fallback.

:func:`select_backend` returns a classifier and a :class:`BackendStatus`; see
``docs/accelerators.md`` for what runs where and what the fallback looks like.
"""

from cadr_device.accel.select import PREFERENCES, default_state_dir, select_backend
from cadr_device.accel.status import CPU, EDGE_TPU, IMX500, AcceleratorUnavailable, BackendStatus

__all__ = [
    "CPU", "EDGE_TPU", "IMX500", "PREFERENCES", "AcceleratorUnavailable", "BackendStatus",
    "default_state_dir", "select_backend",
]

"""The status of the inference back-end: its name, and the reason an accelerator is not used."""

from __future__ import annotations

from dataclasses import dataclass

#: Back-end names shown on screen and stored in records.
CPU = "CPU"
EDGE_TPU = "Edge TPU"
IMX500 = "IMX500"


@dataclass(frozen=True)
class BackendStatus:
    """The back-end that runs the model.

    Attributes:
        name: ``"CPU"``, ``"Edge TPU"`` or ``"IMX500"``.
        reason: Why a requested accelerator is not used (the CPU runs instead), or None.
        delegate: The delegate library in use, for example ``libedgetpu.so.1``, or None.
    """

    name: str
    reason: str | None = None
    delegate: str | None = None

    @property
    def fallback_reason(self) -> str | None:
        """The same as ``reason``: why the CPU runs although an accelerator was requested."""
        return self.reason


class AcceleratorUnavailable(Exception):  # noqa: N818 - a state, not a programming error
    """An accelerator cannot run this bundle; the message is the reason shown and logged."""

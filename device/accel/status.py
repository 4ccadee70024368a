"""The status of the inference back-end: its name, and the reason an accelerator is not used."""

from __future__ import annotations

from dataclasses import dataclass

#: Back-end names shown on screen; records store the ids of :data:`BACKEND_IDS`.
CPU = "CPU"
EDGE_TPU = "Edge TPU"
IMX500 = "IMX500"

#: Back-end name to the id stored in records and accepted by ``model.backend``.
BACKEND_IDS = {CPU: "cpu", EDGE_TPU: "edgetpu", IMX500: "imx500"}


def backend_id(name: str) -> str:
    """Return the record id of a back-end name: ``CPU`` → ``cpu``, ``Edge TPU`` → ``edgetpu``."""
    return BACKEND_IDS.get(name, name.lower())


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

"""Accelerator targets of ``cadr-convert --target``: one entry point, :func:`run_target`.

The converter calls :func:`run_target` for each requested accelerator after the CPU int8
model passed its quality gate. Each target writes its files into ``context.bundle_dir``
(so they are hashed and signed with the bundle) and returns its manifest entry, stored
under ``accelerators.<name>``, and its report section.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from cadr_convert.context import ConversionContext
from cadr_convert.conversion_errors import InputError


def _build_imx500(context: ConversionContext) -> dict[str, Any]:
    from cadr_convert.imx500.target import build_imx500  # noqa: PLC0415 - loaded on request

    return build_imx500(context)


def _build_edgetpu(context: ConversionContext) -> dict[str, Any]:
    from cadr_convert.edgetpu import build_edgetpu  # noqa: PLC0415 - loaded on request

    return build_edgetpu(context)


#: Target name to builder.
TARGETS: dict[str, Callable[[ConversionContext], dict[str, Any]]] = {
    "imx500": _build_imx500,
    "edgetpu": _build_edgetpu,
}


def check_target(name: str) -> None:
    """Raise before any conversion work when target ``name`` cannot be built here.

    Raises:
        InputError: If ``name`` is unknown or its tools are missing, saying how to
            install them.
    """
    if name not in TARGETS:
        raise InputError(f"unknown accelerator target {name!r}; choose one of {sorted(TARGETS)}")
    if name == "imx500":
        from cadr_convert.imx500.toolchain import find_toolchain  # noqa: PLC0415

        find_toolchain()
    elif name == "edgetpu":
        from cadr_convert.edgetpu import COMPILER, INSTALL_HINT  # noqa: PLC0415

        if shutil.which(COMPILER) is None:
            raise InputError(INSTALL_HINT)


def run_target(name: str, context: ConversionContext) -> dict[str, Any]:
    """Build accelerator target ``name`` and return ``{"manifest": ..., "report": ...}``.

    Raises:
        InputError: If ``name`` is not a known target or its tools are not installed.
        ConversionError: If the target's conversion fails; GateError if its model fails
            the quality gate.
    """
    builder = TARGETS.get(name)
    if builder is None:
        raise InputError(f"unknown accelerator target {name!r}; choose one of {sorted(TARGETS)}")
    return builder(context)

"""The ``--target edgetpu`` build: run Coral's ``edgetpu_compiler`` and read its log.

``edgetpu_compiler`` is published only for x86-64 Debian/Ubuntu (Coral's apt repository,
package ``edgetpu-compiler``). It maps a prefix of the int8 graph to one Edge TPU custom
op. With the default single subgraph, every operation after the first one it cannot map
runs on the CPU, so the share of operations on the TPU shows how early the graph falls
back. The build rejects a model whose share is below :data:`MIN_TPU_OPERATION_FRACTION`.
The CPU model stays in the bundle either way: the device falls back to it.

The log format parsed here is the one the compiler prints (version 16), for example::

    Edge TPU Compiler version 16.0.384591198
    Started a compilation timeout timer of 180 seconds.

    Model compiled successfully in 352 ms.

    Input model: model.tflite
    ...
    Number of Edge TPU subgraphs: 1
    Total number of operations: 12
    Operation log: out/model_edgetpu.log
    ...
    Number of operations that will run on Edge TPU: 10
    Number of operations that will run on CPU: 2

    Operator                       Count      Status

    CONV_2D                        3          Mapped to Edge TPU
    LOGISTIC                       1          More than one subgraph is not supported
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cadr_convert.context import ConversionContext
from cadr_convert.conversion_errors import ConversionError, InputError

logger = logging.getLogger(__name__)

COMPILER = "edgetpu_compiler"

#: Folder inside the bundle for the Edge TPU model.
BUNDLE_FOLDER = "edgetpu"

#: Time limit of one compilation, in seconds; the compiler's own default timer is 180 s.
COMPILER_TIMEOUT_S = 300.0

#: Extra seconds the subprocess may take after the compiler's own timer ran out, so the
#: compiler can report its timeout before the process is killed.
COMPILER_EXIT_GRACE_S = 30.0

#: Smallest share of operations that must run on the Edge TPU. Below it the graph leaves
#: the TPU early and most of the work would run on the CPU after a slow hand-over.
MIN_TPU_OPERATION_FRACTION = 0.9

#: Edge TPU runtime version the model is compiled for (``--min_runtime_version``). 14 is
#: the version of libedgetpu 16.0, the last Coral release; the compiler's default is the
#: same, stated here so the manifest can record it.
MIN_RUNTIME_VERSION = 14

#: Operator table status of an operation the compiler placed on the TPU.
MAPPED_STATUS = "Mapped to Edge TPU"

INSTALL_HINT = (
    "edgetpu_compiler is not on PATH. It runs only on x86-64 Debian or Ubuntu: add Coral's apt "
    "repository (https://coral.ai/docs/edgetpu/compiler/) and run 'apt-get install "
    "edgetpu-compiler', then convert again; or leave out --target edgetpu"
)

_VERSION = re.compile(r"^Edge TPU Compiler version (?P<version>\S+)", re.MULTILINE)
_SUCCESS = re.compile(r"^Models? compiled successfully in (?P<ms>\d+) ms", re.MULTILINE)
_FIELD = re.compile(r"^(?P<key>[A-Z][A-Za-z -]+?): (?P<value>.+?)\s*$", re.MULTILINE)
_ERROR_LINE = re.compile(r"\b(ERROR|Error|error|failed|Invalid model|not quantized)\b")
_OPERATOR_ROW = re.compile(r"^(?P<op>[A-Z][A-Z0-9_]*)\s+(?P<count>\d+)\s+(?P<status>\S.*?)\s*$")


@dataclass(frozen=True)
class OperatorRow:
    """One row of the compiler's operator table."""

    operator: str
    count: int
    status: str

    @property
    def mapped(self) -> bool:
        """Whether the compiler placed these operations on the Edge TPU."""
        return self.status == MAPPED_STATUS


@dataclass(frozen=True)
class CompilerLog:
    """What one ``edgetpu_compiler`` run printed.

    Attributes:
        compiler_version: For example ``16.0.384591198``.
        succeeded: Whether the compiler printed "Model compiled successfully".
        compile_ms: Compilation time the compiler reported, in milliseconds.
        total_operations: "Total number of operations".
        tpu_operations: Operations on the Edge TPU (the compiler's count, else the
            table's mapped rows; all of them when the compiler printed no CPU count).
        cpu_operations: Operations left to the CPU.
        subgraphs: "Number of Edge TPU subgraphs".
        fields: Every other ``Key: value`` line, for the report.
        operators: The operator table, when the log has one.
        errors: Error lines of a failed compilation.
    """

    compiler_version: str | None
    succeeded: bool
    compile_ms: int | None
    total_operations: int | None
    tpu_operations: int | None
    cpu_operations: int | None
    subgraphs: int | None
    fields: dict[str, str] = field(default_factory=dict)
    operators: tuple[OperatorRow, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def tpu_fraction(self) -> float | None:
        """Share of operations that run on the Edge TPU, or None when the log has no counts."""
        if not self.total_operations or self.tpu_operations is None:
            return None
        return self.tpu_operations / self.total_operations

    def first_unmapped(self) -> OperatorRow | None:
        """Return the first table row not mapped to the TPU (table order, not graph order)."""
        return next((row for row in self.operators if not row.mapped), None)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping for the report."""
        data = asdict(self)
        data["operators"] = [asdict(row) for row in self.operators]
        data["errors"] = list(self.errors)
        data["tpu_fraction"] = self.tpu_fraction
        return data


def parse_log(text: str, operation_log: str | None = None) -> CompilerLog:
    """Parse the compiler's console output and, when given, its operation log file.

    The console shows the operator table only with ``--show_operations``, but the operation
    log file (``*_edgetpu.log``) always has it. The table is read from the file when the
    console has none.
    """
    version = _VERSION.search(text)
    success = _SUCCESS.search(text)
    fields = {m.group("key").strip(): m.group("value") for m in _FIELD.finditer(text)}
    operators = _operator_table(text)
    if not operators and operation_log:
        operators = _operator_table(operation_log)

    total = _integer(fields.get("Total number of operations"))
    tpu = _integer(fields.get("Number of operations that will run on Edge TPU"))
    cpu = _integer(fields.get("Number of operations that will run on CPU"))
    if tpu is None and operators:
        tpu = sum(row.count for row in operators if row.mapped)
        cpu = sum(row.count for row in operators if not row.mapped)
    elif tpu is None and success and total is not None:
        # A fully mapped model gets no per-device counts, only the total.
        tpu, cpu = total, 0
    if total is None and tpu is not None and cpu is not None:
        total = tpu + cpu

    errors = tuple(line.strip() for line in text.splitlines() if _ERROR_LINE.search(line))
    return CompilerLog(
        compiler_version=version.group("version") if version else None,
        succeeded=success is not None,
        compile_ms=int(success.group("ms")) if success else None,
        total_operations=total,
        tpu_operations=tpu,
        cpu_operations=cpu,
        subgraphs=_integer(fields.get("Number of Edge TPU subgraphs")),
        fields=fields,
        operators=operators,
        errors=errors,
    )


def compile_model(model: Path, out_dir: Path, compiler: str = COMPILER,
                  timeout_s: float = COMPILER_TIMEOUT_S,
                  min_runtime_version: int = MIN_RUNTIME_VERSION) -> tuple[Path, CompilerLog]:
    """Run ``edgetpu_compiler`` on an int8 ``.tflite`` and return the compiled file and log.

    Raises:
        InputError: If the compiler is not on PATH, with how to install it.
        ConversionError: If it fails, times out or writes no model, with its error lines.
    """
    executable = shutil.which(compiler)
    if executable is None:
        raise InputError(INSTALL_HINT)
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = [executable, "--show_operations", "--out_dir", str(out_dir),
            "--min_runtime_version", str(min_runtime_version),
            "--timeout_sec", str(int(timeout_s)), str(model)]
    logger.info("Running %s", " ".join(argv))
    try:
        completed = subprocess.run(argv, capture_output=True, text=True,
                                   timeout=timeout_s + COMPILER_EXIT_GRACE_S, check=False)
    except subprocess.TimeoutExpired as e:
        raise ConversionError(f"edgetpu_compiler timed out after "
                              f"{timeout_s + COMPILER_EXIT_GRACE_S:.0f} s on {model}") from e

    output = completed.stdout + "\n" + completed.stderr
    compiled = out_dir / f"{model.stem}_edgetpu.tflite"
    operation_log = out_dir / f"{model.stem}_edgetpu.log"
    log_text = (operation_log.read_text(encoding="utf-8", errors="replace")
                if operation_log.is_file() else None)
    log = parse_log(output, log_text)

    if completed.returncode != 0 or not log.succeeded:
        detail = "\n".join(log.errors) or completed.stderr.strip() or completed.stdout.strip()
        raise ConversionError(
            f"edgetpu_compiler failed on {model} (exit code {completed.returncode}):\n{detail}"
        )
    if not compiled.is_file():
        raise ConversionError(f"edgetpu_compiler reported success but wrote no {compiled}")
    return compiled, log


def check_mapping(log: CompilerLog, min_fraction: float = MIN_TPU_OPERATION_FRACTION) -> None:
    """Reject a compilation that leaves the Edge TPU too early.

    Raises:
        ConversionError: Naming the first unmapped operator and its status.
    """
    fraction = log.tpu_fraction
    if fraction is None:
        raise ConversionError("edgetpu_compiler printed no operation counts; cannot tell how much "
                              "of the model runs on the Edge TPU")
    if fraction < min_fraction:
        row = log.first_unmapped()
        reason = f"; first unmapped: {row.operator} ({row.status})" if row else ""
        raise ConversionError(
            f"Edge TPU target: only {log.tpu_operations} of {log.total_operations} operations "
            f"({fraction:.0%}) run on the Edge TPU, below the {min_fraction:.0%} minimum{reason}. "
            "Replace that operation, or leave out --target edgetpu (the CPU model is unaffected)"
        )


def build_edgetpu(context: ConversionContext, compiler: str = COMPILER) -> dict[str, Any]:
    """Compile ``context.cpu_model`` for the Edge TPU into ``edgetpu/`` of the bundle.

    Returns:
        ``{"manifest": entry for accelerators.edgetpu, "report": report section}``.
    """
    with tempfile.TemporaryDirectory(prefix="cadr-edgetpu-") as scratch:
        compiled, log = compile_model(context.cpu_model, Path(scratch), compiler)
        check_mapping(log)
        destination = context.bundle_dir / BUNDLE_FOLDER
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(compiled, destination / "model_edgetpu.tflite")

    logger.info("Edge TPU model built: %s of %s operations on the TPU", log.tpu_operations,
                log.total_operations)
    entry = {
        "file": f"{BUNDLE_FOLDER}/model_edgetpu.tflite",
        "delegate": "libedgetpu.so.1",
        "compiler_version": log.compiler_version,
        "min_runtime_version": MIN_RUNTIME_VERSION,
        "tpu_operations": log.tpu_operations,
        "total_operations": log.total_operations,
    }
    report = {**log.as_dict(),
              "note": "compiled on the host; the Edge TPU outputs were not measured here"}
    return {"manifest": entry, "report": report}


def _operator_table(text: str) -> tuple[OperatorRow, ...]:
    rows = []
    in_table = False
    for line in text.splitlines():
        if re.match(r"^Operator\s+Count\s+Status\s*$", line):
            in_table = True
            continue
        if not in_table:
            continue
        match = _OPERATOR_ROW.match(line)
        if match:
            rows.append(OperatorRow(match.group("op"), int(match.group("count")),
                                    match.group("status")))
        elif line.strip() and not line.startswith(" "):
            in_table = False
    return tuple(rows)


def _integer(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None

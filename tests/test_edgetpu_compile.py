"""edgetpu_compiler invocation and log parsing.

The compiler is not installable here, so a fake ``edgetpu_compiler`` script on PATH (a
real subprocess) prints a log in the compiler's format and records its arguments. The
file it writes is a text placeholder: these tests check the invocation, the error paths
and the parsing, never an Edge TPU model.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from cadr_convert import edgetpu
from cadr_convert.context import ConversionContext, GateLimits
from cadr_convert.conversion_errors import ConversionError, InputError
from cadr_convert.targets import check_target, run_target

LOGS = Path(__file__).parent / "data" / "edgetpu_compiler"

PLACEHOLDER = b"placeholder written by the fake edgetpu_compiler; not a compiled model\n"

FAKE_COMPILER = """\
#!{python}
import json, os, sys, time
from pathlib import Path

args = sys.argv[1:]
Path(os.environ["FAKE_EDGETPU_RECORD"]).write_text(json.dumps(args))
mode = os.environ["FAKE_EDGETPU_MODE"]
logs = Path(os.environ["FAKE_EDGETPU_LOGS"])
out_dir = Path(args[args.index("--out_dir") + 1])
stem = Path(args[-1]).stem
if mode == "sleep":
    time.sleep(60)
if mode.startswith("fail"):
    sys.stdout.write((logs / f"{{mode}}.log").read_text())
    sys.exit(1)
sys.stdout.write((logs / f"compiled_{{mode}}.log").read_text())
if mode == "partial":
    (out_dir / f"{{stem}}_edgetpu.log").write_text((logs / "operation_log_partial.log").read_text())
if os.environ.get("FAKE_EDGETPU_WRITE", "1") == "1":
    (out_dir / f"{{stem}}_edgetpu.tflite").write_bytes({placeholder!r})
"""


@pytest.fixture
def fake_compiler(tmp_path, monkeypatch):
    """Put a fake edgetpu_compiler on PATH; return the file its argv is recorded in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "edgetpu_compiler"
    script.write_text(FAKE_COMPILER.format(python=sys.executable, placeholder=PLACEHOLDER),
                      encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / "argv.json"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_EDGETPU_RECORD", str(record))
    monkeypatch.setenv("FAKE_EDGETPU_LOGS", str(LOGS))
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "full")
    return record


@pytest.fixture
def int8_model(tmp_path) -> Path:
    model = tmp_path / "model.tflite"
    model.write_bytes(b"int8 model bytes for the fake compiler")
    return model


def _context(tmp_path: Path, model: Path) -> ConversionContext:
    probabilities = np.array([0.2, 0.8])
    return ConversionContext(
        float_model=None, source_model=tmp_path / "model.keras", cpu_model=model,
        calibration_inputs=np.zeros((1, 8, 8, 3), np.uint8),
        validation_inputs=np.zeros((2, 8, 8, 3), np.uint8), validation_labels=np.array([0, 1]),
        float_probabilities=probabilities, int8_probabilities=probabilities, threshold=0.5,
        gate=GateLimits(), bundle_dir=tmp_path / "bundle", normalisation="none",
        input_size=(8, 8), seed=0,
    )


def test_parse_full_mapping():
    log = edgetpu.parse_log((LOGS / "compiled_full.log").read_text())

    assert log.succeeded
    assert log.compiler_version == "16.0.384591198"
    assert log.compile_ms == 352
    assert log.total_operations == 7
    assert log.tpu_operations == 7
    assert log.cpu_operations == 0
    assert log.subgraphs == 1
    assert log.tpu_fraction == 1.0
    assert [row.operator for row in log.operators][:2] == ["QUANTIZE", "CONV_2D"]
    assert log.first_unmapped() is None
    assert log.fields["On-chip memory used for caching model parameters"] == "8.00KiB"


def test_parse_partial_mapping():
    log = edgetpu.parse_log((LOGS / "compiled_partial.log").read_text())

    assert log.succeeded
    assert log.total_operations == 72
    assert log.tpu_operations == 9
    assert log.cpu_operations == 63
    assert log.tpu_fraction == pytest.approx(0.125)
    first = log.first_unmapped()
    assert first is not None
    assert first.operator == "RESIZE_BILINEAR"
    assert first.status.startswith("Operation is otherwise supported")
    assert sum(row.count for row in log.operators) == 72


def test_parse_counts_without_table():
    log = edgetpu.parse_log((LOGS / "compiled_no_table.log").read_text())

    assert log.operators == ()
    assert log.tpu_operations == 7
    assert log.tpu_fraction == 1.0


def test_parse_table_from_operation_log():
    console = (LOGS / "compiled_partial.log").read_text()
    console = console[:console.index("Operator ")]

    log = edgetpu.parse_log(console, (LOGS / "operation_log_partial.log").read_text())

    assert len(log.operators) == 11
    assert log.tpu_operations == 9


@pytest.mark.parametrize(("name", "expected"), [
    ("failed_not_quantized.log", "Model not quantized"),
    ("failed_interpreter.log", "Didn't find op for builtin opcode 'FULLY_CONNECTED'"),
])
def test_parse_failure_lines(name, expected):
    log = edgetpu.parse_log((LOGS / name).read_text())

    assert not log.succeeded
    assert any(expected in line for line in log.errors)


def test_check_mapping_rejects_early_fallback():
    log = edgetpu.parse_log((LOGS / "compiled_partial.log").read_text())

    with pytest.raises(ConversionError) as caught:
        edgetpu.check_mapping(log)

    message = str(caught.value)
    assert "only 9 of 72 operations (12%)" in message
    assert "first unmapped: RESIZE_BILINEAR" in message


def test_check_mapping_accepts_full():
    edgetpu.check_mapping(edgetpu.parse_log((LOGS / "compiled_full.log").read_text()))


def test_compile_passes_arguments(fake_compiler, int8_model, tmp_path):
    out_dir = tmp_path / "out"

    compiled, log = edgetpu.compile_model(int8_model, out_dir, timeout_s=120)

    argv = json.loads(fake_compiler.read_text())
    assert argv == ["--show_operations", "--out_dir", str(out_dir), "--min_runtime_version",
                    str(edgetpu.MIN_RUNTIME_VERSION), "--timeout_sec", "120", str(int8_model)]
    assert compiled == out_dir / "model_edgetpu.tflite"
    assert compiled.read_bytes() == PLACEHOLDER
    assert log.tpu_operations == 7


def test_compile_nonzero_exit_raises(fake_compiler, int8_model, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "failed_not_quantized")

    with pytest.raises(ConversionError) as caught:
        edgetpu.compile_model(int8_model, tmp_path / "out")

    message = str(caught.value)
    assert "exit code 1" in message
    assert "Model not quantized" in message


def test_compile_timeout_raises(fake_compiler, int8_model, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "sleep")
    monkeypatch.setattr(edgetpu, "COMPILER_EXIT_GRACE_S", 0.0)

    with pytest.raises(ConversionError, match="timed out after 1 s"):
        edgetpu.compile_model(int8_model, tmp_path / "out", timeout_s=1.0)


def test_compile_without_output_raises(fake_compiler, int8_model, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_WRITE", "0")

    with pytest.raises(ConversionError, match="wrote no"):
        edgetpu.compile_model(int8_model, tmp_path / "out")


def test_compiler_missing_says_install(int8_model, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    with pytest.raises(InputError) as caught:
        edgetpu.compile_model(int8_model, tmp_path / "out")

    assert "apt-get install edgetpu-compiler" in str(caught.value)
    assert "x86-64" in str(caught.value)


def test_target_rejects_partial_mapping(fake_compiler, int8_model, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "partial")
    context = _context(tmp_path, int8_model)

    with pytest.raises(ConversionError, match="below the 90% minimum"):
        run_target("edgetpu", context)

    assert not (context.bundle_dir / "edgetpu").exists()


def test_target_manifest_entry(fake_compiler, int8_model, tmp_path):
    context = _context(tmp_path, int8_model)

    result = run_target("edgetpu", context)

    entry = result["manifest"]
    assert entry["file"] == "edgetpu/model_edgetpu.tflite"
    assert entry["delegate"] == "libedgetpu.so.1"
    assert entry["compiler_version"] == "16.0.384591198"
    assert (entry["tpu_operations"], entry["total_operations"]) == (7, 7)
    assert (context.bundle_dir / entry["file"]).read_bytes() == PLACEHOLDER
    assert result["report"]["tpu_fraction"] == 1.0


def test_unknown_target_raises(tmp_path, int8_model):
    with pytest.raises(InputError, match="unknown accelerator target 'gpu'"):
        run_target("gpu", _context(tmp_path, int8_model))


def test_check_target_without_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    with pytest.raises(InputError, match="edgetpu_compiler is not on PATH"):
        check_target("edgetpu")


def test_check_target_with_compiler(fake_compiler):
    check_target("edgetpu")


def test_check_target_unknown():
    with pytest.raises(InputError, match="unknown accelerator target 'npu'"):
        check_target("npu")

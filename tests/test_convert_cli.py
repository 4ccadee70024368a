"""cadr-convert's option parsing and help text (no TensorFlow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cadr_convert.cli import build_parser, request_from_args

REQUIRED = ["--int8", "m.keras", "--calibration", "cal", "--validation", "val", "--out", "b",
            "--name", "demo", "--version", "1.0.0"]


def test_defaults_reach_request() -> None:
    request = request_from_args(build_parser().parse_args(REQUIRED))
    assert request.model == Path("m.keras")
    assert request.calibration_count == 300
    assert request.crop_fraction is None
    assert request.resample is None
    assert request.target_sensitivity == 0.9
    assert request.gate.max_auc_drop == 0.02
    assert request.gate.min_agreement == 0.95
    assert request.targets == ("cpu",)
    assert request.signing_key is None
    assert request.labels is None


def test_options_reach_request() -> None:
    args = build_parser().parse_args([
        *REQUIRED, "--labels", "mild,severe", "--input-size", "96x64", "--target", "edgetpu",
        "--target", "imx500", "--max-auc-drop", "0.05", "--demonstration-only", "--force",
    ])
    request = request_from_args(args)
    assert request.labels == ("mild", "severe")
    assert request.input_size == (96, 64)
    assert request.targets == ("cpu", "edgetpu", "imx500")
    assert request.gate.max_auc_drop == 0.05
    assert request.demonstration_only is True
    assert request.force is True


@pytest.mark.parametrize("extra", [
    ["--labels", "onlyone"],
    ["--input-size", "0"],
    ["--target", "gpu"],
    ["--normalisation", "zscore"],
    ["--target-sensitivity", "1.5"],
], ids=["labels", "input-size", "target", "normalisation", "sensitivity"])
def test_bad_values_are_usage_errors(extra: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args([*REQUIRED, *extra])
    assert raised.value.code == 2


def test_help_states_defaults_and_exit_codes() -> None:
    text = " ".join(build_parser().format_help().split())
    for fragment in ("default: 300", "else 0.8", "else bilinear", "default: 0.02", "default: 0.95",
                     "default: 0.9", "4 quality gate failed", "--signing-key"):
        assert fragment in text, fragment


@pytest.mark.parametrize(("name", "version", "message"), [
    ("Bad Name", "1.0.0", "--name 'Bad Name' is invalid"),
    ("demo", "1.0", "--version '1.0' is invalid"),
], ids=["name", "version"])
def test_bad_identity_rejected_early(tmp_path: Path, name: str, version: str,
                                     message: str) -> None:
    from cadr_convert.conversion_errors import InputError
    from cadr_convert.convert import ConversionRequest, convert_int8

    request = ConversionRequest(model=tmp_path / "missing.keras", calibration=tmp_path,
                                validation=tmp_path, out=tmp_path / "b", name=name,
                                version=version)
    with pytest.raises(InputError, match=message):
        convert_int8(request)


@pytest.mark.parametrize(("target", "messages"), [
    ("edgetpu", ["edgetpu_compiler is not on PATH", "apt-get install edgetpu-compiler"]),
    ("imx500", ["IMX500 toolchain not found", "scripts/imx500-toolchain.sh"]),
])
def test_missing_target_tool_fails_before_model(tmp_path: Path, target: str,
                                                messages: list[str]) -> None:
    script = Path(sys.executable).with_name("cadr-convert")
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    # The model file does not exist: an error about it would mean the target was
    # checked only after loading the model and reading the calibration images.
    argv = [str(script), "--int8", str(tmp_path / "absent.keras"), "--calibration",
            str(calibration), "--validation", str(tmp_path / "validation"), "--out",
            str(tmp_path / "bundle"), "--name", "demo", "--version", "1.0.0", "--target", target]
    env = {**os.environ, "PATH": str(script.parent), "CADR_IMX500_VENV": str(tmp_path / "none")}

    run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300,
                         check=False)

    assert run.returncode == 3, run.stderr
    for message in messages:
        assert message in run.stderr
    assert "absent.keras" not in run.stderr
    assert not (tmp_path / "bundle").exists()

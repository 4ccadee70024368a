"""cadr-convert's option parsing and help text (no TensorFlow)."""

from __future__ import annotations

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

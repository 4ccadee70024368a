"""cadr-convert --int8 end to end: real TensorFlow, real LiteRT, real files and signatures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_classifier import LABELS, build_model, load_folder, write_image_folder

from cadr_convert.conversion_errors import EXIT_GATE, EXIT_INPUT, InputError
from cadr_convert.convert import ConversionRequest, convert_int8
from cadr_convert.folding import NORMALISATIONS, normalise, wrap_with_normalisation
from cadr_convert.quantize import check_input_identity, int8_outputs, quantize_model
from cadr_device.bundle import load_bundle
from cadr_device.classifier import Classifier
from cadr_device.selftest import run_selftest
from cadr_device.signing import Keyring

REPO = Path(__file__).resolve().parent.parent
DEMO_KEY = REPO / "models" / "keys" / "cadr-demo-signing-key.pem"
CLI_TIMEOUT_S = 300

pytestmark = pytest.mark.slow


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cadr_convert.cli", "--int8", *map(str, args)],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )


def cli_args(tiny_bundle, out: Path, model: Path | None = None) -> list[str | Path]:
    return [
        model or tiny_bundle.model, "--calibration", tiny_bundle.train,
        "--validation", tiny_bundle.validation, "--out", out,
        "--signing-key", tiny_bundle.private_key, "--name", "tiny-cli", "--version", "0.2.0",
        "--labels", ",".join(LABELS), "--normalisation", "mobilenet",
        "--allow-small-calibration",
    ]


def request_for(tiny_bundle, out: Path, **changes) -> ConversionRequest:
    fields = dict(
        model=tiny_bundle.model, calibration=tiny_bundle.train, validation=tiny_bundle.validation,
        out=out, name="tiny-api", version="0.3.0", signing_key=tiny_bundle.private_key,
        labels=LABELS, normalisation="mobilenet", allow_small_calibration=True,
    )
    fields.update(changes)
    return ConversionRequest(**fields)


def test_cli_round_trip(tiny_bundle, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    held_out = write_image_folder(tmp_path / "held_out", per_label=10, seed=9)

    result = run_cli(*cli_args(tiny_bundle, out))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stderr

    bundle = load_bundle(out, Keyring.from_directory(tiny_bundle.key_dir))
    manifest = bundle.manifest
    assert manifest.model_id == "tiny-cli@0.2.0"
    assert manifest.labels == LABELS
    assert manifest.positive_label == "severe"
    assert manifest.model.output_kind == "sigmoid"
    assert manifest.raw["model"]["input"]["normalisation"] == "mobilenet"
    assert set(manifest.raw["toolchain"]) >= {"converter", "tensorflow", "ai_edge_litert"}
    provenance = manifest.raw["provenance"]
    assert len(provenance["source_model"]["sha256"]) == 64
    assert provenance["calibration"]["per_class"] == {"mild": 60, "severe": 60}
    assert provenance["calibration"]["seed"] == 0
    assert provenance["validation"]["per_class"] == {"mild": 30, "severe": 30}
    assert manifest.decision.validation_images == 60
    assert manifest.decision.sensitivity >= 0.9
    assert len(manifest.selftest.cases) == 6
    for name in ("report.json", "report.md", "roc.png", "score_histogram.png"):
        assert (out / name).is_file(), name

    classifier = Classifier(bundle)
    details = classifier.interpreter.get_input_details()[0]
    assert details["dtype"] == np.uint8
    assert details["quantization"] == (1.0, 0)
    assert run_selftest(classifier).max_difference <= manifest.selftest.tolerance

    import keras

    model = keras.models.load_model(tiny_bundle.model, compile=False)
    inputs, labels = load_folder(held_out)
    float_probabilities = model.predict(normalise(inputs, "mobilenet"), verbose=0).reshape(-1)
    int8_probabilities = np.array([classifier.probability(x)[0] for x in inputs])
    assert np.abs(float_probabilities - int8_probabilities).max() < 0.05
    assert ((int8_probabilities >= manifest.decision.threshold) == labels).mean() >= 0.8


def test_report_has_key_numbers(tiny_bundle) -> None:
    report = json.loads((tiny_bundle.bundle / "report.json").read_text(encoding="utf-8"))
    validation = report["validation"]
    assert report["status"] == "accepted"
    for key in ("float_auc", "int8_auc", "agreement", "mean_abs_difference",
                "max_abs_difference", "auc_drop"):
        assert isinstance(validation[key], float), key
    for key in ("sensitivity", "specificity", "ppv", "npv"):
        assert key in validation["int8_point"], key
    assert "ROC AUC" in (tiny_bundle.bundle / "report.md").read_text(encoding="utf-8")


def test_constant_model_fails_gate(tiny_bundle, tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="zeros")(x)
    model_path = tmp_path / "constant.keras"
    keras.Model(inputs, outputs).save(model_path)
    out = tmp_path / "bundle"

    result = run_cli(*cli_args(tiny_bundle, out, model=model_path))

    assert result.returncode == EXIT_GATE
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("cadr-convert: quality gate failed: int8 output spread")
    assert "limit 0.0200 (--min-output-spread)" in last_line
    assert not out.exists()
    assert not list(tmp_path.glob(".bundle.partial-*"))
    report = json.loads((tmp_path / "bundle.rejected" / "report.json").read_text("utf-8"))
    assert report["status"] == "rejected"
    assert report["worst_layers"]
    assert not (tmp_path / "bundle.rejected" / "manifest.sig").exists()


def test_too_few_calibration_images(tiny_bundle, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    with pytest.raises(InputError, match="fewer than the minimum 100"):
        convert_int8(request_for(tiny_bundle, out, calibration=tiny_bundle.validation,
                                 allow_small_calibration=False))
    assert not out.exists()


def test_existing_out_needs_force(tiny_bundle, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("old", encoding="utf-8")

    result = run_cli(*cli_args(tiny_bundle, out))
    assert result.returncode == EXIT_INPUT
    assert "already exists; pass --force" in result.stderr
    assert (out / "old.txt").exists()

    convert_int8(request_for(tiny_bundle, out, force=True))
    assert not (out / "old.txt").exists()
    load_bundle(out, Keyring.from_directory(tiny_bundle.key_dir))
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_signing_key_required(tiny_bundle, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no signing key given; pass --signing-key"):
        convert_int8(request_for(tiny_bundle, tmp_path / "bundle", signing_key=None))


def test_demo_key_only_for_demonstration(tiny_bundle, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="published demonstration key"):
        convert_int8(request_for(tiny_bundle, tmp_path / "clinical", signing_key=DEMO_KEY))

    out = tmp_path / "demo"
    convert_int8(request_for(tiny_bundle, out, signing_key=DEMO_KEY, demonstration_only=True))
    bundle = load_bundle(out, Keyring.from_directory(REPO / "device" / "keys"))
    assert bundle.manifest.demonstration_only is True
    assert bundle.signer.demo_only is True


def test_sidecar_supplies_defaults_and_conflicts(tiny_bundle, tmp_path: Path) -> None:
    model = tmp_path / "model.keras"
    shutil.copy(tiny_bundle.model, model)
    sidecar = {"normalisation": "mobilenet", "labels": list(LABELS), "positive_label": "severe",
               "input_size": [32, 32], "crop_fraction": 0.9, "resample": "bicubic",
               "val_auc": 0.97}
    (tmp_path / "cadr-train.json").write_text(json.dumps(sidecar), encoding="utf-8")

    result = convert_int8(request_for(tiny_bundle, tmp_path / "bundle", model=model,
                                      labels=None, normalisation=None))
    manifest = yaml.safe_load((result.bundle / "manifest.yaml").read_text(encoding="utf-8"))
    assert manifest["labels"] == list(LABELS)
    assert manifest["preprocess"]["crop_fraction"] == 0.9
    assert manifest["preprocess"]["resample"] == "bicubic"

    with pytest.raises(InputError, match="normalisation conflict"):
        convert_int8(request_for(tiny_bundle, tmp_path / "other", model=model,
                                 normalisation="unit"))
    with pytest.raises(InputError, match="crop fraction conflict"):
        convert_int8(request_for(tiny_bundle, tmp_path / "other", model=model,
                                 crop_fraction=0.8))


def test_missing_labels_rejected(tiny_bundle, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="pass --labels"):
        convert_int8(request_for(tiny_bundle, tmp_path / "bundle", labels=None))


def test_unreadable_calibration_file_named(tiny_bundle, tmp_path: Path) -> None:
    calibration = tmp_path / "calibration"
    shutil.copytree(tiny_bundle.train, calibration)
    broken = calibration / "mild" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(InputError, match="broken.jpg"):
        convert_int8(request_for(tiny_bundle, tmp_path / "bundle", calibration=calibration,
                                 calibration_count=1000))


def test_unknown_target_module_reported(tiny_bundle, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cadr_convert.targets", None)
    out = tmp_path / "bundle"
    with pytest.raises(InputError, match="target 'edgetpu' is not available"):
        convert_int8(request_for(tiny_bundle, out, targets=("cpu", "edgetpu")))
    assert not out.exists()


@pytest.mark.parametrize("normalisation", NORMALISATIONS)
def test_folding_matches_float_model(tiny_bundle, normalisation: str) -> None:
    model = build_model()
    inputs, _ = load_folder(tiny_bundle.validation)
    wrapped = wrap_with_normalisation(model, normalisation, 32, 32)

    reference = model.predict(normalise(inputs, normalisation), verbose=0).reshape(-1)
    folded = np.array([float(np.asarray(wrapped(x[None].astype(np.float32)))[0, 0])
                       for x in inputs[:20]])
    assert np.abs(folded - reference[:20]).max() < 1e-5

    flatbuffer = quantize_model(wrapped, inputs)
    check_input_identity(flatbuffer)
    int8, scale = int8_outputs(flatbuffer, inputs[:20], "test")
    assert np.abs(int8.reshape(-1) - reference[:20]).max() <= 4 * scale + 0.01


def test_target_hook_adds_files_and_sections(tiny_bundle, tmp_path: Path, monkeypatch) -> None:
    import types

    seen = {}

    def run_target(name, context):
        seen["context"] = context
        (context.bundle_dir / f"{name}.bin").write_bytes(b"accelerator model")
        return {"manifest": {"file": f"{name}.bin"}, "report": {"note": "built"}}

    checked: list[str] = []
    module = types.ModuleType("cadr_convert.targets")
    module.check_target = checked.append
    module.run_target = run_target
    monkeypatch.setitem(sys.modules, "cadr_convert.targets", module)

    result = convert_int8(request_for(tiny_bundle, tmp_path / "bundle", targets=("cpu", "edgetpu")))

    assert checked == ["edgetpu"]

    bundle = load_bundle(result.bundle, Keyring.from_directory(tiny_bundle.key_dir))
    assert bundle.manifest.accelerators == {"edgetpu": {"file": "edgetpu.bin"}}
    assert "edgetpu.bin" in bundle.manifest.files
    assert result.report["accelerators"]["edgetpu"] == {"note": "built"}
    context = seen["context"]
    assert context.validation_inputs.dtype == np.uint8
    assert context.validation_labels.shape == context.int8_probabilities.shape
    assert context.input_size == (32, 32)


def test_saved_model_and_softmax_sources(tiny_bundle, tmp_path: Path) -> None:
    import keras

    model = keras.models.load_model(tiny_bundle.model, compile=False)
    saved_model = tmp_path / "saved_model"
    model.export(str(saved_model))
    inputs = keras.Input((32, 32, 3))
    probability = model(inputs)
    softmax = keras.layers.Concatenate()([1.0 - probability, probability])
    softmax_path = tmp_path / "softmax.keras"
    keras.Model(inputs, softmax).save(softmax_path)

    for source, kind in ((saved_model, "sigmoid"), (softmax_path, "softmax")):
        out = tmp_path / f"bundle_{kind}"
        result = convert_int8(request_for(tiny_bundle, out, model=source))
        bundle = load_bundle(out, Keyring.from_directory(tiny_bundle.key_dir))
        assert bundle.manifest.model.output_kind == kind
        assert bundle.manifest.model.positive_index == 1
        assert result.validation.int8_auc >= 0.9
        assert result.validation.max_abs_difference < 0.05

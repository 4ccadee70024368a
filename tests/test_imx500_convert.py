"""cadr-convert --target imx500: real MCT quantization and real imxconv-tf in the toolchain venv.

Tests that need the toolchain (``scripts/imx500-toolchain.sh``) skip when it is absent,
except under CI=true, where its absence is a failure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_classifier import LABELS, train_model, write_image_folder

from cadr_convert.context import ConversionContext, GateLimits
from cadr_convert.conversion_errors import ConversionError, InputError
from cadr_convert.convert import ConversionRequest, convert_int8
from cadr_convert.imx500 import graph_export, toolchain
from cadr_device.bundle import load_bundle
from cadr_device.signing import Keyring

pytestmark = pytest.mark.slow


def _toolchain_or_skip() -> toolchain.Toolchain:
    try:
        return toolchain.find_toolchain()
    except InputError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the IMX500 toolchain: {e}")
        pytest.skip(f"IMX500 toolchain not installed ({e})")


@pytest.fixture(scope="module")
def imx500_bundle(tiny_bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _toolchain_or_skip()
    out = tmp_path_factory.mktemp("imx500") / "bundle"
    request = ConversionRequest(
        model=tiny_bundle.model, calibration=tiny_bundle.train,
        validation=tiny_bundle.validation, out=out, name="tiny-imx500", version="1.0.0",
        signing_key=tiny_bundle.private_key, labels=LABELS, normalisation="mobilenet",
        allow_small_calibration=True, targets=("cpu", "imx500"),
    )
    return convert_int8(request).bundle


def test_imx500_bundle_holds_packer_zip(imx500_bundle, tiny_bundle):
    bundle = load_bundle(imx500_bundle, Keyring.from_directory(tiny_bundle.key_dir))
    entry = bundle.manifest.accelerators["imx500"]

    assert entry["file"] == "imx500/packerOut.zip"
    assert entry["file"] in bundle.manifest.files
    assert entry["memory_report"] in bundle.manifest.files
    with zipfile.ZipFile(bundle.file(entry["file"])) as packer:
        names = packer.namelist()
    assert "dnnParams.xml" in names
    assert "manifest.json" in names
    assert bundle.manifest.model.file in bundle.manifest.files


def test_imx500_input_contract(imx500_bundle):
    manifest = yaml.safe_load((imx500_bundle / "manifest.yaml").read_text(encoding="utf-8"))
    contract = manifest["accelerators"]["imx500"]["input"]

    assert (contract["width"], contract["height"]) == (32, 32)
    assert contract["color_order"] == "RGB"
    assert contract["normalisation"] == "mobilenet"
    assert contract["normalisation_applied_by"] == "network"
    assert (contract["scale"], contract["zero_point"]) == (1.0, 0)
    # dnnParams.xml is the converter's own statement of the input tensor.
    params = (imx500_bundle / "imx500" / "dnnParams.xml").read_text(encoding="utf-8")
    assert 'scale="1.0"' in params
    assert 'format="unsigned"' in params
    assert manifest["accelerators"]["imx500"]["memory"]["fit_in_chip"] is True


def test_imx500_report_side_by_side(imx500_bundle):
    report = json.loads((imx500_bundle / "report.json").read_text(encoding="utf-8"))
    section = report["accelerators"]["imx500"]
    rows = section["fidelity_vs_float"]

    assert set(rows) == {"tflite_int8", "imx500_mct"}
    for figures in rows.values():
        assert 0.0 <= figures["auc"] <= 1.0
        assert figures["agreement"] >= GateLimits().min_agreement
        assert figures["auc_drop"] <= GateLimits().max_auc_drop
        assert figures["spread"] >= GateLimits().min_output_spread
    assert rows["tflite_int8"]["float_auc"] == rows["imx500_mct"]["float_auc"]
    decision = section["sensor_decision"]
    assert decision["target_sensitivity"] == 0.9
    assert decision["sensitivity"] >= 0.9
    assert 0.0 <= decision["threshold"] <= 1.0
    assert section["toolchain"]["model_compression_toolkit"].startswith("2.")
    assert section["toolchain"]["tensorflow"].startswith("2.15")


def _context_for(model, tmp_path: Path, calibration: np.ndarray) -> ConversionContext:
    validation = calibration[:4]
    probabilities = np.linspace(0.1, 0.9, len(validation))
    return ConversionContext(
        float_model=model, source_model=tmp_path / "model.keras", cpu_model=tmp_path / "m.tflite",
        calibration_inputs=calibration, validation_inputs=validation,
        validation_labels=np.array([0, 1, 0, 1]), float_probabilities=probabilities,
        int8_probabilities=probabilities, threshold=0.5, gate=GateLimits(),
        bundle_dir=tmp_path / "bundle", normalisation="none", input_size=(16, 16), seed=0,
    )


def test_imx500_rejects_unsupported_layer(tmp_path):
    import keras

    from cadr_convert.imx500.target import build_imx500

    _toolchain_or_skip()
    inputs = keras.Input((16, 16, 3), batch_size=1)
    x = keras.layers.Conv2DTranspose(4, 3, strides=2)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    calibration = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)

    with pytest.raises(ConversionError) as caught:
        build_imx500(_context_for(model, tmp_path, calibration))

    message = str(caught.value)
    assert message.startswith("IMX500 target: layer 'conv2d_transpose")
    assert "Conv2DTranspose" in message
    assert "Traceback" not in message


def test_imx500_rejects_too_large_network(tmp_path):
    import keras

    from cadr_convert.imx500.target import build_imx500

    _toolchain_or_skip()
    inputs = keras.Input((512, 512, 3), batch_size=1)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    calibration = np.random.default_rng(0).integers(0, 256, (4, 512, 512, 3), dtype=np.uint8)
    context = _context_for(model, tmp_path, calibration)
    probabilities = model.predict(calibration[:4].astype(np.float32), verbose=0).reshape(-1)
    context = dataclasses.replace(context, float_probabilities=probabilities,
                                  int8_probabilities=probabilities, input_size=(512, 512))

    with pytest.raises(ConversionError) as caught:
        build_imx500(context)

    message = str(caught.value)
    assert message.startswith("imxconv-tf rejected the model (exit code 1):")
    assert "Not enough memory, available: 8.00MB" in message
    assert message.count("Not enough memory") == 1
    assert "Traceback" not in message
    assert not (context.bundle_dir / "imx500").exists()


def test_graph_export_rejects_lambda(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))

    with pytest.raises(ConversionError, match="custom code"):
        graph_export.export_float_model(model, tmp_path)


def test_graph_export_writes_weights(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    model = keras.Model(inputs, x)

    graph_path, weights_path = graph_export.export_float_model(model, tmp_path)

    graph = json.loads(graph_path.read_text(encoding="utf-8"))
    weights = np.load(weights_path)
    assert [layer["class_name"] for layer in graph["layers"]] == ["InputLayer", "Conv2D"]
    assert sorted(weights.files) == ["conv/0", "conv/1"]
    np.testing.assert_array_equal(weights["conv/0"], model.get_layer("conv").get_weights()[0])


def test_toolchain_missing_names_script(tmp_path):
    with pytest.raises(InputError, match="scripts/imx500-toolchain.sh"):
        toolchain.find_toolchain(tmp_path / "no-venv")


def _fake_venv(root: Path, python_body: str) -> toolchain.Toolchain:
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in (("python", python_body), ("imxconv-tf", "exit 0\n")):
        script = bin_dir / name
        script.write_text("#!/bin/sh\n" + body, encoding="utf-8")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return toolchain.find_toolchain(root)


def test_driver_timeout_raises(tmp_path):
    tools = _fake_venv(tmp_path / "venv", "sleep 30\n")

    with pytest.raises(ConversionError, match="timed out after 1 s"):
        toolchain.run_driver(tools, tmp_path, timeout_s=1.0)


def test_driver_failure_includes_stderr(tmp_path):
    tools = _fake_venv(tmp_path / "venv", "echo 'numpy.core.multiarray failed to import' >&2\n"
                                          "exit 1\n")

    with pytest.raises(ConversionError) as caught:
        toolchain.run_driver(tools, tmp_path)

    assert "exit code 1" in str(caught.value)
    assert "numpy.core.multiarray failed to import" in str(caught.value)


def test_driver_model_error_is_one_message(tmp_path):
    tools = _fake_venv(tmp_path / "venv", "echo 'some TensorFlow noise' >&2\n"
                                          "echo 'cadr-imx500-driver: error: layer x is bad' >&2\n"
                                          "exit 2\n")

    with pytest.raises(ConversionError, match=r"^IMX500 target: layer x is bad$"):
        toolchain.run_driver(tools, tmp_path)


def test_converter_error_repeats_dropped():
    # imxconv-tf 3.19 printed these for a network larger than the sensor's memory.
    output = (
        "2026-12-04 20:53:37.439 ERROR: CODE: [ISM] ConvFe error (ISM) on 'quantized': Not "
        "enough memory, available: 8.00MB , required: 131.06MB \n"
        'Exception in thread "main" sdsp.app.logging.FailureInSubRunningHideErrorException: '
        "ERROR: CODE: [ISM] ConvFe error (ISM) on 'quantized': Not enough memory, available: "
        "8.00MB , required: 131.06MB \n"
    )

    assert toolchain.converter_errors(output) == [
        "CODE: [ISM] ConvFe error (ISM) on 'quantized': Not enough memory, available: 8.00MB , "
        "required: 131.06MB"
    ]


def test_converter_error_lines_parsed():
    # The line imxconv-tf 3.19 printed here for a model with Keras preprocessing layers.
    output = (
        "2026-12-04 20:20:32,432 INFO : Converting work/quantized.keras [/venv/uni/common/"
        "logger.py:179]\n"
        "2026-12-04 20:20:39,218 ERROR : CODE: [USOP] The network contains unsupported ops: "
        "keras.src.layers.preprocessing.image_preprocessing.Rescaling "
        "[/venv/lib/python3.11/site-packages/uni/common/logger.py:185]\n"
    )

    assert toolchain.converter_errors(output) == [
        "CODE: [USOP] The network contains unsupported ops: "
        "keras.src.layers.preprocessing.image_preprocessing.Rescaling"
    ]


def test_converter_rejection_raises(tmp_path):
    tools = _fake_venv(tmp_path / "venv", "exit 0\n")
    (tools.converter).write_text(
        "#!/bin/sh\necho '2026-12-04 20:20:39,218 ERROR : CODE: [USOP] unsupported ops: X "
        "[/x/logger.py:185]'\nexit 2\n", encoding="utf-8")

    with pytest.raises(ConversionError) as caught:
        toolchain.run_converter(tools, tmp_path / "q.keras", tmp_path / "out")

    assert "imxconv-tf rejected the model (exit code 2)" in str(caught.value)
    assert "CODE: [USOP] unsupported ops: X" in str(caught.value)


def test_affine_layers_rebuilt_exactly(tmp_path):
    """Rescaling and Normalization become depthwise convolutions with the same outputs."""
    import keras

    from cadr_convert.folding import wrap_with_normalisation

    tools = _toolchain_or_skip()
    source = train_model(write_image_folder(tmp_path / "train", per_label=8, seed=5),
                         tmp_path / "tiny.keras", normalisation="imagenet", epochs=1)
    model = wrap_with_normalisation(keras.models.load_model(source), "imagenet", 32, 32)
    work = tmp_path / "work"
    work.mkdir()
    graph_export.export_float_model(model, work)
    inputs = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    np.save(work / "calibration.npy", inputs)
    np.save(work / "validation.npy", inputs)

    toolchain.run_driver(tools, work)

    expected = model.predict(inputs.astype(np.float32), verbose=0)
    rebuilt = np.load(work / "float_outputs.npy")
    np.testing.assert_allclose(rebuilt, expected, atol=1e-5)
    assert (work / "quantized.keras").is_file()


def test_nested_backbone_rebuilt_exactly(tmp_path):
    """A saved model whose backbone is a nested functional model, wrapped once more."""
    import keras

    from cadr_convert.folding import wrap_with_normalisation

    tools = _toolchain_or_skip()
    backbone_input = keras.Input((32, 32, 3))
    features = keras.layers.Conv2D(4, 3, strides=2, name="backbone_conv")(backbone_input)
    features = keras.layers.GlobalAveragePooling2D(name="backbone_pool")(features)
    backbone = keras.Model(backbone_input, features, name="backbone")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Dropout(0.1)(backbone(inputs))
    source = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    source.save(tmp_path / "nested.keras")
    model = wrap_with_normalisation(keras.models.load_model(tmp_path / "nested.keras"),
                                    "unit", 32, 32)
    work = tmp_path / "work"
    work.mkdir()
    graph_export.export_float_model(model, work)
    inputs_u8 = np.random.default_rng(2).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    np.save(work / "calibration.npy", inputs_u8)
    np.save(work / "validation.npy", inputs_u8)

    toolchain.run_driver(tools, work)

    expected = model.predict(inputs_u8.astype(np.float32), verbose=0)
    np.testing.assert_allclose(np.load(work / "float_outputs.npy"), expected, atol=1e-5)

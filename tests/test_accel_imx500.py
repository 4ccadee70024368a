"""IMX500 back-end: packaging with imx500-package, the sensor's output, and the CPU fallback.

picamera2's IMX500 helper is faked (tests/fakes/fake_imx500.py) and ``imx500-package`` is
a fake script on PATH (a real subprocess); the bundle, signatures and CPU model are real.
"""

from __future__ import annotations

import numpy as np
import pytest
from accel_support import install_fake_packager, with_accelerators
from device_bundle import build_bundle
from fakes import fake_edgetpu, fake_imx500

from cadr_device.accel import BackendStatus, select_backend
from cadr_device.accel.imx500 import Imx500Classifier, framing_roi, package_network
from cadr_device.classifier import Classifier
from cadr_device.preprocess import PreprocessRule

PIXELS = np.full((32, 32, 3), 90, dtype=np.uint8)


@pytest.fixture(scope="module")
def base_bundle(tmp_path_factory):
    return build_bundle(tmp_path_factory.mktemp("imx500") / "base")


@pytest.fixture
def bundle(base_bundle, tmp_path):
    return with_accelerators(base_bundle, tmp_path / "bundle", imx500=True)


@pytest.fixture
def packager(tmp_path, monkeypatch):
    """Put a fake imx500-package on PATH; return the file its calls are logged in."""
    install_fake_packager(tmp_path / "bin")
    log = tmp_path / "packager.log"
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_PACKAGER_LOG", str(log))
    return log


@pytest.fixture(autouse=True)
def _reset_fake():
    fake_imx500.reset()
    yield
    fake_imx500.reset()


def _select(bundle, tmp_path, preference="imx500"):
    return select_backend(bundle, preference, 2, state_dir=tmp_path / "state",
                          imx500_class=fake_imx500.FakeIMX500)


def test_imx500_reads_sensor_output(bundle, tmp_path, packager):
    classifier, status = _select(bundle, tmp_path)

    assert status == BackendStatus("IMX500", None, None)
    assert isinstance(classifier, Imx500Classifier)
    prediction = classifier.classify(PIXELS, fake_imx500.frame_metadata(0.91))
    assert prediction.probability == pytest.approx(0.91)
    assert prediction.positive
    assert prediction.label == "severe"
    assert prediction.inference_ms == pytest.approx(4.2)
    assert classifier.classify(PIXELS, fake_imx500.frame_metadata(0.05)).label == "non_severe"


def test_sensor_uses_own_threshold(bundle, tmp_path, packager):
    classifier, _ = _select(bundle, tmp_path)

    between = classifier.classify(PIXELS, fake_imx500.frame_metadata(0.5))
    on_cpu = classifier.classify(PIXELS)

    assert bundle.manifest.decision.threshold < 0.5
    assert between.threshold == pytest.approx(0.6)
    assert not between.positive
    assert on_cpu.threshold == pytest.approx(bundle.manifest.decision.threshold)


def test_invalid_sensor_threshold_rejected(base_bundle, tmp_path, packager):
    broken = with_accelerators(base_bundle, tmp_path / "broken", imx500=True,
                               imx500_threshold=1.5)

    _, status = _select(broken, tmp_path)

    assert status.name == "CPU"
    assert "decision.threshold is 1.5, not a probability" in status.reason
    assert fake_imx500.settings.instances == []


def test_imx500_network_packaged_once(bundle, tmp_path, packager):
    _select(bundle, tmp_path)
    _select(bundle, tmp_path)

    calls = packager.read_text().splitlines()
    assert len(calls) == 1
    assert calls[0].startswith(f"-i {bundle.path / 'imx500' / 'packerOut.zip'} -o ")
    sensor = fake_imx500.settings.instances[-1]
    assert sensor.network_file.endswith("network.rpk")
    assert str(tmp_path / "state" / "imx500") in sensor.network_file


def test_imx500_roi_matches_framing_guide(bundle, tmp_path, packager):
    _select(bundle, tmp_path)

    sensor = fake_imx500.settings.instances[-1]
    assert sensor.roi_calls[-1] == framing_roi(bundle.manifest.preprocess).as_tuple()
    assert sensor.roi_calls[-1] != fake_imx500.FULL_SENSOR


def test_framing_roi_centred_square():
    rule = PreprocessRule(32, 32, crop_fraction=0.8)

    roi = framing_roi(rule)

    assert roi.as_tuple() == (812, 304, 2432, 2432)


def test_no_metadata_uses_cpu_model(bundle, tmp_path, packager):
    classifier, _ = _select(bundle, tmp_path)
    cpu = Classifier(bundle)

    probability, _ = classifier.probability(PIXELS)
    frame_without_output = classifier.classify(PIXELS, {"SensorTimestamp": 1})

    assert probability == pytest.approx(cpu.probability(PIXELS)[0])
    assert frame_without_output.probability == pytest.approx(probability)
    assert classifier.missing_outputs == 2


def test_softmax_column_from_manifest(bundle, tmp_path, packager):
    classifier, _ = _select(bundle, tmp_path)
    classifier.imx500.output_shapes = [(2,)]
    classifier.positive_index = 1

    prediction = classifier.classify(PIXELS, fake_imx500.frame_metadata(0.3, 0.7))

    assert prediction.probability == pytest.approx(0.7)


def test_packager_missing_keeps_cpu(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    classifier, status = _select(bundle, tmp_path)

    assert status.name == "CPU"
    assert status.reason.startswith("IMX500 not used: imx500-package not found")
    assert "sudo apt install imx500-all" in status.reason
    assert isinstance(classifier, Classifier)
    assert fake_imx500.settings.instances == []


def test_packager_failure_keeps_cpu(bundle, tmp_path, packager, monkeypatch):
    monkeypatch.setenv("FAKE_PACKAGER_FAIL", "1")

    _, status = _select(bundle, tmp_path)

    assert status.name == "CPU"
    assert "imx500-package failed (exit code 1)" in status.reason
    assert "not a valid IMX500 package" in status.reason
    assert not list((tmp_path / "state" / "imx500").glob("*/network.rpk"))


def test_camera_missing_keeps_cpu(bundle, tmp_path, packager):
    fake_imx500.settings.no_camera = True

    _, status = _select(bundle, tmp_path)

    assert status.name == "CPU"
    assert "IMX500: Requested camera dev-node not found" in status.reason


def test_detection_network_rejected(bundle, tmp_path, packager):
    fake_imx500.settings.task = "object detection"

    _, status = _select(bundle, tmp_path)

    assert status.name == "CPU"
    assert "task is 'object detection', not classification" in status.reason


def test_input_size_mismatch_rejected(base_bundle, tmp_path, packager):
    mismatched = with_accelerators(base_bundle, tmp_path / "mismatch", imx500=True,
                                   imx500_size=224)

    _, status = _select(mismatched, tmp_path)

    assert status.name == "CPU"
    assert "input 224x224 does not match the model input 32x32" in status.reason


def test_auto_without_camera_tries_edgetpu(base_bundle, tmp_path, packager):
    both = with_accelerators(base_bundle, tmp_path / "both", imx500=True, edgetpu=True)
    fake_imx500.settings.no_camera = True

    _, status = select_backend(both, "auto", 2, state_dir=tmp_path / "state",
                               runtime=fake_edgetpu.fake_runtime("missing_library"),
                               imx500_class=fake_imx500.FakeIMX500)

    assert status.name == "CPU"
    assert status.reason.startswith("IMX500 not used: ")
    assert "; Edge TPU not used: libedgetpu.so.1 is not installed" in status.reason


def test_camera_num_from_sensor(bundle, tmp_path, packager):
    fake_imx500.settings.camera_num = 1

    classifier, _ = _select(bundle, tmp_path)

    assert classifier.camera_num == 1


def test_package_network_cache_by_hash(bundle, tmp_path, packager):
    packer = bundle.file("imx500/packerOut.zip")

    first = package_network(packer, tmp_path / "cache")
    second = package_network(packer, tmp_path / "cache")

    assert first == second
    assert first.read_bytes().startswith(b"placeholder network.rpk")
    assert len(packager.read_text().splitlines()) == 1


def test_unwritable_cache_falls_back_to_cpu(bundle, tmp_path, packager):
    state_file = tmp_path / "state"
    state_file.write_text("a file where the cache folder should be")

    classifier, status = _select(bundle, tmp_path)

    assert status.name == "CPU"
    assert "cannot be packaged into" in status.reason
    assert isinstance(classifier, Classifier)

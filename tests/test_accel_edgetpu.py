"""Edge TPU back-end: every failure falls back to the CPU model with the exact reason.

The Edge TPU is faked (tests/fakes/fake_edgetpu.py); the bundle, signatures, LiteRT
interpreter and self-test are real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from accel_support import with_accelerators
from device_bundle import build_bundle
from fakes import fake_edgetpu

from cadr_device.accel import BackendStatus, select_backend
from cadr_device.accel.edgetpu import (
    MARKER_NAME,
    DeviceRoots,
    KnownBadPair,
    diagnose,
    read_libedgetpu_version,
)
from cadr_device.classifier import Classifier

DPKG_STATUS = """\
Package: libedgetpu1-std
Status: install ok installed
Architecture: arm64
Version: 16.0

Package: python3-picamera2
Status: install ok installed
Version: 0.3.25-1
"""


@pytest.fixture(scope="module")
def base_bundle(tmp_path_factory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("accel") / "base")


@pytest.fixture
def bundle(base_bundle, tmp_path):
    return with_accelerators(base_bundle, tmp_path / "bundle", edgetpu=True)


@pytest.fixture
def roots(tmp_path) -> DeviceRoots:
    """An empty device tree: no Edge TPU attached."""
    (tmp_path / "dev").mkdir()
    (tmp_path / "sys_usb").mkdir()
    return DeviceRoots(dev=tmp_path / "dev", sys_usb=tmp_path / "sys_usb",
                       dpkg_status=tmp_path / "dpkg_status")


def _select(bundle, mode: str, tmp_path: Path, roots: DeviceRoots, **kwargs):
    return select_backend(bundle, "edgetpu", 2, runtime=fake_edgetpu.fake_runtime(mode),
                          state_dir=tmp_path / "state", device_roots=roots, **kwargs)


def _add_usb_accelerator(roots: DeviceRoots, vendor: str = "18d1", product: str = "9302") -> Path:
    device = roots.sys_usb / "2-1"
    device.mkdir()
    for name, value in (("idVendor", vendor), ("idProduct", product), ("busnum", "2"),
                        ("devnum", "3")):
        (device / name).write_text(value + "\n")
    node = roots.dev / "bus" / "usb" / "002" / "003"
    node.parent.mkdir(parents=True)
    node.write_bytes(b"")
    return node


def test_edgetpu_works_with_delegate(bundle, tmp_path, roots):
    classifier, status = _select(bundle, "works", tmp_path, roots)

    assert status == BackendStatus("Edge TPU", None, "libedgetpu.so.1")
    assert classifier.runtime.module.load_calls == [("libedgetpu.so.1", {})]
    cpu = Classifier(bundle)
    pixels = np.full((32, 32, 3), 128, dtype=np.uint8)
    expected = cpu.classify(pixels).probability
    assert classifier.classify(pixels).probability == pytest.approx(expected)
    assert not (tmp_path / "state" / MARKER_NAME).exists()


def test_missing_library_falls_back(bundle, tmp_path, roots):
    classifier, status = _select(bundle, "missing_library", tmp_path, roots)

    assert status.name == "CPU"
    assert status.delegate is None
    assert status.reason.startswith("Edge TPU not used: libedgetpu.so.1 is not installed")
    assert "libedgetpu1-std" in status.reason
    assert isinstance(classifier, Classifier)
    assert classifier.classify(np.zeros((32, 32, 3), np.uint8)).label in ("severe", "non_severe")


def test_no_device_falls_back(bundle, tmp_path, roots):
    _, status = _select(bundle, "no_device", tmp_path, roots)

    assert status.name == "CPU"
    assert "no Edge TPU found" in status.reason
    assert "1a6e:089a or 18d1:9302" in status.reason


def test_usb_permission_denied_falls_back(bundle, tmp_path, roots):
    node = _add_usb_accelerator(roots)
    denying = DeviceRoots(roots.dev, roots.sys_usb, roots.dpkg_status,
                          access=lambda path, mode: False)

    _, status = _select(bundle, "no_device", tmp_path, denying)

    assert status.name == "CPU"
    assert f"permission denied on {node}" in status.reason
    assert "'plugdev' group" in status.reason


def test_pcie_permission_denied_falls_back(bundle, tmp_path, roots):
    (roots.dev / "apex_0").write_bytes(b"")
    denying = DeviceRoots(roots.dev, roots.sys_usb, roots.dpkg_status,
                          access=lambda path, mode: False)

    _, status = _select(bundle, "no_device", tmp_path, denying)

    assert "permission denied on" in status.reason
    assert "apex_0" in status.reason
    assert "'apex' group" in status.reason


def test_device_present_but_unopened(bundle, tmp_path, roots):
    _add_usb_accelerator(roots)

    _, status = _select(bundle, "no_device", tmp_path, roots)

    assert "libedgetpu could not open the Edge TPU (Failed to load delegate" in status.reason


def test_runtime_too_old_falls_back(bundle, tmp_path, roots):
    _, status = _select(bundle, "runtime_too_old", tmp_path, roots)

    assert status.name == "CPU"
    assert "runtime is version 13 but the model needs version 14" in status.reason
    assert "--min_runtime_version 13" in status.reason


def test_allocate_failure_falls_back(bundle, tmp_path, roots):
    _, status = _select(bundle, "allocate_failure", tmp_path, roots)

    assert status.name == "CPU"
    assert "could not prepare the Edge TPU model: Encountered unresolved custom op" in status.reason
    assert not (tmp_path / "state" / MARKER_NAME).exists()


def test_wrong_output_fails_selftest(bundle, tmp_path, roots):
    _, status = _select(bundle, "wrong_output", tmp_path, roots)

    assert status.name == "CPU"
    assert "Edge TPU self-test failed" in status.reason


def test_known_bad_pair_skips_delegate(bundle, tmp_path, roots):
    roots.dpkg_status.write_text(DPKG_STATUS)
    pair = KnownBadPair("ai-edge-litert", "2.3", "16.0", "the delegate ABI does not match")
    runtime = fake_edgetpu.fake_runtime("works")

    classifier, status = select_backend(bundle, "edgetpu", 2, runtime=runtime,
                                        state_dir=tmp_path / "state", device_roots=roots,
                                        known_bad=(pair,))

    assert status.name == "CPU"
    assert "ai-edge-litert 2.3.0 with libedgetpu 16.0 is a known-bad pair" in status.reason
    assert runtime.module.load_calls == []
    assert isinstance(classifier, Classifier)


def test_hang_falls_back_at_deadline(bundle, tmp_path, roots):
    runtime = fake_edgetpu.fake_runtime("hang")
    try:
        _, status = select_backend(bundle, "edgetpu", 2, runtime=runtime,
                                   state_dir=tmp_path / "state", device_roots=roots,
                                   deadline_s=0.2)
    finally:
        runtime.module.release.set()

    assert status.name == "CPU"
    assert "did not load within 0.2 s" in status.reason
    marker = json.loads((tmp_path / "state" / MARKER_NAME).read_text())
    assert marker["state"] == "timed out"

    _, again = _select(bundle, "works", tmp_path, roots)
    assert again.name == "CPU"
    assert "earlier attempt to load the Edge TPU delegate for this model timed out" in again.reason


CRASHING_CHILD = textwrap.dedent("""\
    import sys
    from pathlib import Path
    sys.path[:0] = [{tests!r}]
    from fakes import fake_edgetpu
    from cadr_device.accel import select_backend
    from cadr_device.accel.edgetpu import DeviceRoots
    from cadr_device.bundle import load_bundle
    from cadr_device.signing import Keyring, default_key_dir

    bundle = load_bundle(Path({bundle!r}), Keyring.from_directory(default_key_dir()))
    select_backend(bundle, "edgetpu", 2, runtime=fake_edgetpu.fake_runtime("crash"),
                   state_dir=Path({state!r}), device_roots=DeviceRoots(Path({dev!r})))
    print("survived")
""")


def test_crash_is_not_repeated(bundle, tmp_path, roots):
    state = tmp_path / "state"
    child = CRASHING_CHILD.format(tests=str(Path(__file__).parent), bundle=str(bundle.path),
                                  state=str(state), dev=str(roots.dev))

    crashed = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                             timeout=120, check=False)

    assert crashed.returncode == -11, crashed.stderr
    assert "survived" not in crashed.stdout
    assert json.loads((state / MARKER_NAME).read_text())["state"] == "crashed"

    classifier, status = _select(bundle, "works", tmp_path, roots)
    assert status.name == "CPU"
    assert "earlier attempt to load the Edge TPU delegate for this model crashed" in status.reason
    assert str(state / MARKER_NAME) in status.reason
    assert classifier.runtime.module.load_calls == []


def test_marker_of_other_model_is_ignored(bundle, tmp_path, roots):
    state = tmp_path / "state"
    state.mkdir()
    (state / MARKER_NAME).write_text(json.dumps({"model_sha256": "0" * 64,
                                                 "runtime": "ai-edge-litert 2.3.0",
                                                 "state": "crashed"}))

    _, status = _select(bundle, "works", tmp_path, roots)

    assert status.name == "Edge TPU"


def test_bundle_without_edgetpu_file(base_bundle, tmp_path, roots):
    plain = with_accelerators(base_bundle, tmp_path / "plain")

    _, requested = _select(plain, "works", tmp_path, roots)
    _, automatic = select_backend(plain, "auto", 2, runtime=fake_edgetpu.fake_runtime("works"),
                                  state_dir=tmp_path / "state", device_roots=roots)

    assert requested.name == "CPU"
    assert "bundle has no Edge TPU model" in requested.reason
    assert automatic == BackendStatus("CPU", None, None)


def test_auto_prefers_edgetpu(bundle, tmp_path, roots):
    _, status = select_backend(bundle, "auto", 2, runtime=fake_edgetpu.fake_runtime("works"),
                               state_dir=tmp_path / "state", device_roots=roots)

    assert status.name == "Edge TPU"


def test_cpu_preference_skips_delegate(bundle, tmp_path, roots):
    runtime = fake_edgetpu.fake_runtime("works")

    _, status = select_backend(bundle, "cpu", 2, runtime=runtime, state_dir=tmp_path / "state")

    assert status == BackendStatus("CPU", None, None)
    assert runtime.module.load_calls == []


def test_unknown_preference_raises(bundle):
    with pytest.raises(ValueError, match="unknown back-end 'gpu'"):
        select_backend(bundle, "gpu")


# ai-edge-litert 2.3's Delegate.__del__ fails on a delegate whose library never loaded.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_real_runtime_without_library(bundle, tmp_path, roots):
    """The installed ai-edge-litert, with no libedgetpu on this machine."""
    if any(Path(p, "libedgetpu.so.1").exists()
           for p in ("/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu")):
        pytest.skip("libedgetpu.so.1 is installed here")

    _, status = select_backend(bundle, "edgetpu", 2, state_dir=tmp_path / "state",
                               device_roots=roots)

    assert status.name == "CPU"
    assert "libedgetpu.so.1 is not installed" in status.reason


def test_diagnose_unknown_error():
    assert diagnose(RuntimeError("boom\nmore")) == (
        "the interpreter could not prepare the Edge TPU model: boom")


def test_libedgetpu_version_from_dpkg(tmp_path):
    status_file = tmp_path / "status"
    status_file.write_text(DPKG_STATUS)

    assert read_libedgetpu_version(status_file) == "16.0"
    assert read_libedgetpu_version(tmp_path / "missing") is None


def test_state_dir_unwritable_still_falls_back(bundle, tmp_path, roots):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the state folder should be")

    _, status = select_backend(bundle, "edgetpu", 2,
                               runtime=fake_edgetpu.fake_runtime("no_device"),
                               state_dir=blocked / "state", device_roots=roots)

    assert status.name == "CPU"
    assert "no Edge TPU found" in status.reason
    assert os.path.isfile(blocked)

"""The camera app end to end: replay with rendered overlays, fake camera faults, failure states.

Every test uses the real signed ``tiny_bundle`` and the real LiteRT interpreter; only the
camera, GPIO and preview are fakes (tests/fakes).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from accel_support import install_fake_packager, with_accelerators
from camera_support import (
    FAKES,
    GUIDE_RGB,
    base_sections,
    copy_bundle,
    fake_module,
    record_files,
    run_options,
    write_config,
    write_scenes,
)
from device_bundle import build_bundle
from fakes import fake_imx500
from PIL import Image

from cadr_device import bundle_location
from cadr_device.app import CameraApp, run_camera
from cadr_device.camera import CameraError
from cadr_device.config import ConfigError, load_config
from cadr_device.notify import Notifier
from cadr_device.preprocess import PreprocessRule
from cadr_device.status import Condition

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def picamera2() -> Iterator[Any]:
    yield from fake_module("picamera2")


def sections(tmp_path: Path, tiny_bundle: Any, **extra: dict[str, Any]) -> dict[str, Any]:
    result = base_sections(tmp_path, tiny_bundle.bundle, tiny_bundle.key_dir)
    for name, values in extra.items():
        result.setdefault(name, {}).update(values)
    return result


def replay_sections(tmp_path: Path, tiny_bundle: Any, count: int = 2,
                    **extra: dict[str, Any]) -> dict[str, Any]:
    scenes = write_scenes(tmp_path / "scenes", count=count)
    result = sections(tmp_path, tiny_bundle, **extra)
    result.setdefault("camera", {})["source"] = "replay"
    result.setdefault("replay", {})["path"] = str(scenes)
    result.setdefault("viewfinder", {})["render_dir"] = str(tmp_path / "png")
    return result


def run_app(tmp_path: Path, config_sections: dict[str, Any], max_frames: int | None = None,
            triggers: list[str] | None = None) -> CameraApp:
    config = load_config(write_config(tmp_path / "device.yaml", config_sections))
    app = CameraApp(config, Notifier(None), max_frames=max_frames)
    for source in triggers or []:
        app.triggers.put(source)
    assert app.run() == 0
    return app


def has_colour(image: np.ndarray, rgb: tuple[int, int, int], minimum: int = 1) -> bool:
    return int(np.all(image[..., :3] == rgb, axis=-1).sum()) >= minimum


def shows_problem_box(pixels: np.ndarray) -> bool:
    """Return whether the failure box (dark red, nearly opaque) covers a large area."""
    red, green, blue = (pixels[..., c].astype(int) for c in range(3))
    dark_red = (red >= 100) & (red <= 135) & (green <= 30) & (blue <= 30)
    return int(dark_red.sum()) >= 2000


# Replay with rendered overlays -------------------------------------------------------

def test_replay_renders_overlay_pngs(tmp_path: Path, tiny_bundle: Any) -> None:
    config = replay_sections(tmp_path, tiny_bundle, count=2, replay={"frames_per_image": 2})

    run_app(tmp_path, config)

    pngs = sorted((tmp_path / "png").glob("*.png"))
    names = [p.name for p in pngs]
    assert names == ["000001-scene_00.png", "000002-scene_00-result.png",
                     "000003-scene_01.png", "000004-scene_01-result.png"]
    records = record_files(tmp_path / "records")
    assert len(records) == 2
    for record_path in records:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        assert record["status"] == "ok"
        assert record["source"].startswith("scene_0")
        assert record["backend"] == "cpu"


def test_rendered_guide_is_model_crop(tmp_path: Path, tiny_bundle: Any) -> None:
    config = replay_sections(tmp_path, tiny_bundle, count=1)
    manifest = yaml.safe_load((tiny_bundle.bundle / "manifest.yaml").read_text())
    rule = PreprocessRule(manifest["model"]["input"]["width"],
                          manifest["model"]["input"]["height"],
                          crop_fraction=manifest["preprocess"]["crop_fraction"])

    run_app(tmp_path, config)

    first = sorted((tmp_path / "png").glob("*.png"))[0]
    with Image.open(first) as image:
        pixels = np.asarray(image.convert("RGB"))
    # The 640x480 scene fits the 1280x720 preview as 960x720 (scale 1.5).
    assert pixels.shape == (720, 960, 3)
    box = rule.crop_box(640, 480).scaled(1.5, 1.5)
    middle_x = (box.left + box.right) // 2
    middle_y = (box.top + box.bottom) // 2
    assert tuple(pixels[middle_y, box.left]) == GUIDE_RGB
    assert tuple(pixels[middle_y, box.right - 1]) == GUIDE_RGB
    assert tuple(pixels[box.top, middle_x]) == GUIDE_RGB
    assert tuple(pixels[box.bottom - 1, middle_x]) == GUIDE_RGB
    assert tuple(pixels[middle_y, box.left - 8]) != GUIDE_RGB
    assert tuple(pixels[middle_y, box.left + 8]) != GUIDE_RGB


def test_run_camera_with_flags(tmp_path: Path, tiny_bundle: Any) -> None:
    scenes = write_scenes(tmp_path / "scenes", count=1)
    config = write_config(tmp_path / "device.yaml",
                          sections(tmp_path, tiny_bundle, display={"locale": "ja"}))

    code = run_camera(run_options(config, replay=scenes, overlay_dir=tmp_path / "png"))

    assert code == 0
    assert len(list((tmp_path / "png").glob("*-result.png"))) == 1
    assert len(record_files(tmp_path / "records")) == 1


def test_live_mode_shows_bar(tmp_path: Path, tiny_bundle: Any) -> None:
    config = replay_sections(tmp_path, tiny_bundle, count=1,
                             live={"enabled": True, "max_rate_hz": 15.0, "window": 3},
                             replay={"frames_per_image": 4})

    app = run_app(tmp_path, config)

    assert app.stats.inference_ms is not None
    before_capture = sorted((tmp_path / "png").glob("*.png"))[2]
    with Image.open(before_capture) as image:
        pixels = np.asarray(image.convert("RGB"))
    bar_colours = [(178, 0, 0), (0, 102, 51)]
    assert any(has_colour(pixels, colour, 50) for colour in bar_colours)


# Failure states ----------------------------------------------------------------------

def test_selftest_mismatch_refuses_screening(tmp_path: Path, tiny_bundle: Any,
                                             caplog: pytest.LogCaptureFixture) -> None:
    from cadr_convert.signing import load_private_key, sign_bundle

    bundle = copy_bundle(tiny_bundle.bundle, tmp_path / "bundle")
    manifest_path = bundle / "manifest.yaml"
    manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    case = manifest["selftest"]["cases"][0]
    case["probability"] = 1.0 if case["probability"] < 0.5 else 0.0
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    sign_bundle(bundle, load_private_key(tiny_bundle.private_key))
    config = replay_sections(tmp_path, tiny_bundle, count=1,
                             model={"bundle": str(bundle)})

    app = run_app(tmp_path, config)

    assert app.status.has(Condition.SELFTEST_FAILED)
    assert app.screening is None
    assert record_files(tmp_path / "records") == []
    assert "self-test probability" in caplog.text
    assert "rejected: self-test-failed" in caplog.text
    for png in (tmp_path / "png").glob("*.png"):
        with Image.open(png) as image:
            assert shows_problem_box(np.asarray(image.convert("RGB"))), png.name


@pytest.mark.parametrize("source", ["installed", "repository", "environment", "flag"])
def test_run_without_configured_bundle_uses_lookup(tmp_path: Path, tiny_bundle: Any,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture,
                                                   source: str) -> None:
    bundle = copy_bundle(tiny_bundle.bundle, tmp_path / source)
    absent = tmp_path / "absent"
    monkeypatch.setattr(bundle_location, "SYSTEM_BUNDLE",
                        bundle if source == "installed" else absent)
    monkeypatch.setattr(bundle_location, "REPOSITORY_BUNDLE",
                        bundle if source == "repository" else absent)
    monkeypatch.setattr(bundle_location, "WORKING_DIR_BUNDLE", absent)
    monkeypatch.delenv(bundle_location.BUNDLE_ENV, raising=False)
    if source == "environment":
        monkeypatch.setenv(bundle_location.BUNDLE_ENV, str(bundle))
    config_sections = replay_sections(tmp_path, tiny_bundle, count=1)
    del config_sections["model"]["bundle"]
    config = write_config(tmp_path / "device.yaml", config_sections)
    flag = bundle if source == "flag" else None

    with caplog.at_level(logging.INFO, logger="cadr_device.bundle_location"):
        assert run_camera(run_options(config, bundle=flag)) == 0

    records = [json.loads(p.read_text()) for p in record_files(tmp_path / "records")]
    assert [r["status"] for r in records] == ["ok"]
    assert f"Using bundle {bundle} (from " in caplog.text


def test_environment_bundle_overrides_configured(tmp_path: Path, tiny_bundle: Any,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    from_env = copy_bundle(tiny_bundle.bundle, tmp_path / "from-env")
    monkeypatch.setenv(bundle_location.BUNDLE_ENV, str(from_env))
    config = write_config(tmp_path / "device.yaml", replay_sections(
        tmp_path, tiny_bundle, count=1, model={"bundle": str(tmp_path / "absent")}))

    with caplog.at_level(logging.INFO, logger="cadr_device.bundle_location"):
        assert run_camera(run_options(config)) == 0

    assert f"Using bundle {from_env} (from $CADR_BUNDLE)" in caplog.text
    assert len(record_files(tmp_path / "records")) == 1


def test_missing_bundle_shows_no_model(tmp_path: Path, tiny_bundle: Any) -> None:
    config = replay_sections(tmp_path, tiny_bundle, count=1,
                             model={"bundle": str(tmp_path / "absent")})

    app = run_app(tmp_path, config)

    assert app.status.has(Condition.NO_MODEL)
    assert record_files(tmp_path / "records") == []
    first = sorted((tmp_path / "png").glob("*.png"))[0]
    with Image.open(first) as image:
        assert shows_problem_box(np.asarray(image.convert("RGB")))


def test_disk_full_rejects_capture(tmp_path: Path, tiny_bundle: Any,
                                   caplog: pytest.LogCaptureFixture) -> None:
    # More free space than any test machine has: the real statvfs check fails.
    config = replay_sections(tmp_path, tiny_bundle, count=1,
                             records={"min_free_mb": 1_000_000})

    app = run_app(tmp_path, config)

    assert app.status.has(Condition.DISK_FULL)
    assert record_files(tmp_path / "records") == []
    assert "disk is full" in caplog.text
    capture_frame = sorted((tmp_path / "png").glob("*.png"))[-1]
    with Image.open(capture_frame) as image:
        assert shows_problem_box(np.asarray(image.convert("RGB")))


def test_inference_error_shown_and_run_continues(tmp_path: Path, tiny_bundle: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from cadr_device.classifier import Classifier

    def broken(self: Any, model_input: Any) -> Any:
        raise RuntimeError("interpreter invoke failed")

    monkeypatch.setattr(Classifier, "classify", broken)
    config = replay_sections(tmp_path, tiny_bundle, count=2)

    app = run_app(tmp_path, config)

    assert app.status.has(Condition.INFERENCE_FAILING)
    records = [json.loads(p.read_text()) for p in record_files(tmp_path / "records")]
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert all("interpreter invoke failed" in r["error"] for r in records)
    assert len(list((tmp_path / "png").glob("*-result.png"))) == 2


def test_unreadable_replay_file_skipped(tmp_path: Path, tiny_bundle: Any) -> None:
    config = replay_sections(tmp_path, tiny_bundle, count=1)
    (tmp_path / "scenes" / "broken.jpg").write_bytes(b"not an image")

    app = run_app(tmp_path, config)

    assert not app.status.has(Condition.IMAGE_UNREADABLE)
    first_frame = sorted((tmp_path / "png").glob("*.png"))[0]
    with Image.open(first_frame) as image:
        assert shows_problem_box(np.asarray(image.convert("RGB")))
    records = [json.loads(p.read_text()) for p in record_files(tmp_path / "records")]
    assert sorted((r["source"], r["status"]) for r in records) == [
        ("broken.jpg", "failed"), ("scene_00.jpg", "ok")]


def test_invalid_config_stops_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cadr_device.cli import main

    config = write_config(tmp_path / "device.yaml", {"live": {"max_rate_hz": "fast"}})

    code = main(["run", "--config", str(config)])

    assert code == ConfigError.exit_code
    error = capsys.readouterr().err
    assert "'live.max_rate_hz'" in error
    assert "a number from 0.1 to 30" in error


# Fake Raspberry Pi camera ------------------------------------------------------------

def camera_sections(tmp_path: Path, tiny_bundle: Any, **extra: dict[str, Any]) -> dict[str, Any]:
    result = sections(tmp_path, tiny_bundle, **extra)
    camera = result.setdefault("camera", {})
    camera.setdefault("preview_size", [640, 480])
    camera.setdefault("frame_rate_hz", 60.0)
    result.setdefault("viewfinder", {})["render_dir"] = str(tmp_path / "png")
    return result


def test_camera_capture_recorded(tmp_path: Path, tiny_bundle: Any, picamera2: Any) -> None:
    config = camera_sections(tmp_path, tiny_bundle)

    app = run_app(tmp_path, config, max_frames=3, triggers=["button"])

    paths = record_files(tmp_path / "records")
    records = [json.loads(p.read_text()) for p in paths]
    assert len(records) == 1
    assert records[0]["status"] == "ok"
    assert records[0]["fallback_note"] is None
    assert not app.overlay_failed
    assert sorted(records[0]["files"]) == ["annotated.jpg", "model_input.png", "still.jpg"]
    png = paths[0].with_name("model_input.png").read_bytes()
    assert records[0]["model_input"]["sha256"] == hashlib.sha256(png).hexdigest()
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert image.size == (records[0]["model_input"]["width"],
                              records[0]["model_input"]["height"])
    preview = picamera2.settings.instances[-1]
    assert preview.closed


@pytest.fixture(scope="module")
def demonstration_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle signed with the demonstration key, as the IMX500 bundles are."""
    return build_bundle(tmp_path_factory.mktemp("demonstration") / "bundle")


@pytest.fixture
def imx500_camera(tmp_path: Path, tiny_bundle: Any, demonstration_bundle: Path,
                  picamera2: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Camera settings for a bundle with an IMX500 network, the fake packager and sensor."""
    bundle = with_accelerators(demonstration_bundle, tmp_path / "imx500-bundle", imx500=True,
                               imx500_threshold=0.6)
    install_fake_packager(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PACKAGER_LOG", str(tmp_path / "packager.log"))
    monkeypatch.setenv("CADR_STATE_DIR", str(tmp_path / "accel"))
    fake_imx500.reset()
    fake_imx500.settings.camera_num = 1
    # The bundle is signed with the demonstration key, so the shipped keys verify it.
    yield camera_sections(tmp_path, tiny_bundle, model={
        "bundle": str(bundle.path), "keys": str(tmp_path / "no-keys"), "backend": "imx500"})
    fake_imx500.reset()


def test_imx500_sensor_result_recorded(tmp_path: Path, picamera2: Any,
                                       imx500_camera: dict[str, Any]) -> None:
    picamera2.settings.sensor_metadata = fake_imx500.frame_metadata(0.83)

    app = run_app(tmp_path, imx500_camera, max_frames=3, triggers=["button"])

    assert app.model is not None
    assert app.model.backend_name == "IMX500"
    assert picamera2.settings.instances[-1].camera_num == 1
    records = [json.loads(p.read_text()) for p in record_files(tmp_path / "records")]
    assert len(records) == 1
    record = records[0]
    assert record["status"] == "ok"
    assert record["backend"] == "imx500"
    assert record["probability"] == pytest.approx(0.83, abs=1e-6)
    assert record["threshold"] == pytest.approx(0.6)
    assert record["positive"] is True
    assert record["fallback_note"] is None
    assert record["model_input"]["file"] == "model_input.png"


def test_imx500_without_output_records_cpu(tmp_path: Path, picamera2: Any,
                                           imx500_camera: dict[str, Any]) -> None:
    picamera2.settings.sensor_metadata = {}

    run_app(tmp_path, imx500_camera, max_frames=3, triggers=["button"])

    records = [json.loads(p.read_text()) for p in record_files(tmp_path / "records")]
    assert len(records) == 1
    record = records[0]
    assert record["status"] == "ok"
    assert record["backend"] == "cpu"
    assert "IMX500 gave no result for this capture" in record["fallback_note"]


# Call 1 is the initial overlay set before picam2.start(); call 2 is the frame loop's first.
@pytest.mark.parametrize("fail_on_call", [1, 2], ids=["before-start", "after-start"])
def test_overlay_failure_draws_into_frames(tmp_path: Path, tiny_bundle: Any, picamera2: Any,
                                           caplog: pytest.LogCaptureFixture,
                                           fail_on_call: int) -> None:
    picamera2.settings.overlay_fail_on_call = fail_on_call
    config = camera_sections(tmp_path, tiny_bundle)
    displayed: list[np.ndarray] = []
    original = picamera2.DrmPreview.render_request

    def keep(self: Any, request: Any) -> None:
        original(self, request)
        displayed.append(self.displayed)

    picamera2.DrmPreview.render_request = keep
    try:
        app = run_app(tmp_path, config, max_frames=6, triggers=["button"])
    finally:
        picamera2.DrmPreview.render_request = original

    assert app.overlay_failed
    warnings = [r for r in caplog.records if "Preview overlay failed" in r.getMessage()]
    assert len(warnings) == 1
    assert app.frame_number == 6
    assert has_colour(displayed[-1], GUIDE_RGB, 100)
    records = [json.loads(p.read_text()) for p in record_files(tmp_path / "records")]
    assert len(records) == 1
    assert records[0]["status"] == "ok"


def test_still_timeout_records_fallback(tmp_path: Path, tiny_bundle: Any,
                                        picamera2: Any) -> None:
    picamera2.settings.still_hangs = True
    config = camera_sections(tmp_path, tiny_bundle,
                             camera={"still_size": [2304, 1296], "still_timeout_s": 0.2})

    app = run_app(tmp_path, config, max_frames=3, triggers=["button"])

    records = [json.loads(p.read_text()) for p in record_files(tmp_path / "records")]
    assert len(records) == 1
    assert records[0]["status"] == "ok"
    assert "still capture timed out after 0.2 s" in records[0]["fallback_note"]
    assert app.shown is not None
    assert app.shown.still_fallback
    stills = list((tmp_path / "records").rglob("still.jpg"))
    with Image.open(stills[0]) as still:
        assert still.size == (640, 480)


def test_frame_errors_recover(tmp_path: Path, tiny_bundle: Any, picamera2: Any,
                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    config = load_config(write_config(tmp_path / "device.yaml",
                                      camera_sections(tmp_path, tiny_bundle)))
    app = CameraApp(config, Notifier(None), max_frames=3)
    original_start = app._start_camera

    def start_then_fail() -> None:
        original_start()
        picamera2.settings.frame_errors = 2

    app._start_camera = start_then_fail  # type: ignore[method-assign]

    assert app.run() == 0
    assert app.frame_number == 3
    assert not app.status.has(Condition.NO_CAMERA)
    assert "Camera frames resumed after 2 failures" in caplog.text


def test_lasting_frame_errors_stop_app(tmp_path: Path, tiny_bundle: Any,
                                       picamera2: Any) -> None:
    config = load_config(write_config(tmp_path / "device.yaml",
                                      camera_sections(tmp_path, tiny_bundle)))
    app = CameraApp(config, Notifier(None), max_frames=100)
    original_start = app._start_camera

    def start_then_fail() -> None:
        original_start()
        picamera2.settings.frame_errors = 1000

    app._start_camera = start_then_fail  # type: ignore[method-assign]

    with pytest.raises(CameraError, match="30 viewfinder frames in a row failed"):
        app.run()
    assert app.status.has(Condition.NO_CAMERA)
    assert picamera2.settings.instances[-1].closed


def test_no_camera_stops_with_message(tmp_path: Path, tiny_bundle: Any, picamera2: Any) -> None:
    picamera2.settings.no_camera = True
    config = write_config(tmp_path / "device.yaml", camera_sections(tmp_path, tiny_bundle))

    with pytest.raises(CameraError, match="no camera 0 could be opened"):
        run_camera(run_options(config))

    frames = list((tmp_path / "png").glob("*.png"))
    assert len(frames) == 1
    with Image.open(frames[0]) as image:
        assert shows_problem_box(np.asarray(image.convert("RGB")))


def test_ready_and_watchdog_notified(tmp_path: Path, tiny_bundle: Any, picamera2: Any,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "2")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    config = write_config(tmp_path / "device.yaml", camera_sections(tmp_path, tiny_bundle))

    assert run_camera(run_options(config, max_frames=3)) == 0

    messages = []
    listener.settimeout(0.5)
    try:
        while True:
            messages.append(listener.recv(4096).decode())
    except TimeoutError:
        pass
    listener.close()
    assert messages[0].startswith("READY=1\nSTATUS=ready")
    assert messages.count("WATCHDOG=1") == 3
    assert messages[-1] == "STOPPING=1"


def test_no_ready_without_model(tmp_path: Path, tiny_bundle: Any, picamera2: Any,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    config = write_config(tmp_path / "device.yaml", camera_sections(
        tmp_path, tiny_bundle, model={"bundle": str(tmp_path / "absent")}))

    assert run_camera(run_options(config, max_frames=2)) == 0

    listener.settimeout(0.5)
    messages = []
    try:
        while True:
            messages.append(listener.recv(4096).decode())
    except TimeoutError:
        pass
    listener.close()
    assert not any("READY=1" in message for message in messages)
    assert messages[0].startswith("STATUS=not ready: no-model:")


# cadr-device capture -----------------------------------------------------------------

def test_capture_command_signals_app(tmp_path: Path, tiny_bundle: Any) -> None:
    config_sections = replay_sections(tmp_path, tiny_bundle, count=1,
                                      replay={"loop": True, "auto_capture": False},
                                      camera={"frame_rate_hz": 20.0})
    config = write_config(tmp_path / "device.yaml", config_sections)
    command = [sys.executable, "-m", "cadr_device.cli"]
    app = subprocess.Popen([*command, "run", "--config", str(config)],
                           stderr=subprocess.PIPE, text=True)
    try:
        pid_file = tmp_path / "run" / "cadr-device.pid"
        wait_until(pid_file.exists, "the app's pid file")

        sent = subprocess.run([*command, "capture", "--config", str(config)],
                              capture_output=True, text=True, timeout=60, check=False)

        assert sent.returncode == 0, sent.stderr
        wait_until(lambda: bool(record_files(tmp_path / "records")), "a record")
    finally:
        app.send_signal(signal.SIGTERM)
        _, stderr = app.communicate(timeout=60)

    assert app.returncode == 0, stderr
    assert "triggered by signal" in stderr
    assert not (tmp_path / "run" / "cadr-device.pid").exists()



def test_second_app_same_runtime_dir_exits(tmp_path: Path, tiny_bundle: Any) -> None:
    config_sections = replay_sections(tmp_path, tiny_bundle, count=1,
                                      replay={"loop": True, "auto_capture": False},
                                      camera={"frame_rate_hz": 20.0})
    config = write_config(tmp_path / "device.yaml", config_sections)
    command = [sys.executable, "-m", "cadr_device.cli"]
    first = subprocess.Popen([*command, "run", "--config", str(config)],
                             stderr=subprocess.PIPE, text=True)
    pid_file = tmp_path / "run" / "cadr-device.pid"
    try:
        wait_until(pid_file.exists, "the first app's pid file")

        second = subprocess.run([*command, "run", "--config", str(config)],
                                capture_output=True, text=True, timeout=120, check=False)

        assert second.returncode == 10, second.stderr
        assert "another 'cadr-device run' is already running" in second.stderr
        assert pid_file.read_text(encoding="ascii").strip() == str(first.pid)
        sent = subprocess.run([*command, "capture", "--config", str(config)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert sent.returncode == 0, sent.stderr
        wait_until(lambda: bool(record_files(tmp_path / "records")), "a record")
    finally:
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=60)

    assert first.returncode == 0, stderr


def wait_until(condition: Any, what: str, attempts: int = 1200) -> None:
    """Poll ``condition`` every 0.1 s; fail naming ``what`` after ``attempts`` polls."""
    for _ in range(attempts):
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_fakes_dir_exists() -> None:
    assert (FAKES / "picamera2" / "__init__.py").is_file()
    assert os.access(REPO / "device" / "app.py", os.R_OK)
    logging.getLogger(__name__).debug("fakes at %s", FAKES)


def test_undecodable_replay_name_recorded(tmp_path: Path, tiny_bundle: Any) -> None:
    config = replay_sections(tmp_path, tiny_bundle, count=1)
    scenes = tmp_path / "scenes"
    os.replace(scenes / "scene_00.jpg", scenes / os.fsdecode(b"\x8a\xb3\x8e\xd2A.jpg"))

    app = run_app(tmp_path, config)

    assert not app.status.has(Condition.INFERENCE_FAILING)
    assert not app.status.has(Condition.RECORD_FAILED)
    records = [json.loads(p.read_text()) for p in record_files(tmp_path / "records")]
    assert [(r["source"], r["status"]) for r in records] == [("\ufffd" * 4 + "A.jpg", "ok")]


def test_record_write_failure_is_not_inference(tmp_path: Path, tiny_bundle: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from cadr_device import pipeline

    # Without the safe name, the surrogates reach the record store's JSON encoding.
    monkeypatch.setattr(pipeline, "display_name", lambda name: name)
    config = replay_sections(tmp_path, tiny_bundle, count=1)
    scenes = tmp_path / "scenes"
    os.replace(scenes / "scene_00.jpg", scenes / os.fsdecode(b"\x8a\xb3.jpg"))

    app = run_app(tmp_path, config)

    assert app.status.has(Condition.RECORD_FAILED)
    assert not app.status.has(Condition.INFERENCE_FAILING)
    assert record_files(tmp_path / "records") == []


def test_bundle_for_newer_app_shows_no_model(tmp_path: Path, tiny_bundle: Any,
                                             caplog: pytest.LogCaptureFixture) -> None:
    from cadr_convert.bundle_writer import write_manifest
    from cadr_convert.signing import load_private_key, sign_bundle

    bundle = copy_bundle(tiny_bundle.bundle, tmp_path / "bundle")
    manifest = yaml.safe_load((bundle / "manifest.yaml").read_text(encoding="utf-8"))
    manifest.pop("files")
    manifest["min_app_version"] = "99.0.0"
    write_manifest(bundle, manifest)
    sign_bundle(bundle, load_private_key(tiny_bundle.private_key))
    config = replay_sections(tmp_path, tiny_bundle, count=1, model={"bundle": str(bundle)})

    app = run_app(tmp_path, config)

    assert app.status.has(Condition.NO_MODEL)
    assert "needs cadr app 99.0.0 or newer" in caplog.text
    assert record_files(tmp_path / "records") == []

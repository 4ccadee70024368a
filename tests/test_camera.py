"""Camera sources and triggers on the picamera2 and gpiozero fakes, and image-file replay."""

from __future__ import annotations

import io
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from camera_support import fake_module, write_scenes
from PIL import Image

from cadr_device.camera import CameraError, Picamera2Camera, ReplayCamera, ReplayFinished
from cadr_device.colour import (
    ColourMapping,
    lores_to_rgb,
    resolve_mapping,
    rgb_to_yuv420,
    yuv420_to_rgb,
)
from cadr_device.errors import ImageError
from cadr_device.triggers import (
    PID_FILE_NAME,
    GpioButton,
    KeyboardTrigger,
    SignalTrigger,
    TriggerError,
    TriggerQueue,
    send_capture_request,
)

PIXEL = (200, 80, 30)  # R, G, B: red and blue clearly differ


@pytest.fixture
def picamera2() -> Iterator[Any]:
    yield from fake_module("picamera2")


@pytest.fixture
def gpiozero() -> Iterator[Any]:
    yield from fake_module("gpiozero")


def colourful_scene() -> np.ndarray:
    scene = np.zeros((480, 640, 3), dtype=np.uint8)
    scene[:, :320] = (220, 60, 40)
    scene[:, 320:] = (40, 70, 210)
    return scene


def make_camera(**overrides: Any) -> Picamera2Camera:
    options: dict[str, Any] = {
        "preview_size": (640, 480), "lores_size": (320, 240), "lores_format": "YUV420",
        "main_format": "XBGR8888", "still_size": None, "colour_order": "auto",
        "preview_kind": "drm",
    }
    options.update(overrides)
    return Picamera2Camera(**options)


# Colour order ------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "memory"), [
    ("RGB888", [30, 80, 200]),
    ("BGR888", [200, 80, 30]),
    ("XRGB8888", [30, 80, 200, 255]),
    ("XBGR8888", [200, 80, 30, 255]),
])
def test_documented_order_per_format(fmt: str, memory: list[int]) -> None:
    frame = np.array(memory, dtype=np.uint8).reshape(1, 1, -1)

    rgb = ColourMapping(fmt, False, "documented").to_rgb(frame)

    assert tuple(rgb[0, 0]) == PIXEL


@pytest.mark.parametrize("fmt", ["RGB888", "BGR888", "XRGB8888", "XBGR8888"])
def test_swapped_order_per_format(fmt: str) -> None:
    documented = ColourMapping(fmt, False, "documented")
    swapped = ColourMapping(fmt, True, "configuration")
    frame = np.arange(4 * 4 * len(fmt.replace("888", "").replace("8", "")), dtype=np.uint8)
    frame = np.resize(frame, (2, 2, 4 if fmt.startswith("X") else 3)).astype(np.uint8)

    assert np.array_equal(swapped.to_rgb(frame), documented.to_rgb(frame)[..., ::-1])


def test_mapping_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="XBGR8888"):
        ColourMapping("XBGR8888", False, "documented").to_rgb(np.zeros((2, 2, 3), np.uint8))


def test_yuv420_round_trip() -> None:
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[:] = PIXEL

    back = yuv420_to_rgb(rgb_to_yuv420(rgb))

    assert np.abs(back.astype(int) - rgb.astype(int)).max() <= 2


@pytest.mark.parametrize("fmt", ["RGB888", "BGR888", "XRGB8888", "XBGR8888"])
@pytest.mark.parametrize("sensor_swaps", [False, True], ids=["sensor-ok", "sensor-swaps"])
def test_start_up_check_finds_order(picamera2: Any, fmt: str, sensor_swaps: bool) -> None:
    picamera2.settings.scene = colourful_scene()
    picamera2.settings.swap_red_blue = sensor_swaps
    camera = make_camera(main_format=fmt)

    camera.start()
    frame = camera.preview_frame()
    camera.stop()

    assert camera.mapping is not None
    assert camera.mapping.source == "self-check"
    assert camera.mapping.swap_red_blue is sensor_swaps
    assert tuple(frame[10, 10]) == (220, 60, 40)
    assert tuple(frame[10, 600]) == (40, 70, 210)


def test_check_logs_mapping(picamera2: Any, caplog: pytest.LogCaptureFixture) -> None:
    picamera2.settings.scene = colourful_scene()
    caplog.set_level(logging.INFO)

    camera = make_camera(main_format="RGB888")
    camera.start()
    camera.stop()

    assert "Colour order check passed: RGB888 bytes B,G,R" in caplog.text


def test_configured_order_overrides_check(picamera2: Any) -> None:
    picamera2.settings.scene = colourful_scene()
    camera = make_camera(colour_order="swapped")

    camera.start()
    frame = camera.preview_frame()
    camera.stop()

    assert camera.mapping is not None
    assert camera.mapping.source == "configuration"
    assert tuple(frame[10, 10]) == (40, 60, 220)


def test_grey_scene_is_inconclusive(caplog: pytest.LogCaptureFixture) -> None:
    grey = np.full((48, 64, 3), 128, dtype=np.uint8)
    frame = np.concatenate([grey, np.full((48, 64, 1), 255, np.uint8)], axis=-1)

    mapping = resolve_mapping("XBGR8888", "auto", frame, rgb_to_yuv420(grey))

    assert mapping.source == "documented"
    assert not mapping.swap_red_blue
    assert "inconclusive" in caplog.text


def test_rgb_lores_needs_no_check(picamera2: Any) -> None:
    picamera2.settings.scene = colourful_scene()
    camera = make_camera(lores_format="BGR888")

    camera.start()
    lores = camera.lores_frame()
    camera.stop()

    assert camera.mapping is not None
    assert camera.mapping.source == "documented"
    assert lores.shape == (240, 320, 3)
    assert tuple(lores[5, 5]) == (220, 60, 40)


def test_yuv_lores_converted(picamera2: Any) -> None:
    picamera2.settings.scene = colourful_scene()
    camera = make_camera()

    camera.start()
    lores = camera.lores_frame()
    camera.stop()

    assert lores.shape == (240, 320, 3)
    assert np.abs(lores[5, 5].astype(int) - (220, 60, 40)).max() <= 3


def test_lores_to_rgb_uses_format_table() -> None:
    frame = np.array([30, 80, 200], dtype=np.uint8).reshape(1, 1, 3)

    assert tuple(lores_to_rgb(frame, "RGB888", None)[0, 0]) == PIXEL


# Picamera2 adapter -------------------------------------------------------------------

def test_preview_configuration_passed(picamera2: Any) -> None:
    camera = make_camera(preview_size=(1280, 720), lores_size=(320, 180))

    camera.start()
    picam2 = picamera2.settings.instances[-1]
    config = picam2.camera_config
    camera.stop()

    assert config["main"]["size"] == (1280, 720)
    assert config["main"]["format"] == "XBGR8888"
    assert config["lores"]["size"] == (320, 180)
    assert config["lores"]["format"] == "YUV420"
    assert config["display"] == "main"
    assert config["buffer_count"] >= 2
    assert picam2.closed


def test_no_camera_raises_camera_error(picamera2: Any) -> None:
    picamera2.settings.no_camera = True

    with pytest.raises(CameraError, match="no camera 0 could be opened"):
        make_camera().start()


def test_failing_preview_falls_back_to_null(picamera2: Any) -> None:
    picamera2.settings.failing_previews = {"DRM"}
    camera = make_camera()

    camera.start()
    preview = picamera2.settings.instances[-1]._preview
    camera.stop()

    assert camera.preview_kind == "null"
    assert type(preview).__name__ == "NullPreview"


def test_still_from_main_stream(picamera2: Any) -> None:
    picamera2.settings.scene = colourful_scene()
    camera = make_camera()
    camera.start()

    still = camera.capture_still(timeout_s=5)
    switches = picamera2.settings.instances[-1].mode_switches
    camera.stop()

    assert still.fallback_note is None
    assert still.image.size == (640, 480)
    assert still.image.getpixel((10, 10)) == (220, 60, 40)
    assert switches == 0


def test_still_switches_mode(picamera2: Any) -> None:
    picamera2.settings.scene = colourful_scene()
    camera = make_camera(still_size=(2304, 1296), main_format="RGB888")
    camera.start()

    still = camera.capture_still(timeout_s=5)
    picam2 = picamera2.settings.instances[-1]
    camera.stop()

    assert still.fallback_note is None
    assert still.image.size == (2304, 1296)
    assert still.image.getpixel((10, 10)) == (220, 60, 40)
    assert picam2.mode_switches == 1


def test_still_timeout_falls_back(picamera2: Any, caplog: pytest.LogCaptureFixture) -> None:
    picamera2.settings.scene = colourful_scene()
    picamera2.settings.still_hangs = True
    camera = make_camera(still_size=(2304, 1296))
    camera.start()
    camera.preview_frame()

    still = camera.capture_still(timeout_s=0.2)
    after = camera.preview_frame()
    camera.stop()

    assert still.fallback_note is not None
    assert "timed out after 0.2 s" in still.fallback_note
    assert "viewfinder frame (640x480)" in still.fallback_note
    assert still.image.size == (640, 480)
    assert still.source == "picamera2 viewfinder frame"
    assert after.shape == (480, 640, 3)
    assert "Still capture fallback" in caplog.text


def test_no_mode_switch_while_encoding(picamera2: Any) -> None:
    camera = make_camera(still_size=(2304, 1296))
    camera.start()
    picam2 = picamera2.settings.instances[-1]
    picam2.start_encoder(object())

    still = camera.capture_still(timeout_s=5)
    camera.stop()

    assert picam2.mode_switches == 0
    assert still.fallback_note is not None
    assert "encoder is running" in still.fallback_note


def test_overlay_reaches_preview(picamera2: Any) -> None:
    camera = make_camera()
    camera.start()
    overlay = np.zeros((480, 640, 4), dtype=np.uint8)

    camera.set_overlay(overlay)
    preview = picamera2.settings.instances[-1]._preview
    camera.stop()

    assert preview.overlay is overlay


def test_initial_overlay_error_kept(picamera2: Any) -> None:
    picamera2.settings.overlay_fail_on_call = 1
    camera = make_camera()

    camera.start(np.zeros((480, 640, 4), dtype=np.uint8))
    camera.stop()

    assert isinstance(camera.overlay_error, RuntimeError)


def test_drawn_overlay_only_on_display(picamera2: Any) -> None:
    picamera2.settings.scene = colourful_scene()
    camera = make_camera()
    camera.start()
    overlay = np.zeros((480, 640, 4), dtype=np.uint8)
    overlay[100:110, :, :] = (255, 214, 0, 255)

    camera.draw_into_preview(overlay)
    frame = camera.preview_frame()
    still = camera.capture_still(timeout_s=5)
    displayed = picamera2.settings.instances[-1]._preview.displayed
    camera.stop()

    assert tuple(displayed[105, 10][:3]) == (255, 214, 0)
    assert tuple(frame[105, 10]) == (220, 60, 40)
    assert still.image.getpixel((10, 105)) == (220, 60, 40)


# Replay ------------------------------------------------------------------------------

def test_replay_serves_files_in_order(tmp_path: Path) -> None:
    folder = write_scenes(tmp_path / "scenes", count=2, size=(800, 600))
    camera = ReplayCamera(folder, preview_size=(640, 640), lores_size=(160, 160))
    camera.start()

    first = camera.current_path
    frame = camera.preview_frame()
    still = camera.capture_still(timeout_s=1)
    camera.advance()
    second = camera.current_path

    assert first.name == "scene_00.jpg"
    assert second.name == "scene_01.jpg"
    assert frame.shape == (480, 640, 3)
    assert still.image.size == (800, 600)
    assert still.fallback_note is None
    assert camera.lores_frame().shape == (120, 160, 3)
    with pytest.raises(ReplayFinished):
        camera.advance()


def test_replay_loops(tmp_path: Path) -> None:
    folder = write_scenes(tmp_path / "scenes", count=2)
    camera = ReplayCamera(folder, (640, 480), (160, 120), loop=True)
    camera.start()

    camera.advance()
    camera.advance()

    assert camera.current_path.name == "scene_00.jpg"


def test_replay_empty_folder_raises(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    with pytest.raises(CameraError, match="no image files"):
        ReplayCamera(tmp_path / "empty", (640, 480), (160, 120)).start()


def test_replay_corrupt_file_raises_image_error(tmp_path: Path) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    camera = ReplayCamera(folder, (640, 480), (160, 120))
    camera.start()

    with pytest.raises(ImageError, match="broken.jpg"):
        camera.preview_frame()


# Triggers ----------------------------------------------------------------------------

def test_gpio_button_press_queues_capture(gpiozero: Any) -> None:
    triggers = TriggerQueue()
    button = GpioButton(17, 0.05, triggers)

    assert button.start()
    device = gpiozero.instances[-1]
    device.pin.drive_low()
    button.stop()

    assert triggers.drain() == ["button"]
    assert device.pull_up is True
    assert device.bounce_time == 0.05
    assert device.pin.number == 17
    assert device.closed


def test_gpio_missing_disables_button(gpiozero: Any, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FAKE_GPIOZERO_NO_PINS", "1")

    assert not GpioButton(17, 0.05, TriggerQueue()).start()
    assert "GPIO button on GPIO17 disabled" in caplog.text


def test_keyboard_needs_terminal() -> None:
    assert not KeyboardTrigger(TriggerQueue(), io.StringIO("\n")).start()


def test_keyboard_enter_queues_capture() -> None:
    controller, terminal = os.openpty()
    triggers = TriggerQueue()
    with open(terminal, encoding="utf-8", closefd=True) as stream:
        keyboard = KeyboardTrigger(triggers, stream)
        assert keyboard.start()
        os.write(controller, b"\n")
        received = wait_for_trigger(triggers)
        os.close(controller)

    assert received == ["keyboard"]


def wait_for_trigger(triggers: TriggerQueue, attempts: int = 500) -> list[str]:
    """Poll the queue until the reader thread has put something (at most ~5 s)."""
    for _ in range(attempts):
        sources = triggers.drain()
        if sources:
            return sources
        time.sleep(0.01)
    return []


def test_signal_trigger_and_pid_file(tmp_path: Path) -> None:
    triggers = TriggerQueue()
    trigger = SignalTrigger(triggers, tmp_path / "run")

    assert trigger.start()
    pid_text = (tmp_path / "run" / PID_FILE_NAME).read_text(encoding="ascii")
    os.kill(os.getpid(), signal.SIGUSR1)
    trigger.stop()

    assert int(pid_text) == os.getpid()
    assert triggers.drain() == ["signal"]
    assert not (tmp_path / "run" / PID_FILE_NAME).exists()


def test_capture_request_without_app(tmp_path: Path) -> None:
    with pytest.raises(TriggerError, match="not found"):
        send_capture_request(tmp_path)


def test_capture_request_stale_pid(tmp_path: Path) -> None:
    (tmp_path / PID_FILE_NAME).write_text("999999999\n", encoding="ascii")

    with pytest.raises(TriggerError, match="not running"):
        send_capture_request(tmp_path)


def test_capture_request_foreign_process(tmp_path: Path) -> None:
    # PID 1 is init, never a cadr process.
    (tmp_path / PID_FILE_NAME).write_text("1\n", encoding="ascii")

    with pytest.raises(TriggerError, match="not a cadr-device process"):
        send_capture_request(tmp_path)


def test_scene_helper_is_rgb(tmp_path: Path) -> None:
    folder = write_scenes(tmp_path / "s", count=1)

    with Image.open(folder / "scene_00.jpg") as image:
        assert image.mode == "RGB"


def test_hung_camera_raises_camera_error(picamera2: Any) -> None:
    camera = make_camera(frame_timeout_s=0.2)
    camera.start()
    picamera2.settings.frames_hang = True

    with pytest.raises(CameraError, match="no viewfinder frame within 0.2 s"):
        camera.preview_frame()
    picamera2.settings.frames_hang = False
    frame = camera.preview_frame()
    camera.stop()

    assert frame.shape == (480, 640, 3)


def test_still_timeout_restores_preview(picamera2: Any) -> None:
    picamera2.settings.still_hangs = True
    camera = make_camera(still_size=(2304, 1296))
    camera.start()
    camera.capture_still(timeout_s=0.2)
    picam2 = picamera2.settings.instances[-1]

    config = picam2.camera_config
    frame = camera.preview_frame()
    camera.stop()

    assert config["main"]["size"] == (640, 480)
    assert config["lores"] is not None
    assert frame.shape == (480, 640, 3)


@pytest.mark.hardware
def test_real_camera_frame_and_still() -> None:
    import importlib.util

    spec = importlib.util.find_spec("picamera2")
    if spec is None or spec.origin is None or "fakes" in spec.origin:
        pytest.skip("needs the real picamera2 (python3-picamera2) and a camera module")
    camera = make_camera(preview_kind="null")
    camera.start()
    try:
        frame = camera.preview_frame()
        still = camera.capture_still(timeout_s=5)
    finally:
        camera.stop()

    assert frame.shape == (480, 640, 3)
    assert still.fallback_note is None
    assert camera.mapping is not None


def test_aspect_mismatch_warned(picamera2: Any, caplog: pytest.LogCaptureFixture) -> None:
    camera = make_camera(preview_size=(1280, 720), still_size=(4056, 3040))

    camera.start()
    camera.stop()

    assert "different aspect ratios" in caplog.text


def test_matching_aspect_not_warned(picamera2: Any, caplog: pytest.LogCaptureFixture) -> None:
    camera = make_camera(preview_size=(1280, 720), still_size=(4608, 2592))

    camera.start()
    camera.stop()

    assert "different aspect ratios" not in caplog.text

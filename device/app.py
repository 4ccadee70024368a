"""The camera app behind ``cadr-device run``, and ``cadr-device capture``.

Start-up: configuration → bundle, interpreter and golden self-test → records folder →
camera → triggers → ``READY=1``. An invalid configuration or a camera that cannot open
stops the app. A failure in the other steps becomes a visible state on the viewfinder
(see :mod:`cadr_device.status`) instead of a blank screen, and READY=1 is not sent.

Main loop, once per viewfinder frame: read a frame → live inference when due → handle
triggers (each capture is classified and recorded through
:class:`~cadr_device.pipeline.Screening`) → draw the overlay → write it to the render
folder when configured → ping the systemd watchdog. An error in one capture is logged
with its capture id, shown, and the loop goes on.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from PIL import Image

from cadr_device.camera import (
    Camera,
    CameraError,
    Picamera2Camera,
    ReplayCamera,
    ReplayFinished,
    blend,
)
from cadr_device.capture import CaptureTaker
from cadr_device.config import DEFAULT_CONFIG_PATH, DeviceConfig, config_from_options
from cadr_device.errors import ImageError, RecordError
from cadr_device.i18n import translator
from cadr_device.instance import InstanceLock
from cadr_device.live import LiveScreening
from cadr_device.model_setup import LoadedModel, load_model
from cadr_device.names import display_name
from cadr_device.notify import Notifier
from cadr_device.overlay import OverlayRenderer, ShownResult, ViewState
from cadr_device.pipeline import Screening
from cadr_device.records import RecordStore
from cadr_device.status import Condition, StatusBoard
from cadr_device.triggers import (
    GpioButton,
    KeyboardTrigger,
    SignalTrigger,
    TriggerQueue,
    send_capture_request,
)

logger = logging.getLogger(__name__)

EXIT_OK = 0

#: Bytes per MiB, for ``records.min_free_mb``.
MIB = 1024 * 1024

#: Weight of the newest frame interval in the frames-per-second average.
FPS_SMOOTHING = 0.2

#: How often the status line's fps and inference time are updated, in seconds. The
#: overlay is redrawn only when what it shows changes, because the DRM preview makes a
#: new framebuffer for every set_overlay call.
STATUS_REFRESH_S = 1.0

#: Consecutive viewfinder frames that may fail before the app exits for systemd to
#: restart it.
MAX_FRAME_FAILURES = 30


def run_camera(options: argparse.Namespace) -> int:
    """Run the camera app until SIGTERM, SIGINT, the end of a replay, or ``max_frames``.

    Args:
        options: ``cadr-device run`` options: ``config``, ``bundle``, ``keys``, ``locale``,
            ``records``, and optionally ``replay``, ``overlay_dir``, ``runtime_dir`` and
            ``max_frames`` (stop after that many viewfinder frames).

    Returns:
        0 after a normal stop.

    Raises:
        ConfigError: The configuration is invalid (exit code 2), naming the key.
        AlreadyRunningError: Another app runs with the same runtime directory (exit code 10).
        CameraError: No camera could be opened (exit code 8).
    """
    options = _with_default_config(options)
    config = config_from_options(options)
    runtime_dir = config.path_value("runtime.directory")
    assert runtime_dir is not None  # noqa: S101 - the setting is not nullable
    with InstanceLock(runtime_dir):
        app = CameraApp(config, Notifier.from_environment(),
                        max_frames=getattr(options, "max_frames", None),
                        bundle_flag=getattr(options, "bundle", None))
        return app.run()


def request_capture(options: argparse.Namespace) -> int:
    """Ask the running app for a capture (SIGUSR1 via its pid file); return 0 when sent.

    Raises:
        TriggerError: When no app is running with the configured runtime directory.
    """
    options = _with_default_config(options)
    config = config_from_options(options)
    runtime_dir = config.path_value("runtime.directory")
    assert runtime_dir is not None  # noqa: S101 - the setting is not nullable
    send_capture_request(runtime_dir)
    return EXIT_OK


def _with_default_config(options: argparse.Namespace) -> argparse.Namespace:
    """Treat a missing file at the default path as "all defaults", an explicit one as an error."""
    config_path = getattr(options, "config", None)
    if config_path is not None and Path(config_path) == DEFAULT_CONFIG_PATH \
            and not DEFAULT_CONFIG_PATH.exists():
        logger.info("No %s; using the documented defaults", DEFAULT_CONFIG_PATH)
        options = argparse.Namespace(**{**vars(options), "config": None})
    return options


@dataclass
class _Stats:
    """Viewfinder timing, in the app's view clock."""

    fps: float | None = None
    last_frame_time: float | None = None
    inference_ms: float | None = None
    shown_fps: float | None = None
    shown_inference_ms: float | None = None
    last_refresh: float | None = None

    def frame(self, now: float) -> None:
        if self.last_frame_time is not None and now > self.last_frame_time:
            rate = 1.0 / (now - self.last_frame_time)
            self.fps = rate if self.fps is None else (
                (1 - FPS_SMOOTHING) * self.fps + FPS_SMOOTHING * rate)
        self.last_frame_time = now
        first_values = ((self.shown_fps is None and self.fps is not None)
                        or (self.shown_inference_ms is None and self.inference_ms is not None))
        if (first_values or self.last_refresh is None
                or now - self.last_refresh >= STATUS_REFRESH_S):
            self.shown_fps = self.fps
            self.shown_inference_ms = self.inference_ms
            self.last_refresh = now


class CameraApp:
    """One run of the camera app with a validated configuration."""

    def __init__(self, config: DeviceConfig, notifier: Notifier,
                 max_frames: int | None = None, bundle_flag: Path | None = None) -> None:
        self.config = config
        self.notifier = notifier
        self.max_frames = max_frames
        self.bundle_flag = bundle_flag
        self.translations = translator(config.get("display.locale"))
        self.status = StatusBoard()
        self.triggers = TriggerQueue()
        self.replay = config.get("camera.source") == "replay"
        self.camera: Camera = self._make_camera()
        self.model: LoadedModel | None = None
        self.screening: Screening | None = None
        self.store: RecordStore | None = None
        self.live: LiveScreening | None = None
        self.renderer = OverlayRenderer(None, self.translations, config.get("display.font_size_px"))
        self.render_dir = config.path_value("viewfinder.render_dir")
        self.stats = _Stats()
        self.shown: ShownResult | None = None
        self.shown_until = 0.0
        self.overlay_failed = False
        self.frame_number = 0
        self.frame_failures = 0
        self._last_state: ViewState | None = None
        self._last_overlay: np.ndarray | None = None
        self.captured_current = False
        self._stop_requested = False
        self._view_time = 0.0
        self._stoppers: list[Any] = []

    # Start-up ------------------------------------------------------------------------

    def _make_camera(self) -> Camera:
        preview_size = self.config.size("camera.preview_size")
        lores_size = self.config.size("camera.lores_size")
        assert preview_size is not None and lores_size is not None  # noqa: S101 - not nullable
        if self.replay:
            source = self.config.path_value("replay.path")
            if source is None:
                raise CameraError("camera.source is replay but replay.path is not set; pass "
                                  "--replay PATH or set replay.path")
            return ReplayCamera(source, preview_size, lores_size, self.config.get("replay.loop"))
        return Picamera2Camera(
            preview_size=preview_size, lores_size=lores_size,
            lores_format=self.config.get("camera.lores_format"),
            main_format=self.config.get("camera.main_format"),
            still_size=self.config.size("camera.still_size"),
            colour_order=self.config.get("camera.colour_order"),
            preview_kind=self.config.get("camera.preview"),
        )

    def _start(self) -> None:
        self._load_model()
        self._open_records()
        self._start_camera()
        self._start_triggers()

    def _load_model(self) -> None:
        model, condition, detail = load_model(self.config, self.bundle_flag)
        if model is None:
            assert condition is not None  # noqa: S101 - load_model returns one or the other
            self.status.set(condition, detail)
            return
        self.model = model
        camera_num = getattr(model.classifier, "camera_num", None)
        if isinstance(self.camera, Picamera2Camera) and camera_num is not None:
            # The IMX500 helper loaded the network into one sensor; open that camera.
            self.camera.camera_num = camera_num
            logger.info("Opening camera %d, the IMX500 with the network", camera_num)
        manifest = model.bundle.manifest
        self.renderer = OverlayRenderer(manifest, self.translations,
                                        self.config.get("display.font_size_px"))
        if self.config.get("live.enabled"):
            self.live = LiveScreening(
                model.classifier.classify, manifest.preprocess,
                threshold=manifest.decision.threshold,
                max_rate_hz=self.config.get("live.max_rate_hz"),
                window=self.config.get("live.window"), clock=self._clock,
            )

    def _open_records(self) -> None:
        directory = self.config.path_value("records.directory")
        assert directory is not None  # noqa: S101 - the setting is not nullable
        try:
            self.store = RecordStore(directory)
        except RecordError as e:
            self.status.set(Condition.RECORDS_UNAVAILABLE, str(e))
            return
        if self.model is not None:
            self.screening = Screening(
                self.model.bundle, self.model.classifier, self.store,
                locale=self.config.get("display.locale"), backend=self.model.backend_name,
            )

    def _start_camera(self) -> None:
        initial = self.renderer.render(self.config.size("camera.preview_size") or (640, 480),
                                       self._view_state())
        try:
            self.camera.start(initial)
        except CameraError as e:
            self.status.set(Condition.NO_CAMERA, str(e))
            self._render_failure_frame()
            raise
        overlay_error = getattr(self.camera, "overlay_error", None)
        if overlay_error is not None:
            self._overlay_failed(overlay_error, "before the camera started")

    def _start_triggers(self) -> None:
        runtime_dir = self.config.path_value("runtime.directory")
        assert runtime_dir is not None  # noqa: S101 - the setting is not nullable
        signal_trigger = SignalTrigger(self.triggers, runtime_dir)
        if signal_trigger.start():
            self._stoppers.append(signal_trigger)
        if not self.replay:
            pin = self.config.get("trigger.gpio_pin")
            if pin is not None:
                button = GpioButton(pin, self.config.get("trigger.bounce_s"), self.triggers)
                if button.start():
                    self._stoppers.append(button)
        if self.config.get("trigger.keyboard"):
            KeyboardTrigger(self.triggers).start()

    # Main loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Start, loop until stopped, and shut down cleanly; see :func:`run_camera`."""
        previous = {sig: signal.signal(sig, self._request_stop)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._start()
            self._notify_start_up()
            while not self._stop_requested:
                if not self._step():
                    break
                if self.max_frames is not None and self.frame_number >= self.max_frames:
                    break
            return EXIT_OK
        finally:
            self.notifier.stopping()
            for stopper in reversed(self._stoppers):
                stopper.stop()
            self.camera.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            logger.info("Camera app stopped after %d frames", self.frame_number)

    def _notify_start_up(self) -> None:
        """Send READY=1 only when screening works, else only a STATUS= line.

        Without READY=1 systemd keeps the unit "activating" and restarts it after
        TimeoutStartSec, and cadr-update detects that a new bundle did not come up and
        rolls back. The viewfinder shows the failure in the meantime.
        """
        summary = self.status.summary()
        if self.status.blocking is None and self.screening is not None:
            self.notifier.ready(summary)
            logger.info("Camera app ready (%s)", summary)
            return
        self.notifier.status(f"not ready: {summary}")
        logger.error("Camera app running without screening, READY=1 not sent: %s", summary)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop_requested = True

    def _clock(self) -> float:
        """Return the view time in seconds: frames over the frame rate in replay, else monotonic.

        Replay may run faster than real time, so its timing (live rate, result panel
        time) follows frames, which makes a replay run repeatable.
        """
        return self._view_time if self.replay else time.monotonic()

    def _step(self) -> bool:
        """Run one viewfinder frame; return False when the replay has ended."""
        started = time.monotonic()
        if self.replay:
            self._view_time = self.frame_number / self.config.get("camera.frame_rate_hz")
        try:
            frame = self.camera.preview_frame()
        except ImageError as e:
            self.status.set(Condition.IMAGE_UNREADABLE, str(e), name=display_name(e.path.name))
            if self.screening is not None:
                self.screening.screen_failed(e.path.name, str(e))
            return self._advance_replay()
        except (CameraError, RuntimeError, OSError) as e:
            self._frame_failed(e)
            return True
        if self.frame_failures:
            logger.info("Camera frames resumed after %d failures", self.frame_failures)
            self.frame_failures = 0
            self.status.clear(Condition.NO_CAMERA)
        self.frame_number += 1
        now = self._clock()
        self.stats.frame(now)

        if self.shown is not None and now >= self.shown_until:
            self.shown = None
        self._update_live()
        self._handle_triggers(now)

        state = self._view_state()
        size = (frame.shape[1], frame.shape[0])
        changed = (self._last_overlay is None or state != self._last_state
                   or self._last_overlay.shape[:2] != frame.shape[:2])
        if changed:
            self._last_overlay = self.renderer.render(size, state)
            self._last_state = state
        assert self._last_overlay is not None  # noqa: S101 - rendered above
        self._show(frame, self._last_overlay, changed)
        self.notifier.ping_watchdog()

        if self.replay and self.captured_current:
            return self._advance_replay()
        # A replay that captures by itself runs as fast as it can; one that waits for a
        # trigger is paced like the camera.
        if not self.replay or not self.config.get("replay.auto_capture"):
            interval = 1.0 / self.config.get("camera.frame_rate_hz")
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
        return True

    def _frame_failed(self, error: Exception) -> None:
        """Show a failed frame read; raise CameraError after MAX_FRAME_FAILURES in a row."""
        self.frame_failures += 1
        self.status.set(Condition.NO_CAMERA, f"reading a frame failed: {error}")
        if self.frame_failures >= MAX_FRAME_FAILURES:
            raise CameraError(f"{self.frame_failures} viewfinder frames in a row failed, the "
                              f"last with: {error}; check the camera and restart") from error
        time.sleep(1.0 / self.config.get("camera.frame_rate_hz"))

    def _advance_replay(self) -> bool:
        assert isinstance(self.camera, ReplayCamera)  # noqa: S101 - replay only
        self.captured_current = False
        self.shown = None
        if self.live is not None:
            self.live.reset()
        try:
            self.camera.advance()
        except ReplayFinished:
            logger.info("Replay finished after %d files", len(self.camera.files))
            return False
        return True

    def _update_live(self) -> None:
        if self.live is None or self.shown is not None or self.status.blocking is not None:
            return
        if not self.live.due():
            return
        try:
            reading = self.live.update(self.camera.lores_frame())
        except (RuntimeError, ValueError) as e:
            self.status.set(Condition.INFERENCE_FAILING, f"live inference failed: {e}",
                            capture_id="-")
            return
        if reading is not None:
            self.stats.inference_ms = reading.inference_ms
            self.status.clear(Condition.INFERENCE_FAILING)

    def _handle_triggers(self, now: float) -> None:
        sources = self.triggers.drain()
        if (self.replay and self.config.get("replay.auto_capture") and not self.captured_current
                and isinstance(self.camera, ReplayCamera)
                and self.camera.frames_on_current >= self.config.get("replay.frames_per_image")):
            sources.append("replay")
        if not sources:
            return
        if len(sources) > 1:
            logger.info("%d triggers arrived together (%s); taking one capture", len(sources),
                        ", ".join(sources))
        self._capture(sources[0])
        self.shown_until = now + self.config.get("display.result_seconds")
        if self.replay:
            self.captured_current = True
        if self.live is not None:
            self.live.reset()

    def _capture(self, trigger: str) -> None:
        """Take one capture through :class:`~cadr_device.capture.CaptureTaker`."""
        taker = CaptureTaker(
            camera=self.camera, screening=self.screening, store=self.store, status=self.status,
            min_free_bytes=self.config.get("records.min_free_mb") * MIB,
            still_timeout_s=self.config.get("camera.still_timeout_s"),
            backend_note=self.model.fallback_note if self.model else None,
        )
        shown = taker.take(trigger)
        if shown is None:
            return
        self.shown = shown
        if shown.prediction is not None:
            self.stats.inference_ms = shown.prediction.inference_ms

    # Display -------------------------------------------------------------------------

    def _view_state(self) -> ViewState:
        still_size = None
        if self.model is not None and self.status.blocking is None:
            try:
                still_size = self.camera.still_size()
            except (ImageError, IndexError, RuntimeError):
                still_size = None
        live = self.live.reading if self.live is not None else None
        return ViewState(
            still_size=still_size,
            backend=self.model.backend_name if self.model else None,
            inference_ms=self.stats.shown_inference_ms,
            fps=self.stats.shown_fps,
            live=live if self.status.blocking is None else None,
            result=self.shown,
            problems=self.status.problems(),
        )

    def _show(self, frame: np.ndarray, overlay: np.ndarray, changed: bool) -> None:
        if changed and not self.overlay_failed:
            try:
                self.camera.set_overlay(overlay)
            except Exception as e:  # noqa: BLE001 - preview back-ends raise many types
                self._overlay_failed(e, "while running")
                self.camera.draw_into_preview(overlay)
        elif changed:
            self.camera.draw_into_preview(overlay)

        if self.render_dir is not None:
            # In the fallback the camera has already blended the overlay into the frame.
            shown = frame if self.overlay_failed else blend(frame, overlay)
            self._write_render(shown)

    def _overlay_failed(self, error: BaseException, when: str) -> None:
        if not self.overlay_failed:
            logger.warning("Preview overlay failed %s (%s); drawing the overlay into the "
                           "preview frames instead", when, error)
        self.overlay_failed = True

    def _write_render(self, frame: np.ndarray) -> None:
        assert self.render_dir is not None  # noqa: S101 - checked by the caller
        name = f"{self.frame_number:06d}"
        if isinstance(self.camera, ReplayCamera):
            name += f"-{self.camera.current_path.stem}"
        if self.shown is not None:
            name += "-result"
        try:
            self.render_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(self.render_dir / f"{name}.png")
        except OSError as e:
            logger.warning("Cannot write the rendered viewfinder to %s (%s)", self.render_dir,
                           e.strerror)

    def _render_failure_frame(self) -> None:
        """Write one frame that shows why the app stopped, when a render folder is set."""
        if self.render_dir is None:
            return
        size = self.config.size("camera.preview_size") or (640, 480)
        overlay = self.renderer.render(size, self._view_state())
        black = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        self._write_render(blend(black, overlay))

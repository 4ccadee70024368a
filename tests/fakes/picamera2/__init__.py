"""A stand-in for picamera2 0.3 (Raspberry Pi OS Bookworm) without libcamera or a camera.

It follows the real package's public API as read from the picamera2 0.3.38 wheel:
``Picamera2(camera_num)``, ``create_preview_configuration(main=, lores=, display=,
buffer_count=)`` with the same defaults (main XBGR8888 640x480, lores YUV420),
``create_still_configuration`` (main BGR888 at the sensor resolution), ``configure``,
``start``/``stop``, ``start_preview(Preview.X)``/``stop_preview``, ``close``,
``capture_array``/``capture_arrays``/``capture_request``/``switch_mode_and_capture_array``
with the ``wait``/``signal_function`` dispatch (``wait=False`` returns a :class:`Job`),
``cancel_all_and_flush``, ``set_overlay`` (4-channel check, "No preview specified."),
``pre_callback``/``post_callback`` around job execution, ``MappedArray``, and the
``encoders`` set.

Frames are a scene image (``settings.scene``, or the file in ``FAKE_PICAMERA2_SCENE``)
resized to each stream, laid out in memory as picamera2 documents: RGB888 is B,G,R,
BGR888 is R,G,B, XRGB8888 is B,G,R,X, XBGR8888 is R,G,B,X, YUV420 is I420 (full-range
BT.601, the sYCC colour space of the preview configuration). ``settings`` sets the
hardware faults the tests need: no camera, a sensor that swaps red and blue in RGB
formats, a still capture that never completes, an overlay call that raises.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from PIL import Image

RGB_FORMATS = ("RGB888", "BGR888", "XRGB8888", "XBGR8888")
KNOWN_FORMATS = (*RGB_FORMATS, "YUV420")

#: Sensor resolution of a Camera Module 3 (IMX708), in pixels.
SENSOR_RESOLUTION = (4608, 2592)


@dataclass
class FakeSettings:
    """Fault switches and the scene; tests change them, :func:`reset` restores them."""

    scene: np.ndarray | None = None
    no_camera: bool = False
    swap_red_blue: bool = False
    still_hangs: bool = False
    frames_hang: bool = False
    frame_errors: int = 0
    overlay_fail_on_call: int | None = None
    failing_previews: set[str] = field(default_factory=set)
    overlay_calls: int = 0
    instances: list[Picamera2] = field(default_factory=list)
    sensor_metadata: dict[str, Any] = field(default_factory=dict)
    """Keys an IMX500 adds to every request's metadata (``CnnOutputTensor``, ``CnnKpiInfo``);
    build them with ``fake_imx500.frame_metadata``."""


settings = FakeSettings()


def reset() -> None:
    """Restore the default settings."""
    global settings  # noqa: PLW0603 - one fake camera per process, like the real one
    settings = FakeSettings()


def _scene() -> np.ndarray:
    if settings.scene is not None:
        return settings.scene
    path = os.environ.get("FAKE_PICAMERA2_SCENE")
    if path:
        with Image.open(path) as image:
            settings.scene = np.asarray(image.convert("RGB"), dtype=np.uint8)
        return settings.scene
    # A colourful default: red to the left, blue to the right, green at the bottom.
    height, width = 480, 640
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    red = np.broadcast_to(220 * (1 - x), (height, width))
    green = np.broadcast_to(40 + 160 * y, (height, width))
    blue = np.broadcast_to(220 * x, (height, width))
    settings.scene = np.stack([red, green, blue], axis=-1).astype(np.uint8)
    return settings.scene


def _encode(rgb: np.ndarray, fmt: str) -> np.ndarray:
    """Lay out true RGB pixels as the named stream format stores them in memory."""
    if fmt == "YUV420":
        return _to_i420(rgb)
    if settings.swap_red_blue:
        rgb = rgb[..., ::-1]
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    opaque = np.full_like(red, 255)
    planes = {
        "RGB888": (blue, green, red),
        "BGR888": (red, green, blue),
        "XRGB8888": (blue, green, red, opaque),
        "XBGR8888": (red, green, blue, opaque),
    }[fmt]
    return np.ascontiguousarray(np.stack(planes, axis=-1))


def _to_i420(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    values = rgb.astype(np.float64)
    r, g, b = values[..., 0], values[..., 1], values[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    v = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    u = u[::2, ::2]
    v = v[::2, ::2]
    flat = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    return np.clip(np.round(flat), 0, 255).astype(np.uint8).reshape(height * 3 // 2, width)


class Job:
    """A queued camera operation; ``get_result(timeout)`` raises TimeoutError like a Future."""

    def __init__(self, functions: list[Any], signal_function: Any = None) -> None:
        self._functions = list(functions)
        self._future: Future[Any] = Future()
        self._signal_function = signal_function

    def execute(self) -> bool:
        """Run the remaining functions in order; a function not yet done is retried next time."""
        result = None
        while self._functions:
            done, result = self._functions[0]()
            if not done:
                return False
            self._functions.pop(0)
        self._future.set_result(result)
        if self._signal_function:
            self._signal_function(self)
        return True

    def get_result(self, timeout: float | None = None) -> Any:
        return self._future.result(timeout=timeout)

    def cancel(self) -> None:
        self._future.set_exception(CancelledError())


class CompletedRequest:
    """One frame's buffers for every configured stream."""

    def __init__(self, picam2: Picamera2, config: dict[str, Any]) -> None:
        self.picam2 = picam2
        self.config = config
        self.ref_count = 1
        self.lock = threading.Lock()
        self.buffers: dict[str, np.ndarray] = {}
        scene = _scene()
        for name in ("main", "lores"):
            stream = config.get(name)
            if stream is None:
                continue
            width, height = stream["size"]
            resized = Image.fromarray(scene).resize((width, height), Image.Resampling.BILINEAR)
            self.buffers[name] = _encode(np.asarray(resized, dtype=np.uint8), stream["format"])

    def acquire(self) -> None:
        with self.lock:
            self.ref_count += 1

    def release(self) -> None:
        with self.lock:
            self.ref_count -= 1

    def make_array(self, name: str) -> np.ndarray:
        if name not in self.buffers:
            raise RuntimeError(f"Stream {name!r} is not defined")
        return self.buffers[name].copy()

    def make_buffer(self, name: str) -> np.ndarray:
        return self.make_array(name).reshape(-1)

    def get_metadata(self) -> dict[str, Any]:
        return {"SensorTimestamp": 0, "ExposureTime": 10000, "AnalogueGain": 1.0,
                **settings.sensor_metadata}


class MappedArray:
    """Writable view of a request's stream buffer, as in ``picamera2.request.MappedArray``."""

    def __init__(self, request: CompletedRequest, stream: str, reshape: bool = True,
                 write: bool = True) -> None:
        self._request = request
        self._stream = stream
        self._array: np.ndarray | None = None

    def __enter__(self) -> MappedArray:
        self._array = self._request.buffers[self._stream]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._array = None

    @property
    def array(self) -> np.ndarray | None:
        return self._array


class _PreviewBase:
    kind = "NULL"

    def __init__(self, x: int = 0, y: int = 0, width: int = 640, height: int = 480,
                 transform: Any = None, **kwargs: Any) -> None:
        self.picam2: Picamera2 | None = None
        self.overlay: np.ndarray | None = None
        self.displayed: np.ndarray | None = None

    def start(self, picam2: Picamera2) -> None:
        if self.kind in settings.failing_previews:
            raise RuntimeError(f"{self.kind} preview: no display available")
        self.picam2 = picam2
        picam2.attach_preview(self)

    def stop(self) -> None:
        assert self.picam2 is not None
        self.picam2.detach_preview()
        self.picam2 = None

    def set_overlay(self, overlay: np.ndarray | None) -> None:
        self.overlay = overlay

    def render_request(self, request: CompletedRequest) -> None:
        assert self.picam2 is not None
        display = self.picam2.camera_config.get("display")
        if display is not None and display in request.buffers:
            self.displayed = request.buffers[display].copy()


class NullPreview(_PreviewBase):
    kind = "NULL"


class DrmPreview(_PreviewBase):
    kind = "DRM"

    def set_overlay(self, overlay: np.ndarray | None) -> None:
        if self.picam2 is None:
            raise RuntimeError("Preview must be started before setting an overlay")
        if self.picam2.camera_config["buffer_count"] < 2:
            raise RuntimeError("Need at least buffer_count=2 to set overlay")
        settings.overlay_calls += 1
        limit = settings.overlay_fail_on_call
        if limit is not None and settings.overlay_calls >= limit:
            raise RuntimeError("Overlays not supported on this device")
        self.overlay = overlay


class QtGlPreview(_PreviewBase):
    kind = "QTGL"


class QtPreview(_PreviewBase):
    kind = "QT"


class Preview(Enum):
    """Enum that applications pass to ``start_preview``."""

    NULL = NullPreview
    DRM = DrmPreview
    QT = QtPreview
    QTGL = QtGlPreview


class Picamera2:
    """The camera object; one per camera, as in picamera2."""

    def __init__(self, camera_num: int = 0, verbose_console: Any = None, tuning: Any = None,
                 allocator: Any = None) -> None:
        if settings.no_camera:
            raise IndexError("list index out of range")
        self.camera_num = camera_num
        self.camera_config: dict[str, Any] | None = None
        self.started = False
        self.closed = False
        self.sensor_resolution = SENSOR_RESOLUTION
        self.pre_callback: Any = None
        self.post_callback: Any = None
        self._preview: _PreviewBase | None = None
        self._event_loop_running = False
        self._encoders: set[Any] = set()
        self._job_list: list[Job] = []
        self.mode_switches = 0
        self.mode_switches_while_encoding = 0
        self.lock = threading.Lock()
        settings.instances.append(self)

    # Configuration ----------------------------------------------------------------

    @staticmethod
    def _stream(defaults: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any] | None:
        if given is None:
            return None
        stream = {**defaults, **given}
        stream["size"] = tuple(stream["size"])
        if stream["format"] not in KNOWN_FORMATS:
            raise RuntimeError(f"Unsupported format {stream['format']}")
        return stream

    @staticmethod
    def _add_display_and_encode(config: dict[str, Any], display: str | None,
                                encode: str | None) -> None:
        if display is not None and config.get(display) is None:
            raise RuntimeError(f"Display stream {display} was not defined")
        if encode is not None and config.get(encode) is None:
            raise RuntimeError(f"Encode stream {encode} was not defined")
        config["display"] = display
        config["encode"] = encode

    def create_preview_configuration(  # noqa: PLR0917 - picamera2's positional signature
            self, main: dict[str, Any] | None = None,
                                     lores: dict[str, Any] | None = None, raw: Any = None,
                                     transform: Any = None, colour_space: Any = None,
                                     buffer_count: int = 4, controls: Any = None,
                                     display: str | None = "main", encode: str | None = "main",
                                     queue: bool = True, sensor: Any = None,
                                     use_case: str = "preview") -> dict[str, Any]:
        main_stream = self._stream({"format": "XBGR8888", "size": (640, 480),
                                    "preserve_ar": True}, main or {})
        assert main_stream is not None
        lores_stream = self._stream({"format": "YUV420", "size": main_stream["size"],
                                     "preserve_ar": False}, lores)
        config = {"use_case": use_case, "buffer_count": buffer_count, "queue": queue,
                  "main": main_stream, "lores": lores_stream, "controls": controls or {}}
        self._add_display_and_encode(config, display, encode)
        return config

    def create_still_configuration(  # noqa: PLR0917 - picamera2's positional signature
            self, main: dict[str, Any] | None = None,
                                   lores: dict[str, Any] | None = None, raw: Any = None,
                                   transform: Any = None, colour_space: Any = None,
                                   buffer_count: int = 1, controls: Any = None,
                                   display: str | None = None, encode: str | None = None,
                                   queue: bool = True, sensor: Any = None,
                                   use_case: str = "still") -> dict[str, Any]:
        main_stream = self._stream({"format": "BGR888", "size": self.sensor_resolution,
                                    "preserve_ar": True}, main or {})
        lores_stream = self._stream({"format": "YUV420", "size": self.sensor_resolution,
                                     "preserve_ar": False}, lores)
        config = {"use_case": use_case, "buffer_count": buffer_count, "queue": queue,
                  "main": main_stream, "lores": lores_stream, "controls": controls or {}}
        self._add_display_and_encode(config, display, encode)
        return config

    def configure(self, camera_config: Any = None) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if camera_config is None or camera_config == "preview":
            camera_config = self.create_preview_configuration()
        elif camera_config == "still":
            camera_config = self.create_still_configuration()
        self.camera_config = camera_config

    @property
    def display_stream_name(self) -> str | None:
        return None if self.camera_config is None else self.camera_config.get("display")

    # Running ----------------------------------------------------------------------

    def start(self, config: Any = None, show_preview: Any = False) -> None:
        if not self.camera_config and config is None:
            config = "preview"
        if config is not None:
            self.configure(config)
        if not self.camera_config:
            raise RuntimeError("Camera has not been configured")
        if show_preview is not None and not self._event_loop_running:
            self.start_preview(show_preview)
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        if self._event_loop_running:
            self.stop_preview()
        self.stop()
        self.closed = True

    def start_preview(self, preview: Any = None, **kwargs: Any) -> None:
        if self._event_loop_running:
            raise RuntimeError("An event loop is already running")
        if preview is True:
            preview = Preview.DRM.value(**kwargs)
        elif preview is False or preview is None:
            preview = Preview.NULL.value(**kwargs)
        elif isinstance(preview, Preview):
            preview = preview.value(**kwargs)
        preview.start(self)

    def attach_preview(self, preview: _PreviewBase) -> None:
        self._preview = preview
        self._event_loop_running = True

    def detach_preview(self) -> None:
        self._preview = None
        self._event_loop_running = False

    def stop_preview(self) -> None:
        if self._preview is None:
            raise RuntimeError("No preview specified.")
        self._preview.stop()

    def set_overlay(self, overlay: np.ndarray | None) -> None:
        if self._preview is None:
            raise RuntimeError("No preview specified.")
        if overlay is not None and (overlay.ndim != 3 or overlay.shape[2] != 4):
            raise RuntimeError("Overlay must be a 4-channel image")
        self._preview.set_overlay(overlay)

    @property
    def encoders(self) -> set[Any]:
        return self._encoders

    def start_encoder(self, encoder: Any = None, output: Any = None, **kwargs: Any) -> None:
        self._encoders.add(encoder if encoder is not None else object())

    def stop_encoder(self, encoders: Any = None) -> None:
        self._encoders.clear()

    # Jobs and frames --------------------------------------------------------------

    def _next_frame(self) -> None:
        """Run one trip of the event loop: a new request, callbacks, jobs, display."""
        if not self.started or self.camera_config is None:
            return
        request = CompletedRequest(self, self.camera_config)
        if self.pre_callback:
            self.pre_callback(request)
        self._pending_request = request
        while self._job_list:
            if self._job_list[0].execute():
                self._job_list.pop(0)
            else:
                break
        if self.post_callback:
            self.post_callback(request)
        if self._preview is not None:
            self._preview.render_request(request)
        request.release()

    def _take_request(self) -> tuple[bool, CompletedRequest | None]:
        request = getattr(self, "_pending_request", None)
        if request is None:
            return (False, None)
        self._pending_request = None
        return (True, request)

    def dispatch_functions(self, functions: list[Any], wait: Any,
                           signal_function: Any = None, immediate: bool = False) -> Any:
        if wait is None:
            wait = signal_function is None
        timeout = None if wait is True else wait
        job = Job(functions, signal_function)
        self._job_list.append(job)
        self._next_frame()
        if wait is False:
            return job
        return job.get_result(timeout=timeout)

    def capture_array(self, name: str = "main", wait: Any = None,
                      signal_function: Any = None) -> Any:
        def capture() -> tuple[bool, Any]:
            done, request = self._take_request()
            if not done:
                return (False, None)
            assert request is not None
            return (True, request.make_array(name))

        return self.dispatch_functions([capture], wait, signal_function)

    def capture_arrays(self, names: list[str] | None = None, wait: Any = None,
                       signal_function: Any = None) -> Any:
        names = names or ["main"]
        if settings.frame_errors > 0:
            settings.frame_errors -= 1
            raise RuntimeError("Camera frontend has timed out!")

        def capture() -> tuple[bool, Any]:
            if settings.frames_hang:
                return (False, None)
            done, request = self._take_request()
            if not done:
                return (False, None)
            assert request is not None
            return (True, ([request.make_array(n) for n in names], request.get_metadata()))

        return self.dispatch_functions([capture], wait, signal_function)

    def capture_request(self, wait: Any = None, signal_function: Any = None,
                        flush: Any = None) -> Any:
        def capture() -> tuple[bool, Any]:
            done, request = self._take_request()
            if not done:
                return (False, None)
            assert request is not None
            request.acquire()
            return (True, request)

        return self.dispatch_functions([capture], wait, signal_function)

    def switch_mode_and_capture_array(self, camera_config: dict[str, Any], name: str = "main",
                                      wait: Any = None, signal_function: Any = None,
                                      delay: int = 0) -> Any:
        self.mode_switches += 1
        if self._encoders:
            self.mode_switches_while_encoding += 1
        preview_config = self.camera_config

        def switch_mode() -> tuple[bool, Any]:
            self.camera_config = camera_config
            return (True, None)

        def capture_and_switch_back() -> tuple[bool, Any]:
            if settings.still_hangs:
                return (False, None)
            request = CompletedRequest(self, camera_config)
            self.camera_config = preview_config
            return (True, request.make_array(name))

        return self.dispatch_functions([switch_mode, capture_and_switch_back], wait,
                                       signal_function, immediate=True)

    def cancel_all_and_flush(self) -> None:
        for job in self._job_list:
            job.cancel()
        self._job_list = []


__all__ = ["CompletedRequest", "Job", "MappedArray", "Picamera2", "Preview", "reset", "settings"]

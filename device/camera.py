"""Frame sources for the camera app: the Raspberry Pi camera (picamera2) and image-file replay.

Both implement :class:`Camera`: a viewfinder frame per loop step, a small frame for live
inference, a still for the record, and an overlay on the preview. This is the only module
that imports picamera2, and it does so inside :meth:`Picamera2Camera.start`, so the app
runs on a laptop or in CI with :class:`ReplayCamera`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from cadr_device.colour import ColourMapping, lores_to_rgb, resolve_mapping
from cadr_device.errors import CadrError
from cadr_device.images import iter_image_files, load_rgb

logger = logging.getLogger(__name__)

#: Buffers of the preview configuration; the DRM preview needs at least 2 for an overlay.
PREVIEW_BUFFER_COUNT = 4

#: Maximum wait for one viewfinder frame, in seconds. A camera that delivers no frame
#: (cable loose, sensor hung) then raises CameraError instead of blocking the frame loop.
FRAME_TIMEOUT_S = 5.0

#: Relative difference of the preview and still aspect ratios that is still treated as
#: equal (rounding of stream sizes to even or aligned widths).
ASPECT_TOLERANCE = 0.01

#: picamera2 ``Preview`` enum member for each ``camera.preview`` setting.
PREVIEW_KINDS = {"drm": "DRM", "qtgl": "QTGL", "null": "NULL"}


class CameraError(CadrError):
    """No camera could be opened or configured, or a frame could not be read."""

    exit_code = 8


class ReplayFinished(Exception):  # noqa: N818 - a normal end of input, not an error
    """The replay source has served its last file and does not loop."""


@dataclass(frozen=True)
class StillCapture:
    """A still image for the record.

    Attributes:
        image: Upright 8-bit RGB image.
        source: What produced it, for the record (``picamera2 still``, a file path, ...).
        fallback_note: Why a viewfinder frame replaced the still, or None for a real still.
        metadata: The camera request metadata that goes with the still (an IMX500 sensor
            puts its network output there), or None for replayed files.
        metadata_note: Why ``metadata`` is not the still's own request, or None.
    """

    image: Image.Image
    source: str
    fallback_note: str | None = None
    metadata: dict[str, Any] | None = None
    metadata_note: str | None = None


class Camera(Protocol):
    """Interface of a frame source, as the app uses it."""

    name: str

    def start(self, initial_overlay: np.ndarray | None = None) -> None:
        """Open and start the source; show ``initial_overlay`` from the first frame."""

    def stop(self) -> None:
        """Stop the source and release the device."""

    def preview_frame(self) -> np.ndarray:
        """Return the next viewfinder frame, (H, W, 3) uint8 RGB at the preview size."""

    def lores_frame(self) -> np.ndarray:
        """Return the small frame that goes with the latest viewfinder frame, RGB."""

    def still_size(self) -> tuple[int, int]:
        """Return (width, height) of the still that :meth:`capture_still` records."""

    def capture_still(self, timeout_s: float) -> StillCapture:
        """Capture a still, or fall back to the latest viewfinder frame after ``timeout_s``."""

    def set_overlay(self, overlay: np.ndarray | None) -> None:
        """Show an RGBA (H, W, 4) overlay on the preview; raise when the preview cannot."""

    def draw_into_preview(self, overlay: np.ndarray | None) -> None:
        """Blend the overlay into the preview frames themselves (fallback for set_overlay)."""


def _fit_within(size: tuple[int, int], bounds: tuple[int, int]) -> tuple[int, int]:
    """Scale ``size`` to fit ``bounds`` with its aspect ratio kept; even sides."""
    width, height = size
    scale = min(bounds[0] / width, bounds[1] / height)
    fitted_width = max(2, int(round(width * scale / 2)) * 2)
    fitted_height = max(2, int(round(height * scale / 2)) * 2)
    return fitted_width, fitted_height


class ReplayCamera:
    """Serves image files as camera frames, so the app runs without a camera.

    Each file is one scene: :meth:`preview_frame` returns it scaled to fit the preview
    size, :meth:`capture_still` returns it at full resolution, and :meth:`advance` moves
    to the next file. After the last file it starts again when ``loop`` is set and
    raises :class:`ReplayFinished` otherwise.
    """

    def __init__(self, source: Path, preview_size: tuple[int, int], lores_size: tuple[int, int],
                 loop: bool = False) -> None:
        self.name = f"replay {source}"
        self.source = source
        self.preview_bounds = preview_size
        self.lores_bounds = lores_size
        self.loop = loop
        self.files: list[Path] = []
        self.index = 0
        self.frames_on_current = 0
        self._image: Image.Image | None = None
        self._overlay_in_frame: np.ndarray | None = None

    def start(self, initial_overlay: np.ndarray | None = None) -> None:
        """List the files; raises CameraError when there are none."""
        self.files = iter_image_files(self.source)
        if not self.files:
            raise CameraError(f"{self.source}: no image files (JPEG, PNG, WebP, BMP, TIFF) to "
                              "replay; pass a file or a folder of images")
        self.index = 0
        self.frames_on_current = 0
        self._image = None
        logger.info("Replay camera started: %d files from %s, loop=%s", len(self.files),
                    self.source, self.loop)

    def stop(self) -> None:
        """Forget the current image."""
        self._image = None

    @property
    def current_path(self) -> Path:
        """The file now shown."""
        return self.files[self.index]

    def advance(self) -> None:
        """Move to the next file; raises ReplayFinished after the last one unless looping."""
        self.index += 1
        self.frames_on_current = 0
        self._image = None
        if self.index >= len(self.files):
            if not self.loop:
                self.index = len(self.files) - 1
                raise ReplayFinished(str(self.source))
            self.index = 0

    def _current(self) -> Image.Image:
        if self._image is None:
            self._image = load_rgb(self.current_path)
        return self._image

    def preview_frame(self) -> np.ndarray:
        """Return the current file scaled into the preview size.

        Raises:
            ImageError: When the current file cannot be decoded; call :meth:`advance`.
        """
        image = self._current()
        size = _fit_within(image.size, self.preview_bounds)
        frame = np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)
        self.frames_on_current += 1
        overlay = self._overlay_in_frame
        if overlay is not None and overlay.shape[:2] == frame.shape[:2]:
            frame = blend(frame, overlay)
        return frame

    def lores_frame(self) -> np.ndarray:
        """Return the current file scaled into the lores size."""
        image = self._current()
        size = _fit_within(image.size, self.lores_bounds)
        return np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)

    def still_size(self) -> tuple[int, int]:
        """Return the size of the current file."""
        width, height = self._current().size
        return width, height

    def capture_still(self, timeout_s: float) -> StillCapture:
        """Return a copy of the current file at full resolution."""
        return StillCapture(self._current().copy(), str(self.current_path))

    def set_overlay(self, overlay: np.ndarray | None) -> None:
        """Accept the overlay; replay has no preview window, the app renders it to files."""

    def draw_into_preview(self, overlay: np.ndarray | None) -> None:
        """Blend ``overlay`` into the frames :meth:`preview_frame` returns from now on."""
        self._overlay_in_frame = overlay


def blend(frame: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """Alpha-composite an RGBA overlay over an RGB frame of the same size.

    Pillow's C ``alpha_composite`` is used because this may run on every preview frame
    (about 2.5 times faster than the same arithmetic in numpy for 1280x720).
    """
    base = Image.fromarray(np.ascontiguousarray(frame)).convert("RGBA")
    top = Image.fromarray(np.ascontiguousarray(overlay))
    return np.asarray(Image.alpha_composite(base, top).convert("RGB"), dtype=np.uint8)


class Picamera2Camera:
    """The Raspberry Pi camera through picamera2 (Raspberry Pi OS Bookworm, libcamera).

    One preview configuration runs all the time: ``main`` at the preview size drives the
    preview window and the overlay, ``lores`` feeds live inference. A still at
    ``still_size`` uses ``switch_mode_and_capture_array``, which briefly switches mode;
    with ``still_size`` None the still is the next main-stream frame and the mode never
    changes. While an encoder runs the mode is never switched.
    """

    def __init__(self, *, preview_size: tuple[int, int], lores_size: tuple[int, int],
                 lores_format: str, main_format: str, still_size: tuple[int, int] | None,
                 colour_order: str, preview_kind: str, camera_num: int = 0,
                 frame_timeout_s: float = FRAME_TIMEOUT_S) -> None:
        self.name = "picamera2"
        self.preview_size = preview_size
        self.lores_size = lores_size
        self.lores_format = lores_format
        self.main_format = main_format
        self._still_size = still_size
        self.colour_order = colour_order
        self.preview_kind = preview_kind
        self.camera_num = camera_num
        self.frame_timeout_s = frame_timeout_s
        self.mapping: ColourMapping | None = None
        self.overlay_error: Exception | None = None
        self._module: Any = None
        self._picam2: Any = None
        self._still_config: dict[str, Any] | None = None
        self._preview_config: dict[str, Any] | None = None
        self._last_main: np.ndarray | None = None
        self._last_lores: np.ndarray | None = None
        self._last_metadata: dict[str, Any] | None = None
        self._frame_overlay: np.ndarray | None = None

    def start(self, initial_overlay: np.ndarray | None = None) -> None:
        """Open, configure and start the camera, then run the colour-order check.

        Raises:
            CameraError: When picamera2 is missing or no camera can be opened.
        """
        try:
            self._module = importlib.import_module("picamera2")
        except ImportError as e:
            raise CameraError(
                f"picamera2 cannot be imported ({e}); on Raspberry Pi OS install "
                "python3-picamera2 and create the venv with --system-site-packages, "
                "or set camera.source: replay"
            ) from e

        try:
            self._picam2 = self._module.Picamera2(self.camera_num)
        except (IndexError, RuntimeError, OSError) as e:
            raise CameraError(f"no camera {self.camera_num} could be opened ({e}); check the "
                              "ribbon cable and that libcamera lists it (rpicam-hello "
                              "--list-cameras)") from e

        picam2 = self._picam2
        config = picam2.create_preview_configuration(
            main={"size": self.preview_size, "format": self.main_format},
            lores={"size": self.lores_size, "format": self.lores_format},
            display="main", buffer_count=PREVIEW_BUFFER_COUNT,
        )
        picam2.configure(config)
        self._preview_config = config
        self._warn_on_aspect_mismatch()
        if self._still_size is not None:
            self._still_config = picam2.create_still_configuration(
                main={"size": self._still_size, "format": self.main_format},
            )

        self._start_preview()
        if initial_overlay is not None:
            try:
                self.set_overlay(initial_overlay)
            except Exception as e:  # noqa: BLE001 - any preview failure means "no overlay plane"
                self.overlay_error = e
        picam2.start()
        logger.info("Camera started: main %s %s, lores %s %s, still %s, preview %s",
                    self.main_format, self.preview_size, self.lores_format, self.lores_size,
                    self._still_size or "main stream", self.preview_kind)
        self._check_colour_order()

    def _warn_on_aspect_mismatch(self) -> None:
        """Log when the still and the preview have different aspect ratios.

        The framing guide scales the model's crop from still to preview coordinates,
        which is exact only when both streams show the same field of view.
        """
        if self._still_size is None:
            return
        preview_aspect = self.preview_size[0] / self.preview_size[1]
        still_aspect = self._still_size[0] / self._still_size[1]
        if abs(preview_aspect / still_aspect - 1.0) > ASPECT_TOLERANCE:
            logger.warning("camera.preview_size %s and camera.still_size %s have different "
                           "aspect ratios, so the framing guide may not match the crop; "
                           "use sizes with the same aspect ratio", self.preview_size,
                           self._still_size)

    def _start_preview(self) -> None:
        preview_enum = self._module.Preview
        kind = getattr(preview_enum, PREVIEW_KINDS[self.preview_kind])
        try:
            self._picam2.start_preview(kind)
        except Exception as e:  # noqa: BLE001 - Qt/DRM raise many types when no display exists
            logger.warning("Preview %s could not start (%s); running with no preview window",
                           self.preview_kind, e)
            self._picam2.start_preview(preview_enum.NULL)
            self.preview_kind = "null"

    def _check_colour_order(self) -> None:
        (main, lores), _metadata = self._picam2.capture_arrays(["main", "lores"])
        lores_yuv = lores if self.lores_format == "YUV420" else None
        self.mapping = resolve_mapping(self.main_format, self.colour_order, main, lores_yuv)

    def stop(self) -> None:
        """Stop the camera and the preview, and close the device."""
        if self._picam2 is None:
            return
        picam2 = self._picam2
        self._picam2 = None
        try:
            picam2.stop()
            picam2.stop_preview()
        except RuntimeError as e:
            logger.warning("Camera stop reported an error: %s", e)
        finally:
            picam2.close()
        logger.info("Camera stopped")

    def _require(self) -> Any:
        if self._picam2 is None:
            raise RuntimeError("camera is not started; call start() first")
        return self._picam2

    def preview_frame(self) -> np.ndarray:
        """Return the main-stream frame of the next request, as RGB.

        ``capture_arrays`` copies both streams inside picamera2's event loop, before the
        post_callback draws a fallback overlay, so recorded frames never contain it.
        """
        picam2 = self._require()
        try:
            (main, lores), metadata = picam2.capture_arrays(["main", "lores"],
                                                            wait=self.frame_timeout_s)
        except TimeoutError as e:
            picam2.cancel_all_and_flush()
            raise CameraError(f"no viewfinder frame within {self.frame_timeout_s:g} s; check "
                              "the camera cable") from e
        assert self.mapping is not None  # noqa: S101 - set by start()
        self._last_main = self.mapping.to_rgb(main)
        self._last_lores = lores
        self._last_metadata = metadata
        return self._last_main

    def lores_frame(self) -> np.ndarray:
        """Return the lores frame of the same request as the latest viewfinder frame."""
        if self._last_lores is None:
            self.preview_frame()
        assert self._last_lores is not None  # noqa: S101 - set by preview_frame()
        return lores_to_rgb(self._last_lores, self.lores_format, self.mapping)

    def still_size(self) -> tuple[int, int]:
        """Return the still size, or the preview size when stills come from the main stream."""
        return self._still_size or self.preview_size

    def capture_still(self, timeout_s: float) -> StillCapture:
        """Capture a still; on a time-out or a running encoder use the latest main frame."""
        picam2 = self._require()
        assert self.mapping is not None  # noqa: S101 - set by start()

        if self._still_config is not None and picam2.encoders:
            return self._fallback("an encoder is running, so the camera mode was not switched "
                                  "for a still")
        metadata_note = None
        try:
            if self._still_config is None:
                job = picam2.capture_arrays(["main"], wait=False)
                (array,), metadata = job.get_result(timeout=timeout_s)
            else:
                job = picam2.switch_mode_and_capture_array(self._still_config, "main", wait=False)
                array = job.get_result(timeout=timeout_s)
                # NOTE: switch_mode_and_capture_array returns no metadata, so an IMX500
                # result comes from the viewfinder frame shown when the capture started.
                metadata = self._last_metadata
                metadata_note = ("the camera metadata is that of the viewfinder frame before "
                                 "the still, because the still needed a mode switch")
        except TimeoutError:
            # NOTE: cancel_all_and_flush() drops the pending job; picamera2 documents that
            # the camera may then be left in an indeterminate mode.
            picam2.cancel_all_and_flush()
            if self._still_config is not None:
                self._restore_preview_mode()
            return self._fallback(f"still capture timed out after {timeout_s:g} s")

        image = Image.fromarray(self.mapping.to_rgb(array))
        return StillCapture(image, f"picamera2 still {image.width}x{image.height}",
                            metadata=metadata, metadata_note=metadata_note)

    def _restore_preview_mode(self) -> None:
        """Configure the preview mode again after an abandoned mode switch."""
        picam2 = self._require()
        try:
            picam2.stop()
            picam2.configure(self._preview_config)
            picam2.start()
        except RuntimeError as e:
            # The frame loop reports the camera as failing and exits after repeated errors.
            logger.error("Restoring the preview mode after a still time-out failed: %s", e)
            return
        logger.info("Preview mode restored after a still time-out")

    def _fallback(self, reason: str) -> StillCapture:
        if self._last_main is None:
            self.preview_frame()
        assert self._last_main is not None  # noqa: S101 - set by preview_frame()
        height, width = self._last_main.shape[:2]
        note = f"{reason}; the record holds the latest viewfinder frame ({width}x{height}) instead"
        logger.warning("Still capture fallback: %s", note)
        return StillCapture(Image.fromarray(self._last_main.copy()), "picamera2 viewfinder frame",
                            note, metadata=self._last_metadata)

    def set_overlay(self, overlay: np.ndarray | None) -> None:
        """Pass an RGBA overlay to ``Picamera2.set_overlay``; its exceptions propagate."""
        self._require().set_overlay(overlay)

    def draw_into_preview(self, overlay: np.ndarray | None) -> None:
        """Blend ``overlay`` into every main-stream buffer before display.

        picamera2 runs ``post_callback`` after its jobs copied the frames the app asked
        for and before the preview shows the buffer, so only the display gets the overlay.
        """
        picam2 = self._require()
        self._frame_overlay = overlay
        if overlay is None:
            picam2.post_callback = None
            return
        mapped_array = self._module.MappedArray
        indices = self.mapping.indices if self.mapping else (0, 1, 2)
        picam2.post_callback = _make_blender(mapped_array, lambda: self._frame_overlay, indices)


def _make_blender(mapped_array: Any, current: Callable[[], np.ndarray | None],
                  indices: tuple[int, int, int]) -> Callable[[Any], None]:
    """Return a picamera2 post_callback that blends the current overlay into ``main``."""
    def blend_request(request: Any) -> None:
        overlay = current()
        if overlay is None:
            return
        with mapped_array(request, "main") as mapped:
            buffer = mapped.array
            if buffer.shape[:2] != overlay.shape[:2]:
                return
            rgb = buffer[:, :, list(indices)]
            buffer[:, :, list(indices)] = blend(rgb, overlay)

    return blend_request

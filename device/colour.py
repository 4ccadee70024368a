"""Channel order of camera frames, and the start-up check that picks it.

picamera2 names formats after the libcamera/DRM fourcc, so the order in memory is the
reverse of the name (picamera2 0.3, ``request.py`` ``_get_pil_mode``):

========== =================
format     bytes per pixel
========== =================
RGB888     B, G, R
BGR888     R, G, B
XRGB8888   B, G, R, X
XBGR8888   R, G, B, X
========== =================

Some sensors and drivers deliver red and blue the other way round. The start-up check
compares the main stream with the YUV420 lores stream of the same request, whose
chroma planes the ISP computes from the true red and blue, and chooses the mapping
that agrees. The configuration can force either mapping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

#: For each RGB format, the indices that pick R, G, B out of the pixel's bytes.
DOCUMENTED_ORDER: dict[str, tuple[int, int, int]] = {
    "RGB888": (2, 1, 0),
    "BGR888": (0, 1, 2),
    "XRGB8888": (2, 1, 0),
    "XBGR8888": (0, 1, 2),
}

#: Smallest mean |R - B| difference (0..255 scale) between the two candidate mappings
#: for the check to decide; a grey scene cannot tell red from blue.
MIN_CHROMA_EVIDENCE = 4.0

#: Size both frames are reduced to before the comparison, in pixels.
_CHECK_SIZE = (64, 48)


@dataclass(frozen=True)
class ColourMapping:
    """How to turn a frame of ``pixel_format`` into R, G, B.

    Attributes:
        pixel_format: A picamera2 RGB format name.
        swap_red_blue: True when the sensor delivers red and blue opposite to the table.
        source: ``documented``, ``self-check`` or ``configuration``: why this mapping.
    """

    pixel_format: str
    swap_red_blue: bool
    source: str

    @property
    def indices(self) -> tuple[int, int, int]:
        """Byte indices of R, G, B within one pixel."""
        red, green, blue = DOCUMENTED_ORDER[self.pixel_format]
        return (blue, green, red) if self.swap_red_blue else (red, green, blue)

    def to_rgb(self, frame: np.ndarray) -> np.ndarray:
        """Return a contiguous (H, W, 3) uint8 RGB copy of a camera frame."""
        channels = 4 if self.pixel_format.startswith("X") else 3
        if frame.ndim != 3 or frame.shape[2] != channels or frame.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, {channels}) uint8 {self.pixel_format} frame, "
                             f"got {frame.shape} {frame.dtype}")
        return np.ascontiguousarray(frame[:, :, list(self.indices)])

    def describe(self) -> str:
        """Name the byte order used, for the start-up log line."""
        names = ["R", "G", "B"]
        order = ["?"] * (4 if self.pixel_format.startswith("X") else 3)
        for name, index in zip(names, self.indices, strict=True):
            order[index] = name
        return f"{self.pixel_format} bytes {','.join(o if o != '?' else 'X' for o in order)}"


def yuv420_to_rgb(frame: np.ndarray) -> np.ndarray:
    """Convert a picamera2 YUV420 (I420) array of shape (H * 3 / 2, W) to (H, W, 3) RGB.

    The preview configuration's colour space is sYCC (full-range BT.601), so these are
    the JPEG conversion coefficients.
    """
    if frame.ndim != 2 or frame.shape[0] % 3 != 0 or frame.dtype != np.uint8:
        raise ValueError(f"expected a (H * 3 / 2, W) uint8 YUV420 frame, got {frame.shape}")
    height = frame.shape[0] * 2 // 3
    width = frame.shape[1]
    luma = frame[:height].astype(np.float32)
    chroma = frame[height:].reshape(-1)
    quarter = (height // 2) * (width // 2)
    cb = chroma[:quarter].reshape(height // 2, width // 2).astype(np.float32) - 128.0
    cr = chroma[quarter:2 * quarter].reshape(height // 2, width // 2).astype(np.float32) - 128.0
    cb = cb.repeat(2, axis=0).repeat(2, axis=1)
    cr = cr.repeat(2, axis=0).repeat(2, axis=1)

    red = luma + 1.402 * cr
    green = luma - 0.344136 * cb - 0.714136 * cr
    blue = luma + 1.772 * cb
    rgb = np.stack([red, green, blue], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def rgb_to_yuv420(rgb: np.ndarray) -> np.ndarray:
    """Convert (H, W, 3) RGB with even sides to a YUV420 (I420) array, as the ISP would."""
    height, width = rgb.shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"YUV420 needs even sides, got {width}x{height}")
    values = rgb.astype(np.float32)
    red, green, blue = values[..., 0], values[..., 1], values[..., 2]
    luma = 0.299 * red + 0.587 * green + 0.114 * blue
    cb = 128.0 - 0.168736 * red - 0.331264 * green + 0.5 * blue
    cr = 128.0 + 0.5 * red - 0.418688 * green - 0.081312 * blue
    cb = cb.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    cr = cr.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    planes = [luma.reshape(-1), cb.reshape(-1), cr.reshape(-1)]
    flat = np.clip(np.rint(np.concatenate(planes)), 0, 255).astype(np.uint8)
    return flat.reshape(height * 3 // 2, width)


def lores_to_rgb(frame: np.ndarray, pixel_format: str, mapping: ColourMapping | None) -> np.ndarray:
    """Convert a lores frame to RGB: YUV420 directly, RGB formats with ``mapping``."""
    if pixel_format == "YUV420":
        return yuv420_to_rgb(frame)
    if mapping is None or mapping.pixel_format != pixel_format:
        mapping = ColourMapping(pixel_format, False, "documented")
    return mapping.to_rgb(frame)


def resolve_mapping(pixel_format: str, setting: str, main_frame: np.ndarray | None = None,
                    lores_yuv: np.ndarray | None = None) -> ColourMapping:
    """Choose the channel order of ``pixel_format`` and log the choice once.

    Args:
        pixel_format: The main stream's picamera2 format.
        setting: ``camera.colour_order``: ``auto``, ``documented`` or ``swapped``.
        main_frame: A main-stream frame for the check (``auto`` only).
        lores_yuv: The YUV420 lores frame of the same request (``auto`` only).
    """
    if pixel_format not in DOCUMENTED_ORDER:
        raise ValueError(f"unknown RGB format {pixel_format!r}; use one of "
                         f"{sorted(DOCUMENTED_ORDER)}")

    if setting in ("documented", "swapped"):
        mapping = ColourMapping(pixel_format, setting == "swapped", "configuration")
        logger.info("Colour order %s set by configuration (camera.colour_order: %s)",
                    mapping.describe(), setting)
        return mapping

    if main_frame is None or lores_yuv is None:
        mapping = ColourMapping(pixel_format, False, "documented")
        logger.info("Colour order %s from the picamera2 format table; the start-up check "
                    "needs a YUV420 lores stream", mapping.describe())
        return mapping

    swapped = _check_swap(pixel_format, main_frame, lores_yuv)
    if swapped is None:
        mapping = ColourMapping(pixel_format, False, "documented")
        logger.warning("Colour order check inconclusive (scene has too little colour); "
                       "using %s from the format table. Set camera.colour_order to force it",
                       mapping.describe())
        return mapping

    mapping = ColourMapping(pixel_format, swapped, "self-check")
    if swapped:
        logger.warning("Colour order check: the sensor delivers red and blue opposite to the "
                       "picamera2 table; using %s", mapping.describe())
    else:
        logger.info("Colour order check passed: %s", mapping.describe())
    return mapping


def _check_swap(pixel_format: str, main_frame: np.ndarray, lores_yuv: np.ndarray) -> bool | None:
    """Return whether red and blue are swapped, or None when the scene cannot tell."""
    reference = _reduce(yuv420_to_rgb(lores_yuv))
    documented = _reduce(ColourMapping(pixel_format, False, "documented").to_rgb(main_frame))
    swapped = _reduce(ColourMapping(pixel_format, True, "documented").to_rgb(main_frame))

    evidence = float(np.mean(np.abs(documented[..., 0] - documented[..., 2])))
    if evidence < MIN_CHROMA_EVIDENCE:
        return None
    error_documented = float(np.mean(np.abs(documented - reference)))
    error_swapped = float(np.mean(np.abs(swapped - reference)))
    return error_swapped < error_documented


def _reduce(rgb: np.ndarray) -> np.ndarray:
    image = Image.fromarray(rgb).resize(_CHECK_SIZE, Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32)

"""The crop-and-resize rule shared by the converter, the device app and the framing guide.

A bundle's manifest names the rule (``preprocess`` section); both tools call
:func:`model_input` so calibration, validation and the device see identical pixels.
The model takes raw uint8 RGB pixels: no normalisation happens here, because the
converter folds it into the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

#: Resampling filters a manifest may name, mapped to Pillow's.
RESAMPLING = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
}

CROP_KINDS = ("center_square",)


@dataclass(frozen=True)
class CropBox:
    """A crop rectangle in pixel coordinates of the full frame (right and bottom exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        """Width of the box in pixels."""
        return self.right - self.left

    @property
    def height(self) -> int:
        """Height of the box in pixels."""
        return self.bottom - self.top

    def as_tuple(self) -> tuple[int, int, int, int]:
        """Return ``(left, top, right, bottom)``, the box order Pillow's ``crop`` takes."""
        return (self.left, self.top, self.right, self.bottom)

    def scaled(self, sx: float, sy: float) -> CropBox:
        """Return this box in a frame scaled by ``sx`` horizontally and ``sy`` vertically."""
        return CropBox(
            round(self.left * sx), round(self.top * sy),
            round(self.right * sx), round(self.bottom * sy),
        )


@dataclass(frozen=True)
class PreprocessRule:
    """The rule that turns a frame into the model input: a centred square crop, then a resize.

    Attributes:
        width: Model input width in pixels.
        height: Model input height in pixels.
        crop: Crop kind; only ``"center_square"`` exists.
        crop_fraction: Side of the square crop as a fraction of the frame's shorter side
            (0 < fraction <= 1). The device's framing guide draws this square.
        resample: Resampling filter name, a key of :data:`RESAMPLING`.
    """

    width: int
    height: int
    crop: str = "center_square"
    crop_fraction: float = 0.8
    resample: str = "bilinear"

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"input size must be positive, got {self.width}x{self.height}")
        if self.crop not in CROP_KINDS:
            raise ValueError(f"crop must be one of {CROP_KINDS}, got {self.crop!r}")
        if not 0.0 < self.crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")
        if self.resample not in RESAMPLING:
            raise ValueError(f"resample must be one of {sorted(RESAMPLING)}, got {self.resample!r}")

    def crop_box(self, frame_width: int, frame_height: int) -> CropBox:
        """Return the square crop the model receives from a frame of the given size."""
        side = max(1, round(min(frame_width, frame_height) * self.crop_fraction))
        left = (frame_width - side) // 2
        top = (frame_height - side) // 2
        return CropBox(left, top, left + side, top + side)


def model_input(image: Image.Image, rule: PreprocessRule) -> np.ndarray:
    """Crop and resize an RGB image into the model's uint8 input, shape (height, width, 3).

    Args:
        image: An RGB Pillow image, already upright (EXIF orientation applied).
        rule: The bundle's preprocessing rule.

    Raises:
        ValueError: If the image is not in RGB mode.
    """
    if image.mode != "RGB":
        raise ValueError(f"model_input expects an RGB image, got mode {image.mode!r}")

    box = rule.crop_box(image.width, image.height)
    resized = image.resize(
        (rule.width, rule.height), RESAMPLING[rule.resample], box=box.as_tuple()
    )
    return np.asarray(resized, dtype=np.uint8)


def model_input_from_array(frame: np.ndarray, rule: PreprocessRule) -> np.ndarray:
    """Crop and resize an RGB uint8 frame array of shape (H, W, 3), as from a camera."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
    return model_input(Image.fromarray(frame), rule)

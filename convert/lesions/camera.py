"""Camera effects on a drawn frame: framing, focus, motion, exposure, colour, noise, glare, JPEG.

A clinic camera held by hand gets every one of these a little wrong; drawing them at
random keeps a model from learning any one camera's habits.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cadr_convert.lesions.shapes import gaussian_blur

#: Chance that a frame is motion-blurred (hand shake).
MOTION_BLUR_PROBABILITY = 0.3

#: Chance that a frame shows a specular glare spot from the flash or room light.
GLARE_PROBABILITY = 0.35

#: JPEG quality range of the saved files (Pillow's 1..95 scale).
JPEG_QUALITY = (55, 95)


@dataclass(frozen=True)
class CameraParams:
    """The random camera settings of one frame."""

    rotation_deg: float
    defocus_px: float
    motion_px: int
    motion_angle: float
    exposure: float
    white_balance: tuple[float, float, float]
    noise_sigma: float
    glare: bool
    jpeg_quality: int


def choose_camera(rng: np.random.Generator) -> CameraParams:
    """Draw the camera settings of one frame."""
    motion = int(rng.integers(2, 8)) if rng.random() < MOTION_BLUR_PROBABILITY else 0
    return CameraParams(
        rotation_deg=float(rng.uniform(0.0, 360.0)),
        defocus_px=float(rng.choice([0.0, rng.uniform(0.3, 1.0), rng.uniform(1.0, 2.2)])),
        motion_px=motion,
        motion_angle=float(rng.uniform(0.0, np.pi)),
        exposure=float(np.clip(np.exp(rng.normal(0.0, 0.15)), 0.7, 1.3)),
        white_balance=tuple(float(g) for g in rng.normal(1.0, 0.06, 3)),  # type: ignore[arg-type]
        noise_sigma=float(rng.uniform(0.004, 0.03)),
        glare=bool(rng.random() < GLARE_PROBABILITY),
        jpeg_quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)),
    )


def rotate_crop(rgb: np.ndarray, angle_deg: float, size: int) -> np.ndarray:
    """Rotate a square (H, W, 3) frame about its centre and cut out the central ``size`` square."""
    return np.stack([rotate_crop_layer(rgb[..., c], angle_deg, size) for c in range(3)], axis=-1)


def rotate_crop_layer(layer: np.ndarray, angle_deg: float, size: int) -> np.ndarray:
    """Rotate a square 2-D float layer about its centre and cut out the central ``size`` square."""
    rotated = Image.fromarray(np.ascontiguousarray(layer, dtype=np.float32)).rotate(
        angle_deg, Image.Resampling.BILINEAR)
    offset = (layer.shape[0] - size) // 2
    return np.asarray(rotated, dtype=np.float32)[offset:offset + size, offset:offset + size]


def apply_optics(rgb: np.ndarray, params: CameraParams) -> np.ndarray:
    """Apply defocus (Gaussian) and motion (line average) blur."""
    out = rgb
    if params.defocus_px > 0.0:
        out = gaussian_blur(out, params.defocus_px)

    if params.motion_px > 0:
        total = np.zeros_like(out)
        for step in range(params.motion_px):
            t = step - (params.motion_px - 1) / 2.0
            dy = int(round(t * np.sin(params.motion_angle)))
            dx = int(round(t * np.cos(params.motion_angle)))
            total += np.roll(out, (dy, dx), axis=(0, 1))
        out = total / params.motion_px
    return out


def apply_sensor(rng: np.random.Generator, rgb: np.ndarray, params: CameraParams) -> np.ndarray:
    """Apply glare, exposure, white balance and sensor noise; return float sRGB clipped to 0..1."""
    size = rgb.shape[0]
    out = rgb * params.exposure * np.asarray(params.white_balance, dtype=np.float32)[None, None, :]

    if params.glare:
        cy, cx = rng.uniform(0.1, 0.9, 2) * size
        radius = rng.uniform(0.03, 0.12) * size
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        spot = np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2.0 * radius ** 2))
        out = out + rng.uniform(0.15, 0.45) * spot[..., None]

    # Shot noise grows with brightness; read noise is constant.
    brightness = np.clip(out, 0.0, 1.0)
    sigma = params.noise_sigma * (0.5 + np.sqrt(brightness))
    out = out + rng.standard_normal(out.shape).astype(np.float32) * sigma
    return np.clip(out, 0.0, 1.0)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Quantise float sRGB (0..1) to 8 bits and encode it as a baseline JPEG."""
    pixels = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality,
                                             optimize=False, subsampling=2)
    return buffer.getvalue()

"""Mask primitives for the schematic lesion drawings: smooth noise, irregular blobs, rings.

Every function takes a :class:`numpy.random.Generator` and returns float32 arrays in
[0, 1], so a drawing is reproducible from its seed. Masks are computed only inside a
lesion's bounding box and added into a full-frame layer, which keeps a frame with a few
hundred small lesions fast.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Harmonics of the radius function of an irregular blob (more means a wavier border).
BLOB_HARMONICS = 5


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Return zero-mean, unit-range smooth noise with about ``cells`` bumps across the frame."""
    cells = max(2, cells)
    aspect = width / height
    grid = rng.standard_normal((cells, max(2, round(cells * aspect)))).astype(np.float32)
    field = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
    values = np.asarray(field, dtype=np.float32)
    span = float(np.abs(values).max()) or 1.0
    return values / span


def streak_noise(rng: np.random.Generator, size: int, cells_along: int, cells_across: int,
                 angle_deg: float) -> np.ndarray:
    """Return noise stretched along one direction (skin furrows, wrinkles), rotated by an angle."""
    padded = int(size * 1.5)
    grid = rng.standard_normal((cells_across, cells_along)).astype(np.float32)
    field = Image.fromarray(grid).resize((padded, padded), Image.Resampling.BICUBIC)
    rotated = field.rotate(angle_deg, resample=Image.Resampling.BILINEAR)
    offset = (padded - size) // 2
    values = np.asarray(rotated, dtype=np.float32)[offset:offset + size, offset:offset + size]
    span = float(np.abs(values).max()) or 1.0
    return values / span


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at ``edge0`` to 1 at ``edge1`` (``edge0`` may exceed ``edge1``)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


class Blob:
    """An irregular closed shape around a centre, as normalised distance in its bounding box.

    ``distance`` is 0 at the centre and 1 on the border, so rings and soft edges are
    thresholds of one array.

    Attributes:
        top: First row of the bounding box in the frame.
        left: First column of the bounding box in the frame.
        distance: Normalised distance from the centre, shape of the bounding box.
    """

    def __init__(self, rng: np.random.Generator, frame: int, centre: tuple[float, float],
                 radius: float, *, irregularity: float, elongation: float = 1.0,
                 margin: float = 1.6) -> None:
        cy, cx = centre
        reach = int(np.ceil(radius * max(1.0, elongation) * (1.0 + irregularity) * margin)) + 2
        self.top = max(0, int(cy) - reach)
        self.left = max(0, int(cx) - reach)
        bottom = min(frame, int(cy) + reach + 1)
        right = min(frame, int(cx) + reach + 1)

        ys, xs = np.mgrid[self.top:bottom, self.left:right].astype(np.float32)
        dy = ys - cy
        dx = xs - cx
        angle = rng.uniform(0.0, np.pi)
        cos_a, sin_a = np.cos(angle), np.sin(angle)
        u = (dx * cos_a + dy * sin_a) / elongation
        v = -dx * sin_a + dy * cos_a
        theta = np.arctan2(v, u)

        wobble = np.ones_like(theta)
        for k in range(2, 2 + BLOB_HARMONICS):
            amplitude = irregularity * rng.uniform(0.2, 1.0) / (k - 1)
            wobble += amplitude * np.cos(k * theta + rng.uniform(0.0, 2.0 * np.pi))
        self.distance = np.hypot(u, v) / (radius * np.maximum(wobble, 0.3))

    def disc(self, softness: float) -> np.ndarray:
        """Return a filled shape with an edge ``softness`` wide (fraction of the radius)."""
        return smoothstep(1.0 + softness / 2.0, 1.0 - softness / 2.0, self.distance)

    def ring(self, inner: float, outer: float, softness: float) -> np.ndarray:
        """Return a ring between normalised radii ``inner`` and ``outer``."""
        rise = smoothstep(inner - softness / 2.0, inner + softness / 2.0, self.distance)
        fall = smoothstep(outer + softness / 2.0, outer - softness / 2.0, self.distance)
        return rise * fall

    def add_to(self, layer: np.ndarray, patch: np.ndarray, weight: float = 1.0) -> None:
        """Combine ``patch`` into ``layer`` at this blob's box, keeping the larger value."""
        h, w = patch.shape
        view = layer[self.top:self.top + h, self.left:self.left + w]
        np.maximum(view, patch * weight, out=view)


def scatter_points(rng: np.random.Generator, count: int, frame: int,
                   clusters: int = 0, spread: float = 0.15) -> np.ndarray:
    """Return ``count`` (y, x) points, uniform or grouped around ``clusters`` centres."""
    if clusters <= 0:
        return rng.uniform(0.12 * frame, 0.88 * frame, size=(count, 2))
    centres = rng.uniform(0.15 * frame, 0.85 * frame, size=(clusters, 2))
    owners = rng.integers(0, clusters, size=count)
    points = centres[owners] + rng.normal(0.0, spread * frame, size=(count, 2))
    return np.clip(points, 0.0, frame - 1.0)


def gaussian_blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """Blur a 2-D or 3-D (H, W, C) float array over its first two axes, edges replicated.

    Pillow's Gaussian blur works on 8-bit images only, and these layers are float.
    """
    if sigma <= 0.0:
        return values
    radius = max(1, int(np.ceil(3.0 * sigma)))
    taps = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-(taps ** 2) / (2.0 * sigma * sigma))
    kernel /= kernel.sum()

    out = values.astype(np.float32, copy=False)
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        length = out.shape[axis]
        total = np.zeros_like(out)
        for offset, weight in enumerate(kernel):
            total += weight * np.take(padded, np.arange(offset, offset + length), axis=axis)
        out = total
    return out

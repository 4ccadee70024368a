"""Schematic skin: Fitzpatrick colour, mottling, furrows, pores, hair and body curvature.

These are drawings, not photographs. The colours are rough sRGB averages chosen by eye
for each Fitzpatrick type; they only need to span light to dark skin so that a model
trained on them cannot use skin colour as a shortcut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cadr_convert.lesions.shapes import gaussian_blur, smooth_noise, streak_noise

#: Mean sRGB colour (0..1) of each Fitzpatrick type I..VI, estimated by eye.
FITZPATRICK_RGB = {
    1: (0.95, 0.80, 0.72),
    2: (0.90, 0.72, 0.60),
    3: (0.80, 0.61, 0.47),
    4: (0.66, 0.47, 0.33),
    5: (0.49, 0.33, 0.23),
    6: (0.31, 0.21, 0.15),
}

#: Hair colour (sRGB 0..1) drawn on each Fitzpatrick type; light skin gets lighter hair.
HAIR_RGB = {
    1: (0.45, 0.33, 0.22),
    2: (0.30, 0.22, 0.15),
    3: (0.18, 0.13, 0.10),
    4: (0.12, 0.09, 0.07),
    5: (0.08, 0.06, 0.05),
    6: (0.05, 0.04, 0.04),
}

#: Pores per 10,000 pixels at scale 1.
PORE_DENSITY = 40.0


@dataclass(frozen=True)
class SkinParams:
    """The random choices behind one patch of skin."""

    fitzpatrick: int
    hair_count: int
    scale: float


def choose_skin(rng: np.random.Generator, scale: float) -> SkinParams:
    """Draw a Fitzpatrick type (uniform over I..VI) and a hair count."""
    fitzpatrick = int(rng.integers(1, 7))
    hair_count = int(rng.choice([0, 0, 0, 2, 6, 14]))
    return SkinParams(fitzpatrick=fitzpatrick, hair_count=hair_count, scale=scale)


def render_skin(rng: np.random.Generator, size: int, params: SkinParams) -> np.ndarray:
    """Return a (size, size, 3) float32 sRGB image of bare skin, values about 0..1."""
    base = np.array(FITZPATRICK_RGB[params.fitzpatrick], dtype=np.float32)
    base = base * rng.uniform(0.94, 1.06, size=3).astype(np.float32)

    # Mottling: broad brightness changes and faint blotches of redness.
    brightness = 1.0 + 0.05 * smooth_noise(rng, size, size, 5)
    redness = 0.04 * smooth_noise(rng, size, size, 9)
    skin = base[None, None, :] * brightness[..., None]
    skin[..., 1] -= redness * base[1]
    skin[..., 2] -= redness * base[2]

    # Furrows: two families of fine lines crossing at roughly right angles.
    angle = rng.uniform(0.0, 180.0)
    furrows = np.zeros((size, size), dtype=np.float32)
    for offset in (0.0, 75.0 + rng.uniform(0.0, 30.0)):
        lines = streak_noise(rng, size, cells_along=4, cells_across=int(size / (5 * params.scale)),
                             angle_deg=angle + offset)
        furrows += np.clip(lines, 0.4, 1.0) - 0.4
    skin *= (1.0 - 0.10 * furrows)[..., None]

    # Fine grain, then pores as soft dark dots.
    grain = rng.normal(0.0, 0.012, size=(size, size)).astype(np.float32)
    skin *= (1.0 + grain)[..., None]
    skin *= (1.0 - _pores(rng, size, params.scale))[..., None]

    if params.hair_count:
        skin = _draw_hair(rng, skin, params)
    return skin


def _pores(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    count = int(PORE_DENSITY * size * size / 10_000 / (scale * scale))
    dots = np.zeros((size, size), dtype=np.float32)
    ys = rng.integers(0, size, count)
    xs = rng.integers(0, size, count)
    dots[ys, xs] = rng.uniform(0.3, 0.9, count)
    return np.clip(gaussian_blur(dots, 0.8 * scale) * 2.5, 0.0, 0.25)


def _draw_hair(rng: np.random.Generator, skin: np.ndarray, params: SkinParams) -> np.ndarray:
    """Draw gently curved hairs as a coverage mask and blend the hair colour over the skin."""
    size = skin.shape[0]
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    direction = rng.uniform(0.0, np.pi)

    for _ in range(params.hair_count):
        length = rng.uniform(0.15, 0.45) * size
        heading = direction + rng.normal(0.0, 0.35)
        y, x = rng.uniform(0.0, size, 2)
        points = [(x, y)]
        for _step in range(6):
            heading += rng.normal(0.0, 0.12)
            x += np.cos(heading) * length / 6.0
            y += np.sin(heading) * length / 6.0
            points.append((x, y))
        draw.line(points, fill=int(rng.integers(70, 200)), width=1)

    coverage = np.asarray(mask.filter(ImageFilter.GaussianBlur(0.5)), dtype=np.float32) / 255.0
    hair = np.array(HAIR_RGB[params.fitzpatrick], dtype=np.float32)
    return skin * (1.0 - coverage[..., None]) + hair[None, None, :] * coverage[..., None]


def illumination(rng: np.random.Generator, size: int) -> np.ndarray:
    """Return a (size, size) light-falloff map: a lamp gradient times body curvature shading."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5

    angle = rng.uniform(0.0, 2.0 * np.pi)
    gradient = 1.0 + rng.uniform(0.05, 0.3) * (xs * np.cos(angle) + ys * np.sin(angle))

    # A limb or trunk seen close up is a cylinder: darker towards both edges of one axis.
    axis = rng.uniform(0.0, np.pi)
    across = -xs * np.sin(axis) + ys * np.cos(axis) - rng.uniform(-0.2, 0.2)
    curvature = 1.0 - rng.uniform(0.1, 0.6) * across ** 2

    vignette = 1.0 - rng.uniform(0.0, 0.35) * (xs ** 2 + ys ** 2)

    # Normalise so the brightest part of the frame is lit at most at full scale; the
    # camera's exposure error is applied later.
    light = gradient * curvature * vignette
    return (light / max(float(light.max()), 1.0)).astype(np.float32)

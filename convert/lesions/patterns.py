"""Schematic lesion patterns of the two classes, drawn onto a skin canvas.

Non-severe patterns: morbilliform exanthem, typical targets of erythema multiforme,
urticarial wheals and, as dark confounders, fixed drug eruption and post-inflammatory
hyperpigmentation.
Severe (SJS/TEN) patterns: confluent dusky erythema, flat atypical targets, purpuric
macules, flaccid blisters, erosions edged by wrinkled grey-white detaching epidermis, and
haemorrhagic crusts. ``docs/lesion-generator.md`` lists the
visual features of each. These are simplified drawings of textbook descriptions, not
clinical images, and no real patient photograph was used to make them.

Colour changes are multiplicative tints, so the same erythema looks pink on light skin
and dark red-brown on dark skin, as it does in photographs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cadr_convert.lesions.shapes import (
    Blob,
    gaussian_blur,
    scatter_points,
    smooth_noise,
    smoothstep,
    streak_noise,
)

# Tints multiply the skin colour channel by channel (sRGB, 0..1).
ERYTHEMA = (1.0, 0.62, 0.66)
DEEP_RED = (0.86, 0.42, 0.48)
DUSKY = (0.66, 0.44, 0.58)
DUSKY_DEEP = (0.48, 0.28, 0.42)
PURPURA = (0.66, 0.36, 0.50)
# Violaceous brown of a fixed drug eruption: close to dusky erythema, a deliberate confounder.
FIXED_ERUPTION = (0.62, 0.46, 0.50)
# Brown-grey: melanin left in the skin after inflammation. Unlike dusky, less blue than red.
HYPERPIGMENTATION = (0.70, 0.58, 0.50)

# Colours blend over the skin (sRGB, 0..1).
BLISTER_FLUID = (0.90, 0.85, 0.72)
RAW_DERMIS = (0.72, 0.19, 0.21)
DETACHED_EPIDERMIS = (0.86, 0.85, 0.81)
CRUST = (0.30, 0.10, 0.07)
WHEAL_PALLOR = (1.0, 0.93, 0.92)

#: Feature layers recorded for every image, for tests and documentation.
FEATURES = ("erythema", "target_centre", "dusky", "blister", "erosion", "detached_epidermis",
            "crust", "wheal", "hyperpigmentation", "fixed_eruption")


class Canvas:
    """A skin image being drawn on, plus one coverage layer per feature.

    Attributes:
        rgb: (size, size, 3) float32 sRGB image.
        relief: (size, size) float32 height map; raised lesions add to it and the final
            shading step turns it into highlights and shadows.
        features: Coverage in [0, 1] of each name in :data:`FEATURES`.
        scale: Lesion size multiplier of this image (camera distance).
    """

    def __init__(self, rgb: np.ndarray, scale: float) -> None:
        self.rgb = rgb
        self.size = rgb.shape[0]
        self.scale = scale
        self.relief = np.zeros(rgb.shape[:2], dtype=np.float32)
        self.features = {name: np.zeros(rgb.shape[:2], dtype=np.float32) for name in FEATURES}

    def tint(self, mask: np.ndarray, tint: tuple[float, float, float], top: int = 0,
             left: int = 0) -> None:
        """Multiply the skin under ``mask`` (a full frame or a patch at top/left) by ``tint``."""
        h, w = mask.shape
        view = self.rgb[top:top + h, left:left + w]
        factor = 1.0 - mask[..., None] * (1.0 - np.asarray(tint, dtype=np.float32))
        view *= factor

    def blend(self, mask: np.ndarray, colour: tuple[float, float, float] | np.ndarray,
              top: int = 0, left: int = 0) -> None:
        """Blend ``colour`` (one RGB triple or a per-pixel patch) over the skin under ``mask``."""
        h, w = mask.shape
        view = self.rgb[top:top + h, left:left + w]
        colour_array = np.asarray(colour, dtype=np.float32)
        view[:] = view * (1.0 - mask[..., None]) + colour_array * mask[..., None]

    def record(self, name: str, mask: np.ndarray, top: int = 0, left: int = 0) -> None:
        """Add ``mask`` to the coverage layer of feature ``name``."""
        h, w = mask.shape
        view = self.features[name][top:top + h, left:left + w]
        np.maximum(view, mask, out=view)

    def raise_surface(self, mask: np.ndarray, height: float, top: int = 0, left: int = 0) -> None:
        """Lift the relief map under ``mask`` by ``height`` (arbitrary units)."""
        h, w = mask.shape
        self.relief[top:top + h, left:left + w] += mask * height

    def blob(self, rng: np.random.Generator, cy: float, cx: float, radius: float, *,
             irregularity: float, elongation: float = 1.0) -> Blob:
        """Return an irregular shape centred at (cy, cx); ``radius`` is scaled by ``scale``."""
        return Blob(rng, self.size, (cy, cx), radius * self.scale,
                    irregularity=irregularity, elongation=elongation)


def shade_relief(canvas: Canvas, light_angle: float) -> None:
    """Turn the relief map into oblique-light shading: lit slopes brighter, far slopes darker."""
    if not canvas.relief.any():
        return
    smoothed = gaussian_blur(canvas.relief, 1.2)
    gy, gx = np.gradient(smoothed)
    slope = gx * np.cos(light_angle) + gy * np.sin(light_angle)
    canvas.rgb *= np.clip(1.0 - 0.8 * slope, 0.85, 1.15)[..., None]


# Non-severe patterns.

#: Chance that a morbilliform rash is confluent, a dark red sheet rather than patches.
CONFLUENT_RASH_PROBABILITY = 0.25

#: Chance that a non-severe image also shows post-inflammatory hyperpigmentation.
HYPERPIGMENTATION_PROBABILITY = 0.35

#: Chance that a severe image is an early, sparse presentation: one to four pale atypical
#: targets on otherwise normal skin, without confluent dusky erythema.
SPARSE_SEVERE_PROBABILITY = 0.25

#: Range of the canvas (as fractions of its side) that contains the sparse targets' centres.
SPARSE_REGION = (0.33, 0.67)

def morbilliform(canvas: Canvas, rng: np.random.Generator) -> None:
    """Draw many small pink-red macules and papules, partly merging into patches."""
    size = canvas.size
    if rng.random() < CONFLUENT_RASH_PROBABILITY:
        # A confluent rash: the patches merge into one sheet of deep erythema.
        patches = smoothstep(-0.5, 0.3, smooth_noise(rng, size, size, 3))
        strength = rng.uniform(0.5, 0.85)
    else:
        patches = smoothstep(0.1, 0.6, smooth_noise(rng, size, size, 4))
        strength = rng.uniform(0.2, 0.5)
    canvas.tint(patches * strength, ERYTHEMA)
    canvas.record("erythema", patches * strength)

    count = int(rng.integers(120, 400))
    clusters = int(rng.integers(0, 4))
    for cy, cx in scatter_points(rng, count, size, clusters, spread=0.2):
        blob = canvas.blob(rng, cy, cx, rng.uniform(2.5, 7.0), irregularity=0.25)
        mask = blob.disc(softness=0.7) * rng.uniform(0.5, 1.0)
        tint = ERYTHEMA if rng.random() < 0.75 else DEEP_RED
        canvas.tint(mask, tint, blob.top, blob.left)
        canvas.record("erythema", mask, blob.top, blob.left)
        if rng.random() < 0.35:
            canvas.raise_surface(mask, 0.6, blob.top, blob.left)


def hyperpigmentation(canvas: Canvas, rng: np.random.Generator) -> None:
    """Draw flat brown-grey patches of post-inflammatory hyperpigmentation, soft-edged.

    It is the non-severe class's dark confounder: as dark as dusky erythema on the same
    skin, but brown rather than violet and without any other severe sign.
    """
    size = canvas.size
    count = int(rng.integers(3, 12))
    for cy, cx in scatter_points(rng, count, size, clusters=int(rng.integers(0, 3))):
        blob = canvas.blob(rng, cy, cx, rng.uniform(6.0, 28.0), irregularity=rng.uniform(0.2, 0.45),
                           elongation=rng.uniform(1.0, 1.6))
        mask = blob.disc(softness=0.5) * rng.uniform(0.5, 1.0)
        canvas.tint(mask, HYPERPIGMENTATION, blob.top, blob.left)
        canvas.record("hyperpigmentation", mask, blob.top, blob.left)


def fixed_drug_eruption(canvas: Canvas, rng: np.random.Generator) -> None:
    """Draw one to three round, sharply bordered violaceous-brown patches, flat and unblistered.

    A localised fixed drug eruption is not SJS/TEN, but its dusky colour resembles it, so
    only the shape (few, round, sharp-edged patches) tells them apart.
    """
    size = canvas.size
    count = int(rng.integers(1, 4))
    for cy, cx in scatter_points(rng, count, size):
        blob = canvas.blob(rng, cy, cx, rng.uniform(14.0, 34.0),
                           irregularity=rng.uniform(0.05, 0.15), elongation=rng.uniform(1.0, 1.4))
        patch = blob.disc(softness=0.15) * rng.uniform(0.6, 1.0)
        canvas.tint(blob.ring(0.9, 1.2, 0.2) * 0.5, ERYTHEMA, blob.top, blob.left)
        canvas.tint(patch, FIXED_ERUPTION, blob.top, blob.left)
        canvas.record("fixed_eruption", patch, blob.top, blob.left)


def typical_targets(canvas: Canvas, rng: np.random.Generator) -> None:
    """Draw round targets with three sharp zones: red centre, pale oedematous ring, red rim."""
    size = canvas.size
    count = int(rng.integers(5, 16))
    for cy, cx in scatter_points(rng, count, size):
        blob = canvas.blob(rng, cy, cx, rng.uniform(10.0, 26.0),
                           irregularity=rng.uniform(0.03, 0.1))
        inner = rng.uniform(0.25, 0.38)
        middle = rng.uniform(0.58, 0.7)
        centre = blob.disc(softness=0.12) * blob.ring(-1.0, inner, 0.1)
        pale = blob.ring(inner, middle, 0.08)
        rim = blob.ring(middle, 1.0, 0.1)

        canvas.tint(rim, ERYTHEMA, blob.top, blob.left)
        canvas.tint(centre, DEEP_RED, blob.top, blob.left)
        canvas.tint(pale * 0.5, WHEAL_PALLOR, blob.top, blob.left)
        canvas.raise_surface(blob.disc(softness=0.3), 0.8, blob.top, blob.left)
        canvas.record("erythema", np.maximum(rim, centre), blob.top, blob.left)
        canvas.record("target_centre", centre, blob.top, blob.left)

    if rng.random() < 0.5:
        _scattered_macules(canvas, rng, int(rng.integers(10, 40)), ERYTHEMA)


def urticarial_wheals(canvas: Canvas, rng: np.random.Generator) -> None:
    """Draw raised pale-pink wheals with wavy polycyclic borders and a red flare around them."""
    size = canvas.size
    count = int(rng.integers(3, 9))
    for cy, cx in scatter_points(rng, count, size):
        blob = canvas.blob(rng, cy, cx, rng.uniform(16.0, 45.0),
                           irregularity=rng.uniform(0.25, 0.45), elongation=rng.uniform(1.0, 1.8))
        flare = blob.ring(0.85, 1.35, 0.35)
        body = blob.disc(softness=0.25)
        canvas.tint(flare * 0.8, ERYTHEMA, blob.top, blob.left)
        canvas.tint(body * 0.7, (0.98, 0.80, 0.82), blob.top, blob.left)
        canvas.tint(body * smoothstep(0.9, 0.3, blob.distance) * 0.6, WHEAL_PALLOR,
                    blob.top, blob.left)
        canvas.raise_surface(body, 0.8, blob.top, blob.left)
        canvas.record("erythema", flare, blob.top, blob.left)
        canvas.record("wheal", body, blob.top, blob.left)


# Severe (SJS/TEN) patterns.

def dusky_erythema(canvas: Canvas, rng: np.random.Generator) -> None:
    """Draw confluent dusky-violet erythema over a large irregular part of the frame."""
    size = canvas.size
    field = smooth_noise(rng, size, size, int(rng.integers(2, 5)))
    mask = smoothstep(rng.uniform(-0.6, 0.0), 0.4, field) * rng.uniform(0.4, 1.0)
    canvas.tint(mask, DUSKY)
    canvas.record("dusky", mask)


def atypical_targets(canvas: Canvas, rng: np.random.Generator) -> None:
    """Draw flat, irregular two-zone targets: a dusky or purpuric centre and a blurred red rim."""
    count = int(rng.integers(3, 16))
    points = scatter_points(rng, count, canvas.size, clusters=int(rng.integers(0, 3)))
    _atypical_targets(canvas, rng, points, DUSKY_DEEP, blister_probability=0.25)


def sparse_atypical_targets(canvas: Canvas, rng: np.random.Generator) -> None:
    """Draw one to four paler atypical targets: an early presentation that is easy to miss.

    The targets lie in the middle third of the canvas, inside the frame whatever the
    rotation, so that every sparse image still shows its sign.
    """
    count = int(rng.integers(1, 5))
    points = rng.uniform(SPARSE_REGION[0], SPARSE_REGION[1], size=(count, 2)) * canvas.size
    _atypical_targets(canvas, rng, points, DUSKY, blister_probability=0.0)


def _atypical_targets(canvas: Canvas, rng: np.random.Generator, points: np.ndarray,
                      centre_tint: tuple[float, float, float], *,
                      blister_probability: float) -> None:
    for cy, cx in points:
        blob = canvas.blob(rng, cy, cx, rng.uniform(9.0, 26.0), irregularity=rng.uniform(0.2, 0.4))
        centre = blob.disc(softness=0.35) * smoothstep(0.65, 0.4, blob.distance)
        halo = blob.disc(softness=0.6)
        canvas.tint(halo * 0.7, ERYTHEMA, blob.top, blob.left)
        canvas.tint(centre, centre_tint, blob.top, blob.left)
        canvas.record("dusky", centre, blob.top, blob.left)
        canvas.record("erythema", halo * 0.7, blob.top, blob.left)
        if rng.random() < blister_probability:
            _blister_in(canvas, rng, blob, 0.4)


def purpuric_macules(canvas: Canvas, rng: np.random.Generator) -> None:
    """Draw small violaceous non-blanching macules that merge in clusters."""
    count = int(rng.integers(40, 160))
    _scattered_macules(canvas, rng, count, PURPURA, feature="dusky", softness=0.9)


def flaccid_blisters(canvas: Canvas, rng: np.random.Generator) -> None:
    """Draw wrinkled, sagging blisters of yellowish fluid on dusky bases."""
    size = canvas.size
    count = int(rng.integers(1, 5))
    for cy, cx in scatter_points(rng, count, size):
        blob = canvas.blob(rng, cy, cx, rng.uniform(12.0, 32.0),
                           irregularity=rng.uniform(0.15, 0.3), elongation=rng.uniform(1.0, 1.6))
        canvas.tint(blob.ring(0.9, 1.3, 0.3) * 0.8, DUSKY, blob.top, blob.left)
        _blister_in(canvas, rng, blob, 1.0)


def erosions(canvas: Canvas, rng: np.random.Generator) -> None:
    """Draw raw red erosions edged by sheets of wrinkled grey-white detaching epidermis."""
    size = canvas.size
    count = int(rng.integers(1, 4))
    for cy, cx in scatter_points(rng, count, size):
        blob = canvas.blob(rng, cy, cx, rng.uniform(14.0, 42.0), irregularity=rng.uniform(0.3, 0.5),
                           elongation=rng.uniform(1.0, 1.7))
        h, w = blob.distance.shape
        raw = blob.disc(softness=0.2)
        mottling = 0.8 + 0.25 * smooth_noise(rng, h, w, max(3, h // 8))
        moist = mottling * (0.9 + 0.2 * rng.random((h, w)).astype(np.float32))
        dermis = np.asarray(RAW_DERMIS, dtype=np.float32)[None, None, :] * moist[..., None]
        canvas.blend(raw * 0.9, dermis, blob.top, blob.left)
        canvas.record("erosion", raw, blob.top, blob.left)

        # A moist surface shows small specular highlights.
        glints = (rng.random((h, w)) > 0.985).astype(np.float32)
        canvas.blend(gaussian_blur(glints, 0.8) * raw * 0.8, (1.0, 0.95, 0.95),
                     blob.top, blob.left)

        # The detached sheet curls back from the wound edge in fine parallel wrinkles.
        sheet = blob.ring(0.8, rng.uniform(1.1, 1.35), 0.15)
        torn = smoothstep(-0.4, 0.2, smooth_noise(rng, h, w, 3))
        wrinkles = 0.5 + 0.5 * streak_noise(rng, max(h, w), 2, max(4, max(h, w) // 3),
                                            rng.uniform(0.0, 180.0))[:h, :w]
        shade = 0.75 + 0.3 * wrinkles
        sheet_colour = np.asarray(DETACHED_EPIDERMIS, dtype=np.float32)
        epidermis = sheet_colour[None, None, :] * shade[..., None]
        coverage = sheet * torn * 0.9
        canvas.blend(coverage, epidermis, blob.top, blob.left)
        canvas.raise_surface(coverage * wrinkles, 0.8, blob.top, blob.left)
        canvas.record("detached_epidermis", coverage, blob.top, blob.left)

        if rng.random() < 0.6:
            _crusts_near(canvas, rng, blob)


def haemorrhagic_crusts(canvas: Canvas, rng: np.random.Generator) -> None:
    """Draw dark red-brown crusts of dried blood, as on eroded lips or skin."""
    size = canvas.size
    count = int(rng.integers(1, 6))
    for cy, cx in scatter_points(rng, count, size):
        blob = canvas.blob(rng, cy, cx, rng.uniform(3.0, 12.0), irregularity=0.45)
        _crust(canvas, rng, blob)


def _crusts_near(canvas: Canvas, rng: np.random.Generator, erosion: Blob) -> None:
    h, w = erosion.distance.shape
    for _ in range(int(rng.integers(1, 4))):
        cy = erosion.top + rng.uniform(0.2, 0.8) * h
        cx = erosion.left + rng.uniform(0.2, 0.8) * w
        blob = canvas.blob(rng, cy, cx, rng.uniform(3.0, 9.0), irregularity=0.45)
        _crust(canvas, rng, blob)


def _crust(canvas: Canvas, rng: np.random.Generator, blob: Blob) -> None:
    h, w = blob.distance.shape
    mask = blob.disc(softness=0.3) * 0.95
    roughness = 0.7 + 0.6 * rng.random((h, w)).astype(np.float32)
    colour = np.asarray(CRUST, dtype=np.float32)[None, None, :] * roughness[..., None]
    canvas.blend(mask, colour, blob.top, blob.left)
    canvas.raise_surface(mask * roughness, 0.7, blob.top, blob.left)
    canvas.record("crust", mask, blob.top, blob.left)


def _blister_in(canvas: Canvas, rng: np.random.Generator, blob: Blob, extent: float) -> None:
    """Fill the inner ``extent`` of ``blob`` with a flaccid blister: translucent, wrinkled roof."""
    h, w = blob.distance.shape
    roof = smoothstep(extent * 1.05, extent * 0.85, blob.distance)

    # Fluid collects at the lower edge of a flaccid blister, so it is more opaque there.
    rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    opacity = roof * (0.25 + 0.35 * rows)
    wrinkles = streak_noise(rng, max(h, w), 2, max(4, max(h, w) // 4), rng.uniform(0.0, 180.0))
    shade = 0.9 + 0.15 * wrinkles[:h, :w]
    # The roof is translucent: the fluid colour mixes with the skin beneath it.
    beneath = canvas.rgb[blob.top:blob.top + h, blob.left:blob.left + w]
    fluid = (0.55 * beneath + 0.45 * np.asarray(BLISTER_FLUID, dtype=np.float32)) * shade[..., None]
    canvas.blend(opacity, fluid, blob.top, blob.left)

    # A thin bright rim where the roof catches the light.
    rim = smoothstep(extent * 0.75, extent * 0.92, blob.distance) * roof
    canvas.blend(rim * 0.35, (1.0, 0.98, 0.94), blob.top, blob.left)
    canvas.raise_surface(roof, 1.0, blob.top, blob.left)
    canvas.record("blister", roof, blob.top, blob.left)


def _scattered_macules(canvas: Canvas, rng: np.random.Generator, count: int,
                       tint: tuple[float, float, float], *, feature: str = "erythema",
                       softness: float = 0.5) -> None:
    for cy, cx in scatter_points(rng, count, canvas.size, int(rng.integers(0, 4)), spread=0.18):
        blob = canvas.blob(rng, cy, cx, rng.uniform(2.0, 7.0), irregularity=0.35)
        mask = blob.disc(softness=softness) * rng.uniform(0.5, 1.0)
        canvas.tint(mask, tint, blob.top, blob.left)
        canvas.record(feature, mask, blob.top, blob.left)


Pattern = Callable[[Canvas, np.random.Generator], None]

#: Pattern functions of each class, by name.
NON_SEVERE_PATTERNS: dict[str, Pattern] = {
    "morbilliform": morbilliform,
    "typical_targets": typical_targets,
    "urticarial_wheals": urticarial_wheals,
    "hyperpigmentation": hyperpigmentation,
    "fixed_drug_eruption": fixed_drug_eruption,
}
SEVERE_PATTERNS: dict[str, Pattern] = {
    "dusky_erythema": dusky_erythema,
    "atypical_targets": atypical_targets,
    "sparse_atypical_targets": sparse_atypical_targets,
    "purpuric_macules": purpuric_macules,
    "flaccid_blisters": flaccid_blisters,
    "erosions": erosions,
    "haemorrhagic_crusts": haemorrhagic_crusts,
}


def choose_patterns(rng: np.random.Generator, label: str) -> list[str]:
    """Pick the patterns of one image of class ``label`` ("non_severe" or "severe").

    A non-severe image shows one or two of the rash patterns (a fixed drug eruption among
    them), and about a third also show post-inflammatory hyperpigmentation. A severe image
    always shows dusky erythema or atypical targets or purpura. A quarter are sparse early
    presentations with a few pale atypical targets alone. Of the rest, about two thirds
    also show blisters, erosions or crusts, and the others are early disease without
    epidermal detachment.
    """
    if label == "non_severe":
        names = ["morbilliform", "typical_targets", "urticarial_wheals", "fixed_drug_eruption"]
        count = 1 if rng.random() < 0.7 else 2
        chosen = [str(n) for n in rng.choice(names, size=count, replace=False)]
        if rng.random() < HYPERPIGMENTATION_PROBABILITY:
            chosen.insert(0, "hyperpigmentation")
        return chosen
    if label != "severe":
        raise ValueError(f"label must be 'non_severe' or 'severe', got {label!r}")

    if rng.random() < SPARSE_SEVERE_PROBABILITY:
        return ["sparse_atypical_targets"]

    early = ["atypical_targets", "purpuric_macules"]
    chosen = []
    if rng.random() < 0.75:
        chosen.append("dusky_erythema")
    chosen.extend(str(n) for n in rng.choice(early, size=int(rng.integers(1, 3)), replace=False))
    if rng.random() < 0.65:
        late = ["flaccid_blisters", "erosions", "haemorrhagic_crusts"]
        chosen.extend(str(n) for n in rng.choice(late, size=int(rng.integers(1, 3)), replace=False))
    return chosen

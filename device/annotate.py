"""The wording of a result and the annotated still that carries it.

:func:`result_lines` and :func:`banner_lines` are the single source of the result
wording. The camera's viewfinder overlay and the replay table use them too, so every
screen shows the same words. :func:`annotate` draws onto a copy of the still: the
framing crop the model saw, a demonstration banner above the photo when the bundle is a
demonstration model, and the result lines in a band below it, so no text covers the
lesion. The label is written out, never shown by colour alone.
"""

from __future__ import annotations

import gettext
import math
from collections.abc import Callable

from PIL import Image, ImageDraw

from cadr_device.classifier import Prediction
from cadr_device.fonts import Font, load_font
from cadr_device.i18n import noop as _noop
from cadr_device.manifest import Manifest

Gettext = Callable[[str], str]

#: Annotated images narrower than this are scaled up so the text stays legible, in pixels.
MIN_ANNOTATED_WIDTH = 640

#: Longest side of the photo part of an annotated image, in pixels; larger stills are
#: scaled down, because the record keeps the full-size still next to it.
MAX_ANNOTATED_SIDE = 2048

#: Text height as a fraction of the photo's geometric mean side, sqrt(width * height), so
#: a 2000 x 200 strip gets text sized like a 640 x 640 photo rather than a 2000-wide one.
FONT_SIZE_FRACTION = 1 / 30

#: Smallest text size, in pixels.
MIN_FONT_PX = 16

CROP_BOX_COLOUR = (255, 214, 0)
PANEL_COLOUR = (255, 255, 255)
TEXT_COLOUR = (0, 0, 0)
SEVERE_COLOUR = (178, 0, 0)
NON_SEVERE_COLOUR = (0, 102, 51)
BANNER_COLOUR = (204, 51, 0)
BANNER_TEXT_COLOUR = (255, 255, 255)


# Message ids shared with the overlay and the CLI; translated where they are shown.
SEVERE = _noop("severe")
NON_SEVERE = _noop("non-severe")
RESULT = _noop("Result: {label}")
PROBABILITY = _noop("Probability of severe reaction: {probability:.3f}")
THRESHOLD = _noop("Threshold {threshold:.3f} (chosen for {sensitivity:.0f}% sensitivity)")
NOT_A_DIAGNOSIS = _noop("Screening aid, not a diagnosis")
DEMONSTRATION = _noop("Demonstration model – not for clinical use")
MODEL = _noop("Model: {model_id}")


def label_text(prediction: Prediction, _: Gettext) -> str:
    """Return the translated decision: "severe" or "non-severe"."""
    return _(SEVERE) if prediction.positive else _(NON_SEVERE)


def threshold_text(manifest: Manifest, _: Gettext, threshold: float | None = None) -> str:
    """Return the operating point, e.g. "Threshold 0.370 (chosen for 90% sensitivity)".

    ``threshold`` is the one a prediction used (the IMX500 sensor has its own for the
    same target sensitivity); None shows the bundle's.
    """
    if threshold is None:
        threshold = manifest.decision.threshold
    return _(THRESHOLD).format(threshold=threshold,
                               sensitivity=manifest.decision.target_sensitivity * 100)


def result_lines(prediction: Prediction, manifest: Manifest, _: Gettext) -> list[str]:
    """Return the result as display lines: decision, probability, threshold, disclaimer."""
    return [
        _(RESULT).format(label=label_text(prediction, _)),
        _(PROBABILITY).format(probability=prediction.probability),
        threshold_text(manifest, _, prediction.threshold),
        _(NOT_A_DIAGNOSIS),
    ]


def banner_lines(manifest: Manifest, _: Gettext) -> list[str]:
    """Return the warning lines every screen shows for this bundle (empty for clinical ones)."""
    return [_(DEMONSTRATION)] if manifest.demonstration_only else []


def annotate(image: Image.Image, prediction: Prediction, manifest: Manifest,
             translator: gettext.NullTranslations, font: Font | None = None) -> Image.Image:
    """Return a copy of an upright RGB still with the crop box, result and warnings drawn.

    Args:
        image: The still the model input was cut from, upright, any size.
        prediction: The classification of that still.
        manifest: The bundle's manifest (crop rule, operating point, demonstration flag).
        translator: The display language.
        font: The font to draw with; by default :func:`~cadr_device.fonts.load_font` at a
            size that follows the image width.
    """
    _ = translator.gettext
    photo, scale = _display_copy(image)
    mean_side = math.sqrt(photo.width * photo.height)
    font = font or load_font(max(MIN_FONT_PX, round(mean_side * FONT_SIZE_FRACTION)))
    measure = ImageDraw.Draw(photo)
    margin = max(4, round(_line_height(font) * 0.5))
    max_text_width = photo.width - 2 * margin

    # Crop box first, on the photo itself: it is the square the model saw.
    box = manifest.preprocess.crop_box(image.width, image.height).scaled(scale, scale)
    outline = max(2, photo.width // 300)
    measure.rectangle(box.as_tuple(), outline=CROP_BOX_COLOUR, width=outline)

    banner = _wrap_all(measure, banner_lines(manifest, _), font, max_text_width)
    lines = [*result_lines(prediction, manifest, _), _(MODEL).format(model_id=manifest.model_id)]
    result = _wrap_all(measure, lines, font, max_text_width)
    banner_height = _block_height(banner, font, margin)
    panel_height = _block_height(result, font, margin)

    canvas = Image.new("RGB", (photo.width, banner_height + photo.height + panel_height),
                       PANEL_COLOUR)
    canvas.paste(photo, (0, banner_height))
    draw = ImageDraw.Draw(canvas)

    if banner:
        draw.rectangle((0, 0, canvas.width, banner_height), fill=BANNER_COLOUR)
        _draw_block(draw, banner, font, margin=margin, top=0, colour=BANNER_TEXT_COLOUR)

    decision_colour = SEVERE_COLOUR if prediction.positive else NON_SEVERE_COLOUR
    _draw_block(draw, result, font, margin=margin, top=banner_height + photo.height,
                colour=TEXT_COLOUR, first_colour=decision_colour)
    return canvas


def _display_copy(image: Image.Image) -> tuple[Image.Image, float]:
    """Return an RGB copy scaled into the annotated size range, and the scale factor."""
    rgb = image.convert("RGB") if image.mode != "RGB" else image.copy()
    scale = 1.0
    if rgb.width < MIN_ANNOTATED_WIDTH:
        scale = MIN_ANNOTATED_WIDTH / rgb.width
    if max(rgb.width, rgb.height) * scale > MAX_ANNOTATED_SIDE:
        scale = MAX_ANNOTATED_SIDE / max(rgb.width, rgb.height)
    if scale != 1.0:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    return rgb, scale


def _line_height(font: Font) -> int:
    left, top, right, bottom = font.getbbox("Ag重症")
    return int(bottom - min(top, 0)) + 4


def _block_height(lines: list[str], font: Font, margin: int) -> int:
    return 0 if not lines else len(lines) * _line_height(font) + 2 * margin


def _draw_block(draw: ImageDraw.ImageDraw, lines: list[str], font: Font, *, margin: int,
                top: int, colour: tuple[int, int, int],
                first_colour: tuple[int, int, int] | None = None) -> None:
    y = top + margin
    for number, line in enumerate(lines):
        fill = first_colour if number == 0 and first_colour else colour
        draw.text((margin, y), line, font=font, fill=fill)
        y += _line_height(font)


def _wrap_all(draw: ImageDraw.ImageDraw, lines: list[str], font: Font, width: int) -> list[str]:
    wrapped: list[str] = []
    for line in lines:
        wrapped.extend(wrap_text(draw, line, font, width))
    return wrapped


def wrap_text(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` pixels.

    English breaks at spaces; Japanese, which has none, breaks between characters. A
    word wider than the line is broken between characters too.
    """
    if draw.textlength(text, font=font) <= width:
        return [text]

    lines: list[str] = []
    current = ""
    for token in _tokens(text):
        candidate = current + token
        if current and draw.textlength(candidate.rstrip(), font=font) > width:
            lines.append(current.rstrip())
            current = token.lstrip()
        else:
            current = candidate
        while draw.textlength(current, font=font) > width and len(current) > 1:
            cut = _longest_fitting_prefix(draw, current, font, width)
            lines.append(current[:cut])
            current = current[cut:]
    if current.strip():
        lines.append(current.rstrip())
    return lines


def _tokens(text: str) -> list[str]:
    """Split into words with their trailing space, or into characters when there is no space."""
    if " " not in text:
        return list(text)
    words = text.split(" ")
    return [word + " " for word in words[:-1]] + [words[-1]]


def _longest_fitting_prefix(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> int:
    cut = 1
    while cut < len(text) and draw.textlength(text[:cut + 1], font=font) <= width:
        cut += 1
    return cut

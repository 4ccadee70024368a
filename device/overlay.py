"""The viewfinder overlay: an RGBA (H, W, 4) uint8 image drawn with Pillow at the preview size.

It shows, from top to bottom: the demonstration banner (for a demonstration bundle),
failure messages, the framing guide (exactly the square the model sees), the result
panel after a capture, the live severity bar, and the status line. picamera2 blends it
over the preview with ``set_overlay``; :func:`cadr_device.camera.blend` does the same for
rendered files and for previews without an overlay plane.

The decision is never shown by colour alone: a severe result has a warning triangle and
a hatched bar, a non-severe one an open circle, and both are written out.
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from cadr_device.annotate import banner_lines, result_lines, wrap_text
from cadr_device.classifier import Prediction
from cadr_device.fonts import Font, load_font
from cadr_device.i18n import noop as _noop
from cadr_device.live import LiveReading
from cadr_device.manifest import Manifest
from cadr_device.preprocess import CropBox, PreprocessRule
from cadr_device.status import SEE_LOG, Problem

STATUS_LINE = _noop("Model {model_id} | {backend} | {inference_ms} ms | {fps} fps")
NO_MODEL_STATUS = _noop("No model | {fps} fps")
FRAME_HINT = _noop("Place the lesion inside the frame")
LIVE_LABEL = _noop("Live estimate {probability:.3f} – press the button to record")
CAPTURE_LABEL = _noop("Capture {capture_id}")
STILL_FALLBACK = _noop("No still image was captured; the viewfinder frame was recorded instead.")

GUIDE_COLOUR = (255, 214, 0, 255)
OUTSIDE_SHADE = (0, 0, 0, 90)
TEXT_COLOUR = (255, 255, 255, 255)
TEXT_BACKGROUND = (0, 0, 0, 170)
PANEL_BACKGROUND = (255, 255, 255, 235)
PANEL_TEXT = (0, 0, 0, 255)
SEVERE_COLOUR = (178, 0, 0, 255)
NON_SEVERE_COLOUR = (0, 102, 51, 255)
BANNER_COLOUR = (204, 51, 0, 235)
PROBLEM_COLOUR = (120, 0, 0, 235)
BAR_TRACK = (255, 255, 255, 120)
THRESHOLD_MARK = (255, 255, 255, 255)

#: Framing guide line width as a fraction of the preview's shorter side.
GUIDE_WIDTH_FRACTION = 1 / 240

#: Live bar width as a fraction of the preview width.
BAR_WIDTH_FRACTION = 0.4

#: Spacing of the hatch lines that mark a severe bar or icon, in pixels.
HATCH_SPACING_PX = 8


@dataclass(frozen=True)
class ShownResult:
    """A capture's outcome as the viewfinder shows it."""

    capture_id: str
    prediction: Prediction | None
    still_fallback: bool = False


@dataclass(frozen=True)
class ViewState:
    """Everything one overlay shows.

    Attributes:
        still_size: Size of the still the model sees, for the framing guide; None hides it.
        backend: Back-end name for the status line ("CPU", "Edge TPU", "IMX500").
        inference_ms: Latest invoke time, or None before the first inference.
        fps: Viewfinder frames per second, or None before it is measured.
        live: The smoothed live reading, or None when live mode is off.
        result: The latest capture's outcome while its panel is on screen.
        problems: Failure states in force, most serious first.
    """

    still_size: tuple[int, int] | None = None
    backend: str | None = None
    inference_ms: float | None = None
    fps: float | None = None
    live: LiveReading | None = None
    result: ShownResult | None = None
    problems: tuple[Problem, ...] = field(default_factory=tuple)


def framing_box(rule: PreprocessRule, still_size: tuple[int, int],
                preview_size: tuple[int, int]) -> CropBox:
    """Map the model's crop of a still onto the preview.

    Both streams show the same field of view (picamera2 keeps the aspect ratio of each
    stream), so the crop box scales with the ratio of the two sizes.
    """
    box = rule.crop_box(*still_size)
    return box.scaled(preview_size[0] / still_size[0], preview_size[1] / still_size[1])


class OverlayRenderer:
    """Draws :class:`ViewState` into RGBA overlays for one bundle and language.

    Args:
        manifest: The bundle's manifest, or None when no model is loaded.
        translator: Translations for on-screen text.
        font_size_px: Text height in pixels.
    """

    def __init__(self, manifest: Manifest | None, translator: gettext.NullTranslations,
                 font_size_px: int) -> None:
        self.manifest = manifest
        self.gettext = translator.gettext
        self.font: Font = load_font(font_size_px)
        self.line_height = font_size_px + max(4, font_size_px // 3)
        self.margin = max(6, font_size_px // 2)

    def render(self, size: tuple[int, int], state: ViewState) -> np.ndarray:
        """Return the overlay for a preview of ``size`` (width, height) as (H, W, 4) uint8."""
        canvas = Image.new("RGBA", size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(canvas)

        # ImageDraw replaces RGBA pixels instead of blending, so the guide and its shade
        # go first and every later element is drawn on top of them.
        if self.manifest is not None and state.still_size is not None:
            self._draw_guide(draw, size, framing_box(self.manifest.preprocess,
                                                     state.still_size, size))
        top = self._draw_banner(draw, size)
        top = self._draw_problems(draw, size, state.problems, top)
        bottom = self._draw_status(draw, size, state)
        if state.live is not None and state.result is None:
            bottom = self._draw_live_bar(draw, size, state.live, bottom)
        if state.result is not None:
            self._draw_result(draw, size, state.result, top, bottom)
        elif not state.problems and state.live is None:
            self._draw_text_line(draw, (self.margin, top + self.margin),
                                 self.gettext(FRAME_HINT))
        return np.asarray(canvas, dtype=np.uint8).copy()

    def _draw_banner(self, draw: ImageDraw.ImageDraw, size: tuple[int, int]) -> int:
        if self.manifest is None:
            return 0
        lines = self._wrap(draw, banner_lines(self.manifest, self.gettext), size[0])
        if not lines:
            return 0
        height = len(lines) * self.line_height + 2 * self.margin
        draw.rectangle((0, 0, size[0], height), fill=BANNER_COLOUR)
        self._draw_lines(draw, lines, self.margin, self.margin, TEXT_COLOUR)
        return height

    def _draw_problems(self, draw: ImageDraw.ImageDraw, size: tuple[int, int],
                       problems: tuple[Problem, ...], top: int) -> int:
        if not problems:
            return top
        texts = [p.message(self.gettext) for p in problems] + [self.gettext(SEE_LOG)]
        lines = self._wrap(draw, texts, size[0] - 4 * self.margin)
        height = len(lines) * self.line_height + 2 * self.margin
        box = (self.margin, top + self.margin, size[0] - self.margin, top + self.margin + height)
        draw.rectangle(box, fill=PROBLEM_COLOUR, outline=TEXT_COLOUR, width=3)
        # A cross marks the box as a failure independently of its colour.
        cross = self.line_height // 2
        x0, y0 = box[2] - self.margin - cross, box[1] + self.margin
        draw.line((x0, y0, x0 + cross, y0 + cross), fill=TEXT_COLOUR, width=3)
        draw.line((x0, y0 + cross, x0 + cross, y0), fill=TEXT_COLOUR, width=3)
        self._draw_lines(draw, lines, 2 * self.margin, box[1] + self.margin, TEXT_COLOUR)
        return box[3]

    def _draw_guide(self, draw: ImageDraw.ImageDraw, size: tuple[int, int], box: CropBox) -> None:
        # Shade outside the crop so that the model's square is easy to see.
        for rect in ((0, 0, size[0], box.top), (0, box.bottom, size[0], size[1]),
                     (0, box.top, box.left, box.bottom), (box.right, box.top, size[0], box.bottom)):
            if rect[2] > rect[0] and rect[3] > rect[1]:
                draw.rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), fill=OUTSIDE_SHADE)
        width = max(2, round(min(size) * GUIDE_WIDTH_FRACTION))
        draw.rectangle((box.left, box.top, box.right - 1, box.bottom - 1), outline=GUIDE_COLOUR,
                       width=width)

    def _status_text(self, state: ViewState) -> str:
        fps = "-" if state.fps is None else f"{state.fps:.1f}"
        if self.manifest is None:
            return self.gettext(NO_MODEL_STATUS).format(fps=fps)
        inference = "-" if state.inference_ms is None else f"{state.inference_ms:.1f}"
        return self.gettext(STATUS_LINE).format(
            model_id=self.manifest.model_id, backend=state.backend or "-",
            inference_ms=inference, fps=fps)

    def _draw_status(self, draw: ImageDraw.ImageDraw, size: tuple[int, int],
                     state: ViewState) -> int:
        y = size[1] - self.line_height - self.margin
        self._draw_text_line(draw, (self.margin, y), self._status_text(state))
        return y

    def _draw_live_bar(self, draw: ImageDraw.ImageDraw, size: tuple[int, int],
                       live: LiveReading, bottom: int) -> int:
        assert self.manifest is not None  # noqa: S101 - live mode needs a model
        bar_height = max(10, self.line_height // 2)
        width = round(size[0] * BAR_WIDTH_FRACTION)
        left = self.margin
        top = bottom - self.margin - bar_height
        draw.rectangle((left, top, left + width, top + bar_height), fill=BAR_TRACK)
        filled = round(width * live.probability)
        colour = SEVERE_COLOUR if live.positive else NON_SEVERE_COLOUR
        if filled > 0:
            draw.rectangle((left, top, left + filled, top + bar_height), fill=colour)
            if live.positive:
                _hatch(draw, (left, top, left + filled, top + bar_height))
        mark = left + round(width * self.manifest.decision.threshold)
        draw.line((mark, top - 4, mark, top + bar_height + 4), fill=THRESHOLD_MARK, width=3)

        label_y = top - self.line_height - 2
        self._draw_text_line(draw, (left, label_y),
                             self.gettext(LIVE_LABEL).format(probability=live.probability))
        return label_y

    def _draw_result(self, draw: ImageDraw.ImageDraw, size: tuple[int, int],
                     result: ShownResult, top: int, bottom: int) -> None:
        lines = [self.gettext(CAPTURE_LABEL).format(capture_id=result.capture_id)]
        if result.prediction is not None and self.manifest is not None:
            lines = result_lines(result.prediction, self.manifest, self.gettext) + lines
        if result.still_fallback:
            lines.append(self.gettext(STILL_FALLBACK))
        icon = 2 * self.line_height
        panel_width = min(size[0] - 2 * self.margin, max(size[0] * 2 // 3, 320))
        wrapped = self._wrap(draw, lines, panel_width - icon - 3 * self.margin)
        height = len(wrapped) * self.line_height + 2 * self.margin
        height = max(height, icon + 2 * self.margin)
        left = (size[0] - panel_width) // 2
        panel_top = max(top + self.margin, min((size[1] - height) // 2, bottom - height - 4))
        draw.rectangle((left, panel_top, left + panel_width, panel_top + height),
                       fill=PANEL_BACKGROUND)

        icon_box = (left + self.margin, panel_top + self.margin,
                    left + self.margin + icon, panel_top + self.margin + icon)
        if result.prediction is not None:
            _decision_icon(draw, icon_box, result.prediction.positive)
        first = SEVERE_COLOUR if result.prediction and result.prediction.positive else (
            NON_SEVERE_COLOUR if result.prediction else PANEL_TEXT)
        text_left = icon_box[2] + self.margin
        y = panel_top + self.margin
        for number, line in enumerate(wrapped):
            fill = first if number == 0 else PANEL_TEXT
            draw.text((text_left, y), line, font=self.font, fill=fill)
            y += self.line_height

    def _draw_text_line(self, draw: ImageDraw.ImageDraw, origin: tuple[int, int],
                        text: str) -> None:
        left, top, right, bottom = draw.textbbox(origin, text, font=self.font)
        pad = 4
        draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=TEXT_BACKGROUND)
        draw.text(origin, text, font=self.font, fill=TEXT_COLOUR)

    def _draw_lines(self, draw: ImageDraw.ImageDraw, lines: list[str], left: int, top: int,
                    colour: tuple[int, int, int, int]) -> None:
        y = top
        for line in lines:
            draw.text((left, y), line, font=self.font, fill=colour)
            y += self.line_height

    def _wrap(self, draw: ImageDraw.ImageDraw, lines: list[str], width: int) -> list[str]:
        wrapped: list[str] = []
        for line in lines:
            wrapped.extend(wrap_text(draw, line, self.font, max(20, width - 2 * self.margin)))
        return wrapped


def _hatch(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int]) -> None:
    """Draw diagonal white lines inside ``box``: the pattern that marks "severe"."""
    left, top, right, bottom = box
    height = bottom - top
    for x in range(left - height, right, HATCH_SPACING_PX):
        start = (max(x, left), top + max(0, left - x))
        end = (min(x + height, right), bottom - max(0, x + height - right))
        draw.line((*start, *end), fill=(255, 255, 255, 255), width=2)


def _decision_icon(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int],
                   positive: bool) -> None:
    """Draw a hatched warning triangle with "!" (severe) or an open circle (non-severe)."""
    left, top, right, bottom = box
    if positive:
        triangle = [((left + right) // 2, top), (right, bottom), (left, bottom)]
        draw.polygon(triangle, fill=SEVERE_COLOUR, outline=PANEL_TEXT)
        centre = (left + right) // 2
        stroke = max(3, (right - left) // 10)
        draw.line((centre, top + (bottom - top) // 3, centre, bottom - (bottom - top) // 4),
                  fill=(255, 255, 255, 255), width=stroke)
        dot = bottom - (bottom - top) // 8
        draw.ellipse((centre - stroke, dot - stroke, centre + stroke, dot + stroke),
                     fill=(255, 255, 255, 255))
    else:
        width = max(3, (right - left) // 8)
        draw.ellipse(box, outline=NON_SEVERE_COLOUR, width=width)

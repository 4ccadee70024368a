"""The viewfinder overlay: framing guide, banner, result panel, live bar and failure states."""

from __future__ import annotations

import gettext
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from camera_support import GUIDE_RGB

from cadr_device.classifier import Prediction
from cadr_device.i18n import translator
from cadr_device.live import LiveReading
from cadr_device.manifest import Decision, Manifest, ModelSpec, SelfTest, SelfTestCase
from cadr_device.overlay import (
    PROBLEM_COLOUR,
    SEVERE_COLOUR,
    OverlayRenderer,
    ShownResult,
    ViewState,
    framing_box,
)
from cadr_device.preprocess import PreprocessRule
from cadr_device.status import Condition, Problem

PREVIEW = (640, 480)
STILL = (2304, 1728)


def manifest(demonstration: bool = False, crop_fraction: float = 0.8) -> Manifest:
    return Manifest(
        name="overlay-test", version="1.2.3", created="2026-01-01T00:00:00Z",
        demonstration_only=demonstration, intended_use="tests",
        labels=("non_severe", "severe"), positive_label="severe",
        model=ModelSpec("model.tflite", "uint8", "RGB", 1.0, 0, "sigmoid", 1),
        preprocess=PreprocessRule(96, 96, crop_fraction=crop_fraction),
        decision=Decision(0.37, 0.9, 0.91, 0.7, 200),
        selftest=SelfTest((SelfTestCase("selftest/golden_00.png", 0.5),), 0.02),
        files={"model.tflite": "0" * 64}, min_app_version="0.1.0",
    )


def render(state: ViewState, bundle: Manifest | None = None,
           translations: gettext.NullTranslations | None = None) -> np.ndarray:
    renderer = OverlayRenderer(bundle if bundle is not None else manifest(),
                               translations or gettext.NullTranslations(), 18)
    return renderer.render(PREVIEW, state)


def prediction(probability: float) -> Prediction:
    positive = probability >= 0.37
    return Prediction(probability, 0.37, positive, "severe" if positive else "non_severe", 3.0)


def count_colour(overlay: np.ndarray, rgb: tuple[int, ...]) -> int:
    return int(np.all(overlay[..., :3] == rgb, axis=-1).sum())


def test_overlay_shape_and_dtype() -> None:
    overlay = render(ViewState(still_size=STILL))

    assert overlay.shape == (480, 640, 4)
    assert overlay.dtype == np.uint8


@pytest.mark.parametrize("crop_fraction", [0.5, 0.8, 1.0])
def test_guide_drawn_at_model_crop(crop_fraction: float) -> None:
    bundle = manifest(crop_fraction=crop_fraction)
    box = framing_box(bundle.preprocess, STILL, PREVIEW)

    overlay = render(ViewState(still_size=STILL), bundle)

    middle_y = (box.top + box.bottom) // 2
    middle_x = (box.left + box.right) // 2
    assert tuple(overlay[middle_y, box.left, :3]) == GUIDE_RGB
    assert tuple(overlay[middle_y, box.right - 1, :3]) == GUIDE_RGB
    assert tuple(overlay[box.top, middle_x, :3]) == GUIDE_RGB
    assert tuple(overlay[box.bottom - 1, middle_x, :3]) == GUIDE_RGB
    assert overlay[middle_y, middle_x, 3] == 0


def test_framing_box_matches_still_crop() -> None:
    rule = PreprocessRule(96, 96, crop_fraction=0.8)

    box = framing_box(rule, STILL, PREVIEW)

    # 0.8 of the 1728-pixel side is 1382 pixels, 384 in the preview (scale 640 / 2304).
    assert box.width == 384
    assert box.height == 384
    assert (box.left, box.top) == (128, 48)


def test_outside_crop_is_shaded() -> None:
    overlay = render(ViewState(still_size=STILL))

    assert overlay[240, 20, 3] > 0


def test_demonstration_banner_on_every_state() -> None:
    bundle = manifest(demonstration=True)
    states = [
        ViewState(still_size=STILL),
        ViewState(still_size=STILL, result=ShownResult("c1", prediction(0.9))),
        ViewState(problems=(Problem(Condition.DISK_FULL, "full"),)),
    ]

    for state in states:
        overlay = render(state, bundle)
        assert count_colour(overlay[:20], (204, 51, 0)) > 1000


def test_no_banner_for_clinical_bundle() -> None:
    overlay = render(ViewState(still_size=STILL), manifest(demonstration=False))

    assert count_colour(overlay, (204, 51, 0)) == 0


def test_severe_and_non_severe_differ_in_shape() -> None:
    severe = render(ViewState(still_size=STILL, result=ShownResult("c1", prediction(0.9))))
    non_severe = render(ViewState(still_size=STILL, result=ShownResult("c2", prediction(0.1))))

    # The severe icon is a filled triangle, the non-severe one an open ring: compare the
    # filled area of each icon's colour, which differs even in greyscale.
    severe_fill = count_colour(severe, SEVERE_COLOUR[:3])
    ring = count_colour(non_severe, (0, 102, 51))
    assert severe_fill > 0
    assert ring > 0
    assert count_colour(non_severe, SEVERE_COLOUR[:3]) == 0


def test_result_text_uses_shared_wording(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[str] = []
    import PIL.ImageDraw

    original = PIL.ImageDraw.ImageDraw.text

    def spy(self: Any, xy: Any, text: str, *args: Any, **kwargs: Any) -> None:
        drawn.append(text)
        original(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(PIL.ImageDraw.ImageDraw, "text", spy)
    render(ViewState(still_size=STILL, result=ShownResult("cap-1", prediction(0.62))),
           manifest(demonstration=True))

    # Lines may wrap at the preview width, so compare the words in order.
    text = " ".join(drawn)
    assert "Result: severe" in text
    assert "Probability of severe reaction: 0.620" in text
    assert "Threshold 0.370 (chosen for 90% sensitivity)" in text
    assert "Screening aid, not a diagnosis" in text
    assert "Demonstration model – not for clinical use" in text
    assert "Capture cap-1" in text


def test_status_line_names_model_and_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[str] = []
    import PIL.ImageDraw

    original = PIL.ImageDraw.ImageDraw.text

    def spy(self: Any, xy: Any, text: str, *args: Any, **kwargs: Any) -> None:
        drawn.append(text)
        original(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(PIL.ImageDraw.ImageDraw, "text", spy)
    render(ViewState(still_size=STILL, backend="Edge TPU", inference_ms=12.34, fps=14.96))

    assert "Model overlay-test@1.2.3 | Edge TPU | 12.3 ms | 15.0 fps" in drawn


def test_failure_state_is_visible() -> None:
    for condition in Condition:
        problem = Problem(condition, "detail", {"capture_id": "c9", "name": "a.jpg"})
        overlay = render(ViewState(problems=(problem,)), manifest())
        assert count_colour(overlay, PROBLEM_COLOUR[:3]) > 2000, condition


def test_no_model_still_draws_status() -> None:
    renderer = OverlayRenderer(None, gettext.NullTranslations(), 18)
    problem = Problem(Condition.NO_MODEL, "bundle missing")

    overlay = renderer.render(PREVIEW, ViewState(problems=(problem,)))

    assert overlay[..., 3].any()
    assert count_colour(overlay, PROBLEM_COLOUR[:3]) > 2000
    assert count_colour(overlay, GUIDE_RGB) == 0


def test_live_bar_hatched_above_threshold() -> None:
    high = LiveReading(0.8, 0.8, 5, 3.0, True)
    low = LiveReading(0.2, 0.2, 5, 3.0, False)

    high_overlay = render(ViewState(still_size=STILL, live=high))
    low_overlay = render(ViewState(still_size=STILL, live=low))

    # The hatch draws opaque white lines through the severe bar; the low bar has none.
    assert count_colour(high_overlay, SEVERE_COLOUR[:3]) > 0
    assert count_colour(low_overlay, SEVERE_COLOUR[:3]) == 0
    assert opaque_white_inside(high_overlay, SEVERE_COLOUR[:3]) > 0
    assert opaque_white_inside(low_overlay, (0, 102, 51)) == 0


def opaque_white_inside(overlay: np.ndarray, bar_rgb: tuple[int, ...]) -> int:
    """Count opaque white pixels inside the bounding box of the bar's colour."""
    rows, columns = np.nonzero(np.all(overlay[..., :3] == bar_rgb, axis=-1))
    box = overlay[rows.min():rows.max() + 1, columns.min():columns.max() + 1]
    return int(np.all(box == (255, 255, 255, 255), axis=-1).sum())


def test_japanese_text_rendered() -> None:
    overlay_ja = render(ViewState(still_size=STILL, result=ShownResult("c1", prediction(0.9))),
                        translations=translator("ja"))
    overlay_en = render(ViewState(still_size=STILL, result=ShownResult("c1", prediction(0.9))))

    assert not np.array_equal(overlay_ja, overlay_en)


def test_manifest_helper_is_valid() -> None:
    bundle = replace(manifest(), version="2.0.0")

    assert bundle.model_id == "overlay-test@2.0.0"

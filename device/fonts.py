"""Finding a font that draws Japanese and English text on images.

The device image installs Debian's ``fonts-noto-cjk`` (Noto Sans CJK). Without it the
app falls back to DejaVu Sans, which has no Japanese glyphs, and then to Pillow's
built-in font; either fallback logs one warning naming the missing package.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from PIL import ImageFont

logger = logging.getLogger(__name__)

#: Debian package that provides the preferred font.
CJK_FONT_PACKAGE = "fonts-noto-cjk"

#: (font file, face index) in order of preference. Face 0 of Debian's NotoSansCJK
#: collections is the Japanese (JP) face, which draws Japanese kanji forms.
CJK_FONTS = (
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 0),
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Medium.ttc"), 0),
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"), 0),
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJKjp-Regular.otf"), 0),
)

FALLBACK_FONTS = (
    (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"), 0),
)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def load_font(size_px: int) -> Font:
    """Return a font of ``size_px`` pixels that can draw Japanese when the system has one.

    Raises:
        ValueError: If ``size_px`` is not positive.
    """
    if size_px <= 0:
        raise ValueError(f"font size must be positive, got {size_px}")

    path, index = _font_file()
    if path is None:
        return ImageFont.load_default(size_px)
    return ImageFont.truetype(str(path), size_px, index=index)


def has_cjk_font() -> bool:
    """Return True when a Noto Sans CJK font is installed."""
    path, _ = _font_file()
    return path is not None and any(path == candidate for candidate, _ in CJK_FONTS)


@functools.cache
def _font_file() -> tuple[Path | None, int]:
    """Pick the font file once per process, so the fallback warning is logged once."""
    for path, index in CJK_FONTS:
        if path.is_file():
            logger.debug("Using font %s (face %d)", path, index)
            return path, index

    for path, index in FALLBACK_FONTS:
        if path.is_file():
            logger.warning("Noto Sans CJK not found; Japanese text cannot be drawn. Install the "
                           "Debian package %s. Using %s", CJK_FONT_PACKAGE, path)
            return path, index

    logger.warning("Noto Sans CJK and DejaVu Sans not found; Japanese text cannot be drawn. "
                   "Install the Debian package %s. Using Pillow's built-in font",
                   CJK_FONT_PACKAGE)
    return None, 0

"""Decoding image files into upright 8-bit RGB, with limits that stop hostile files early.

Every file a user or a camera hands the device goes through :func:`load_rgb`. It applies
the EXIF orientation, converts any mode Pillow decodes (CMYK, grayscale, 16-bit,
palette, RGBA, WebP) to 8-bit RGB, and raises :class:`~cadr_device.errors.ImageError`
naming the file when the file is empty, truncated, not an image, or too large.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cadr_device.errors import ImageError

logger = logging.getLogger(__name__)

#: Largest file read from disk, in bytes. A clinic camera's JPEG is a few megabytes.
MAX_FILE_BYTES = 64 * 1024 * 1024

#: Largest decoded image, in pixels (about 8000 x 6000). Pillow's own bomb check is
#: raised to this and turned into an error, never a warning.
MAX_PIXELS = 48_000_000

#: Longest side accepted, in pixels; also catches 1 x 40,000,000 strips.
MAX_SIDE = 20_000

#: Shortest side accepted, in pixels.
MIN_SIDE = 8

#: Aspect ratio (long side / short side) beyond which a file is not a photograph.
MAX_ASPECT = 20.0

#: File suffixes the replay source treats as images.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})

#: Alpha is composited over this colour, so a transparent PNG area reads as white paper.
ALPHA_BACKGROUND = (255, 255, 255)


def load_rgb(path: Path) -> Image.Image:
    """Decode ``path`` into an upright 8-bit RGB Pillow image.

    Raises:
        ImageError: If the file is missing, empty, too big, not an image, truncated,
            or outside the size limits of this module.
    """
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageError(path, f"cannot read file ({e.strerror}); check that it exists") from e
    if size == 0:
        raise ImageError(path, "file is empty; copy the image again from the camera")
    if size > MAX_FILE_BYTES:
        raise ImageError(
            path, f"file is {size} bytes, larger than the {MAX_FILE_BYTES}-byte limit; "
            "export a smaller JPEG"
        )

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                _check_dimensions(path, opened.width, opened.height)
                opened.load()
                upright = ImageOps.exif_transpose(opened)
                return to_rgb(upright)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(path, f"image is a decompression bomb ({e}); it was not decoded") from e
    except UnidentifiedImageError as e:
        raise ImageError(path, "not a recognised image file (JPEG, PNG, WebP, BMP or TIFF)") from e
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow reports truncated or corrupt data as OSError, and some
        # malformed headers as SyntaxError or ValueError.
        raise ImageError(path, f"image data is corrupt or truncated ({e})") from e


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing alpha over white."""
    if image.mode == "RGB":
        return image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _wide_gray_to_rgb(image)

    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, ALPHA_BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background

    return image.convert("RGB")


def _wide_gray_to_rgb(image: Image.Image) -> Image.Image:
    """Map a 16-bit or 32-bit grayscale image to 8 bits by its nominal range."""
    values = np.asarray(image)
    if image.mode == "F":
        scaled = np.clip(values, 0.0, 1.0) * 255.0 if values.max(initial=0) <= 1.0 else values
    else:
        # 16-bit files use the full 0..65535 range; 8 bits keep the top byte.
        scaled = values.astype(np.float64) / 257.0
    gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(np.stack([gray] * 3, axis=-1))


def _check_dimensions(path: Path, width: int, height: int) -> None:
    """Reject images whose header declares a size no photograph has."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(path,
                         f"image is {width}x{height} pixels, smaller than {MIN_SIDE} on a side")
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageError(
            path, f"image is {width}x{height} pixels, beyond the limit of {MAX_SIDE} on a side "
            f"and {MAX_PIXELS} pixels; resize it before screening"
        )
    aspect = max(width, height) / min(width, height)
    if aspect > MAX_ASPECT:
        raise ImageError(
            path, f"image is {width}x{height} pixels (aspect {aspect:.1f}), beyond the "
            f"{MAX_ASPECT:.0f}:1 limit; photograph the lesion with the framing guide"
        )


def iter_image_files(source: Path) -> list[Path]:
    """List the image files of ``source`` (a file, or a folder walked recursively), sorted.

    Hidden files and folders are skipped. A single file is returned as given, whatever
    its suffix, so that a wrong file named on the command line gets a clear error.
    """
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise ImageError(source, "no such file or folder")

    found = [
        p for p in source.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(source).parts)
    ]
    return sorted(found)

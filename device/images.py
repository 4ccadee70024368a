"""Decoding image files into upright 8-bit RGB, with limits that stop hostile files early.

Every file a user or a camera hands the device goes through :func:`load_rgb`. It applies
the EXIF orientation, converts any mode Pillow decodes (CMYK, grayscale, 16-bit,
palette, RGBA, WebP) to 8-bit RGB, and raises :class:`~cadr_device.errors.ImageError`
naming the file when the file is empty, truncated, not an image, or too large.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cadr_device.errors import ImageError
from cadr_device.names import display_name

logger = logging.getLogger(__name__)

#: Largest file read from disk, in bytes. A clinic camera's JPEG is a few megabytes.
MAX_FILE_BYTES = 64 * 1024 * 1024

#: Largest decoded image, in pixels (about 8000 x 6000). Pillow's own bomb check is
#: raised to this and turned into an error, never a warning.
MAX_PIXELS = 48_000_000

#: Maximum length of the longer side, in pixels. It also rejects 1 x 40,000,000 strips.
MAX_SIDE = 20_000

#: Shortest side accepted, in pixels.
MIN_SIDE = 8

#: Aspect ratio (long side / short side) beyond which a file is not a photograph.
MAX_ASPECT = 20.0

#: File suffixes the replay source treats as images.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})

#: Skipped files and folders logged one by one; the rest are logged as one total.
MAX_SKIPPED_LOGGED = 20

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
        raise ImageError(path, _bomb_message(e)) from e
    except UnidentifiedImageError as e:
        raise ImageError(path, "not a recognised image file (JPEG, PNG, WebP, BMP or TIFF)") from e
    except PermissionError as e:
        raise ImageError(path, "permission denied; check the file's permissions") from e
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow reports truncated or corrupt data as OSError, and some
        # malformed headers as SyntaxError or ValueError.
        raise ImageError(path, f"image data is corrupt or truncated ({e})") from e


def _bomb_message(error: Exception) -> str:
    """Turn Pillow's decompression-bomb text into the declared size, the limit and the fix."""
    # Pillow 9 to 11 word it "Image size (N pixels) exceeds limit of M pixels, ...".
    declared = re.search(r"\((\d+) pixels\)", str(error))
    size = f"{declared.group(1)} pixels" if declared else "more pixels than Pillow allows"
    return (f"the image declares {size}, more than the limit of {MAX_PIXELS} pixels, so it "
            "was not decoded; resize it before screening")


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


@dataclass(frozen=True)
class SkippedPath:
    """A file or folder under the replay source that is not screened.

    Attributes:
        path: The file or folder.
        reason: Why it is skipped, for the log.
        unreadable: True when it could not be read (permission denied, broken symbolic
            link, loop, I/O error), so the replay ends with exit code 4; False when it is
            skipped by rule (hidden, not an image suffix).
    """

    path: Path
    reason: str
    unreadable: bool


@dataclass
class ImageScan:
    """The image files of a replay source and what was skipped, both sorted."""

    files: list[Path] = field(default_factory=list)
    skipped: list[SkippedPath] = field(default_factory=list)

    @property
    def unreadable(self) -> list[SkippedPath]:
        """The skipped paths that could not be read."""
        return [item for item in self.skipped if item.unreadable]


def iter_image_files(source: Path) -> list[Path]:
    """List the image files of ``source`` (a file, or a folder walked recursively), sorted.

    Every skipped file or folder is logged by :func:`scan_image_files`.

    Raises:
        ImageError: If ``source`` does not exist or cannot be listed.
    """
    return scan_image_files(source).files


def scan_image_files(source: Path) -> ImageScan:
    """Walk ``source`` for image files and log a warning for each path skipped.

    A single file is returned as given, whatever its suffix, so that a wrong file named
    on the command line gets a clear error. In a folder, hidden files and folders, files
    without an image suffix (:data:`IMAGE_SUFFIXES`), broken symbolic links, symbolic
    link loops and folders that cannot be listed are skipped. Symbolic links to folders
    are followed unless they point back to a folder being walked (a loop).

    Raises:
        ImageError: If ``source`` does not exist or cannot be listed.
    """
    if source.is_file():
        return ImageScan(files=[source])
    if not source.is_dir():
        raise ImageError(source, "no such file or folder")

    scan = ImageScan()
    try:
        source_entries = _list_folder(source)
    except OSError as e:
        raise ImageError(source, f"cannot list the folder: {_os_reason(e)}") from e
    _walk(source_entries, scan, visited={_folder_key(source)})
    scan.files.sort()
    scan.skipped.sort(key=lambda item: item.path)
    _log_skipped(source, scan.skipped)
    return scan


def _list_folder(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _walk(entries: list[os.DirEntry[str]], scan: ImageScan, visited: set[tuple[int, int]],
          ) -> None:
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith("."):
            kind = "folder" if entry.is_dir() else "file"
            scan.skipped.append(SkippedPath(path, f"hidden {kind}", unreadable=False))
            continue

        try:
            is_dir = entry.is_dir()
            is_file = entry.is_file()
            if entry.is_symlink():
                os.stat(path)  # raises for a broken link or a loop
        except OSError as e:
            scan.skipped.append(SkippedPath(path, _os_reason(e), unreadable=True))
            continue

        if is_dir:
            key = _folder_key(path)
            if key in visited:
                scan.skipped.append(SkippedPath(
                    path, "symbolic link loop; the folder was already walked", unreadable=True))
                continue
            try:
                children = _list_folder(path)
            except OSError as e:
                scan.skipped.append(SkippedPath(path, f"cannot list the folder: {_os_reason(e)}",
                                                unreadable=True))
                continue
            _walk(children, scan, visited | {key})
        elif not is_file:
            scan.skipped.append(SkippedPath(path, "not a regular file", unreadable=False))
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            suffix = path.suffix or "no suffix"
            scan.skipped.append(SkippedPath(
                path, f"not an image suffix ({suffix}); convert it to JPEG or PNG to screen it",
                unreadable=False))
        else:
            scan.files.append(path)


def _folder_key(folder: Path) -> tuple[int, int]:
    status = os.stat(folder)
    return status.st_dev, status.st_ino


def _os_reason(error: OSError) -> str:
    if isinstance(error, PermissionError):
        return "permission denied; check the folder's permissions"
    if error.errno == errno.ELOOP:
        return "symbolic link loop; fix or remove the link"
    if isinstance(error, FileNotFoundError):
        return "broken symbolic link; its target does not exist"
    return f"cannot read ({error.strerror or error})"


def _log_skipped(source: Path, skipped: list[SkippedPath]) -> None:
    for item in skipped[:MAX_SKIPPED_LOGGED]:
        logger.warning("Skipped %s: %s", display_name(item.path), item.reason)
    if len(skipped) > MAX_SKIPPED_LOGGED:
        logger.warning("Skipped %d files and folders under %s in all; only the first %d are "
                       "logged", len(skipped), display_name(source), MAX_SKIPPED_LOGGED)

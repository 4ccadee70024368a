"""Replay over hostile and unusual image files, and EXIF orientation handling.

Every file is written by the test with Pillow (or byte by byte, for the hostile ones)
and screened through the real ``cadr-device`` replay with a real LiteRT interpreter.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from device_bundle import build_bundle
from PIL import Image

from cadr_device import images
from cadr_device.cli import main
from cadr_device.errors import ImageError
from cadr_device.images import MAX_SKIPPED_LOGGED, load_rgb, scan_image_files

pytestmark = pytest.mark.slow

EXIF_ORIENTATION_TAG = 0x0112

#: Transpose that turns the upright picture into the stored pixels of each EXIF
#: orientation, so that ``ImageOps.exif_transpose`` restores the upright picture.
STORED_FROM_UPRIGHT = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}

#: Hostile files and a fragment of the message each must produce.
BAD_FILES = {
    "corrupt.png": "corrupt or truncated",
    "truncated.jpg": "corrupt or truncated",
    "empty.jpg": "file is empty",
    "text.jpg": "not a recognised image",
    "bomb.png": "the image declares 10000000000 pixels, more than the limit of 48000000",
    "oversized.png": "beyond the limit",
    "strip.png": "smaller than 8 on a side",
}

GOOD_FILES = (
    "cmyk.jpg", "gray.jpg", "deep16.png", "palette.png", "rgba.png", "photo.webp",
    "exif_rotated.jpg", "tiny16.png", "wide.jpg",
)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"))


def _noise(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A smooth random colour picture: coarse noise scaled up, so a rotation changes it."""
    coarse = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(width: int, height: int) -> bytes:
    """An RGB PNG header of the given size with a few hundred bytes of deflate data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(bytes(300_000), 9)) + _png_chunk(b"IEND", b""))


def _jpeg(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def _write_bad_files(folder: Path, rng: np.random.Generator) -> None:
    png = io.BytesIO()
    _noise(rng, 120, 90).save(png, format="PNG")
    damaged = bytearray(png.getvalue())
    idat = damaged.index(b"IDAT")
    for offset in range(idat + 20, idat + 60):
        damaged[offset] ^= 0xFF
    (folder / "corrupt.png").write_bytes(bytes(damaged))

    whole = _jpeg(_noise(rng, 300, 200), quality=90)
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) * 6 // 10])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("These are clinic notes, not a photograph.\n")
    (folder / "bomb.png").write_bytes(_bomb_png(100_000, 100_000))  # Pillow's own limit
    (folder / "oversized.png").write_bytes(_bomb_png(8_000, 8_000))  # under Pillow's, over ours
    Image.new("RGB", (1, 30_000), (200, 120, 100)).save(folder / "strip.png")


def _write_good_files(folder: Path, rng: np.random.Generator) -> None:
    _noise(rng, 160, 120).convert("CMYK").save(folder / "cmyk.jpg", quality=90)
    _noise(rng, 160, 120).convert("L").save(folder / "gray.jpg", quality=90)

    deep = (np.asarray(_noise(rng, 160, 120).convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(deep).save(folder / "deep16.png")  # mode I;16
    assert Image.open(folder / "deep16.png").mode.startswith("I")

    palette = _noise(rng, 160, 120).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(folder / "palette.png", transparency=0)

    rgba = _noise(rng, 160, 120).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((160, 120)))
    rgba.save(folder / "rgba.png")

    _noise(rng, 160, 120).save(folder / "photo.webp", quality=90)

    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    _noise(rng, 160, 120).save(folder / "exif_rotated.jpg", quality=95, exif=exif)

    _noise(rng, 16, 16).save(folder / "tiny16.png")
    _noise(rng, 2000, 200).save(folder / "wide.jpg", quality=90)


def _replay_subprocess(source: Path, out: Path, bundle: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cadr_device.cli", "--source", str(source), "--out", str(out),
         "--headless", "--bundle", str(bundle), "--locale", "en"],
        capture_output=True, text=True, timeout=300, check=False,
    )


def _results(out: Path) -> dict[str, dict[str, object]]:
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return {entry["file"]: entry for entry in map(json.loads, lines)}


def test_replay_hostile_and_unusual_files(tmp_path: Path, bundle_dir: Path) -> None:
    source = tmp_path / "images"
    source.mkdir()
    rng = np.random.default_rng(3)
    _write_bad_files(source, rng)
    _write_good_files(source, rng)
    out = tmp_path / "out"

    run = _replay_subprocess(source, out, bundle_dir)

    assert run.returncode == 4, run.stderr
    results = _results(out)
    assert set(results) == set(BAD_FILES) | set(GOOD_FILES)

    for name, fragment in BAD_FILES.items():
        entry = results[name]
        assert entry["status"] == "failed", name
        assert entry["probability"] is None, name
        assert name in str(entry["error"]), name
        assert fragment in str(entry["error"]), (name, entry["error"])
        assert name in run.stderr, f"stderr does not name {name}"
        assert name in run.stdout, f"the table has no row for {name}"

    for name in GOOD_FILES:
        entry = results[name]
        assert entry["status"] == "ok", (name, entry["error"])
        probability = float(str(entry["probability"]))
        assert 0.0 <= probability <= 1.0, name
        assert Path(str(entry["record"])).is_file(), name

    index = (out / "records" / "index.jsonl").read_text(encoding="utf-8").splitlines()
    statuses = sorted(json.loads(line)["status"] for line in index)
    assert statuses == ["failed"] * len(BAD_FILES) + ["ok"] * len(GOOD_FILES)
    assert len(list((out / "annotated").glob("*.jpg"))) == len(GOOD_FILES)


def test_failed_record_keeps_base_name_only(tmp_path: Path, bundle_dir: Path) -> None:
    source = tmp_path / "patient-folder"
    source.mkdir()
    (source / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"

    assert main(["--source", str(source), "--out", str(out), "--bundle", str(bundle_dir),
                 "--headless", "--log-level", "ERROR"]) == 4

    record_path = next((out / "records").glob("*-*-*/*/record.json"))
    record = json.loads(record_path.read_text(encoding="utf-8"))
    assert record["source"] == "empty.jpg"
    assert "patient-folder" not in record_path.read_text(encoding="utf-8")
    assert "empty.jpg" in record["error"]


def _orientation_files(folder: Path) -> Image.Image:
    upright = _noise(np.random.default_rng(11), 96, 64)
    upright.save(folder / "upright.png")
    for orientation, transpose in STORED_FROM_UPRIGHT.items():
        stored = upright if transpose is None else upright.transpose(transpose)
        exif = Image.Exif()
        exif[EXIF_ORIENTATION_TAG] = orientation
        # PNG is lossless, so the restored pixels can be compared exactly.
        stored.save(folder / f"orientation_{orientation}.png", exif=exif)
    return upright


def test_exif_orientation_restores_upright_pixels(tmp_path: Path) -> None:
    upright = _orientation_files(tmp_path)

    for orientation in STORED_FROM_UPRIGHT:
        loaded = load_rgb(tmp_path / f"orientation_{orientation}.png")
        assert loaded.size == upright.size, orientation
        assert np.array_equal(np.asarray(loaded), np.asarray(upright)), orientation


def test_exif_orientations_give_upright_probability(tmp_path: Path, bundle_dir: Path) -> None:
    source = tmp_path / "images"
    source.mkdir()
    upright = _orientation_files(source)
    # The same pixels turned without an EXIF tag: the model must see a different picture,
    # otherwise equal probabilities below would prove nothing.
    upright.transpose(Image.Transpose.ROTATE_90).save(source / "turned_no_exif.png")
    out = tmp_path / "out"

    assert main(["--source", str(source), "--out", str(out), "--bundle", str(bundle_dir),
                 "--headless", "--log-level", "WARNING"]) == 0

    results = _results(out)
    expected = results["upright.png"]["probability"]
    assert results["turned_no_exif.png"]["probability"] != expected
    for orientation in STORED_FROM_UPRIGHT:
        assert results[f"orientation_{orientation}.png"]["probability"] == expected, orientation


def _skip_tree(source: Path) -> None:
    """Write one screenable image and one path of each kind the replay skips."""
    source.mkdir()
    _noise(np.random.default_rng(4), 160, 120).save(source / "good.jpg", quality=90)
    (source / "photo.HEIC").write_bytes(b"HEIC data the device cannot decode")
    (source / "upload.jpg.part").write_bytes(b"half a JPEG")
    (source / ".hidden.jpg").write_bytes(b"hidden")
    (source / "dangling.jpg").symlink_to(source / "gone.jpg")
    (source / "self.jpg").symlink_to(source / "self.jpg")
    (source / "ward").mkdir()
    (source / "ward" / "back-to-top").symlink_to(source)


def test_scan_reports_each_skipped_path(tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "images"
    _skip_tree(source)

    with caplog.at_level(logging.WARNING, logger="cadr_device.images"):
        scan = scan_image_files(source)

    assert scan.files == [source / "good.jpg"]
    reasons = {item.path.name: item.reason for item in scan.skipped}
    assert set(reasons) == {"photo.HEIC", "upload.jpg.part", ".hidden.jpg", "dangling.jpg",
                            "self.jpg", "back-to-top"}
    assert "not an image suffix (.HEIC)" in reasons["photo.HEIC"]
    assert "not an image suffix (.part)" in reasons["upload.jpg.part"]
    assert reasons[".hidden.jpg"] == "hidden file"
    assert "broken symbolic link" in reasons["dangling.jpg"]
    assert "symbolic link loop" in reasons["self.jpg"]
    assert "symbolic link loop" in reasons["back-to-top"]
    assert {item.path.name for item in scan.unreadable} == {"dangling.jpg", "self.jpg",
                                                           "back-to-top"}
    assert len([r for r in caplog.records if r.message.startswith("Skipped ")]) == 6


def test_scan_caps_skipped_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for number in range(MAX_SKIPPED_LOGGED + 5):
        (tmp_path / f"note_{number:02d}.txt").write_text("not an image")

    with caplog.at_level(logging.WARNING, logger="cadr_device.images"):
        scan = scan_image_files(tmp_path)

    assert len(scan.skipped) == MAX_SKIPPED_LOGGED + 5
    messages = [r.message for r in caplog.records]
    assert len(messages) == MAX_SKIPPED_LOGGED + 1
    assert f"Skipped {MAX_SKIPPED_LOGGED + 5} files and folders" in messages[-1]


def _deny(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Make listing ``denied`` fail; root, which runs CI, may list any folder."""
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if Path(path) == denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(images.os, "scandir", scandir)


def test_unreadable_subfolder_fails_replay(tmp_path: Path, bundle_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str],
                                           caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "images"
    _skip_tree(source)
    (source / "locked").mkdir()
    _deny(monkeypatch, source / "locked")
    out = tmp_path / "out"

    code = main(["--source", str(source), "--out", str(out), "--bundle", str(bundle_dir),
                 "--headless", "--locale", "en"])

    assert code == 4
    assert "locked: cannot list the folder: permission denied; check the folder's " \
        "permissions" in caplog.text
    printed = capsys.readouterr().out
    assert "Files or folders skipped: 7 (see the log)" in printed
    assert "good.jpg" in printed


def test_skipped_non_images_keep_exit_zero(tmp_path: Path, bundle_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "images"
    source.mkdir()
    _noise(np.random.default_rng(4), 160, 120).save(source / "good.jpg", quality=90)
    (source / "photo.HEIC").write_bytes(b"HEIC")
    (source / ".DS_Store").write_bytes(b"finder")
    out = tmp_path / "out"

    code = main(["--source", str(source), "--out", str(out), "--bundle", str(bundle_dir),
                 "--headless", "--locale", "en", "--log-level", "ERROR"])

    assert code == 0
    assert "Files or folders skipped: 2 (see the log)" in capsys.readouterr().out


def test_unreadable_top_folder_names_permission(tmp_path: Path, bundle_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "images"
    source.mkdir()
    _deny(monkeypatch, source)

    code = main(["--source", str(source), "--out", str(tmp_path / "out"),
                 "--bundle", str(bundle_dir), "--headless", "--log-level", "ERROR"])

    assert code == 4
    error = capsys.readouterr().err
    assert "cannot list the folder: permission denied" in error
    assert "no image files found" not in error


def test_unreadable_image_says_permission_denied(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.jpg"
    _noise(np.random.default_rng(4), 160, 120).save(path, quality=90)

    def denied(fp: Any, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", str(fp))

    monkeypatch.setattr(images.Image, "open", denied)

    with pytest.raises(ImageError, match="permission denied; check the file's permissions"):
        load_rgb(path)

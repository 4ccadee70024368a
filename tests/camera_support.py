"""Helpers for the camera app tests: the hardware fakes, scene images and app options."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

FAKES = Path(__file__).resolve().parent / "fakes"

#: Guide colour of cadr_device.overlay, repeated so a changed constant fails the test.
GUIDE_RGB = (255, 214, 0)


def import_fake(name: str) -> Any:
    """Import the fake ``picamera2`` or ``gpiozero`` from tests/fakes."""
    if str(FAKES) not in sys.path:
        sys.path.insert(0, str(FAKES))
    module = __import__(name)
    assert Path(module.__file__).is_relative_to(FAKES), f"{name} is not the fake: {module.__file__}"
    return module


def fake_module(name: str) -> Iterator[Any]:
    """Yield a fake module with default settings, then unload it and its path entry.

    Other tests of the session then see the machine as it is (no picamera2, no gpiozero).
    """
    module = import_fake(name)
    reset = getattr(module, "reset", None)
    if reset is not None:
        reset()
    try:
        yield module
    finally:
        if reset is not None:
            reset()
        for loaded in [key for key in sys.modules if key == name or key.startswith(f"{name}.")]:
            sys.modules.pop(loaded, None)
        if str(FAKES) in sys.path:
            sys.path.remove(str(FAKES))


def write_scenes(folder: Path, count: int = 2, size: tuple[int, int] = (640, 480)) -> Path:
    """Write ``count`` JPEG scenes: skin-toned background with a red patch in the centre."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    width, height = size
    for number in range(count):
        pixels = np.empty((height, width, 3), dtype=np.uint8)
        pixels[:] = (200, 160, 140)
        pixels[height // 3: 2 * height // 3, width // 3: 2 * width // 3] = (190, 40, 50)
        noise = rng.integers(-12, 12, pixels.shape)
        pixels = np.clip(pixels.astype(int) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"scene_{number:02d}.jpg", quality=92)
    return folder


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """Write a device.yaml with the given sections."""
    path.write_text(yaml.safe_dump(sections), encoding="utf-8")
    return path


def run_options(config: Path, **extra: Any) -> argparse.Namespace:
    """Return the Namespace ``cadr-device run --config CONFIG`` would give, plus ``extra``."""
    values: dict[str, Any] = {
        "config": config, "bundle": None, "keys": None, "locale": None, "records": None,
        "replay": None, "overlay_dir": None, "runtime_dir": None, "max_frames": None,
    }
    values.update(extra)
    return argparse.Namespace(**values)


def copy_bundle(source: Path, dest: Path) -> Path:
    """Copy a bundle directory so a test can tamper with it."""
    shutil.copytree(source, dest)
    return dest


def base_sections(tmp_path: Path, bundle: Path, keys: Path) -> dict[str, dict[str, Any]]:
    """Return configuration sections pointing at test folders (records, runtime, bundle)."""
    return {
        "model": {"bundle": str(bundle), "keys": str(keys)},
        "records": {"directory": str(tmp_path / "records")},
        "runtime": {"directory": str(tmp_path / "run")},
        "display": {"locale": "en"},
        "trigger": {"keyboard": False, "gpio_pin": None},
    }


def record_files(records: Path) -> list[Path]:
    """Return every record.json under a records folder."""
    return sorted(records.rglob("record.json"))

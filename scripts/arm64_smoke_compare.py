"""Helpers of the emulated arm64 smoke test (scripts/arm64-smoke.sh).

Subcommands:

``images DIR``
    Write a few deterministic test photos (JPEG and PNG, several sizes) with Pillow.
``bundle DIR``
    Build a small signed demonstration bundle with TensorFlow, for machines where
    ``models/cadr-demo`` is missing. Runs on the x86-64 host only.
``probe --bundle B --images D --json OUT``
    Run the bundle's self-test and classify every image with ``cadr_device``, and write the
    probabilities and the output quantization step as JSON. Runs both on the host and inside
    the arm64 root, where the installed cadr wheel provides the imports of this file.
``compare ARM64_JSON X86_JSON``
    Print the probabilities of both runs side by side, with those of the ``cadr-device``
    records when ``--arm64-records``/``--x86-records`` are given, and exit 1 when any pair
    differs by more than the tolerance.

Tolerance: one output quantization step (the int8 output tensor's scale). Both runs use the
same model and LiteRT version, and XNNPACK on the Pi core models gave identical outputs in
the runs recorded in docs/arm64.md. One step is allowed because XNNPACK picks different int8
microkernels on each CPU, and they may round a requantized value differently. Larger
differences came only from another kernel family or from qemu's ``max`` CPU model.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cadr_convert.bundle_writer import write_manifest
from cadr_convert.signing import load_private_key, sign_bundle
from cadr_device.bundle import load_bundle
from cadr_device.classifier import Classifier
from cadr_device.images import iter_image_files, load_rgb
from cadr_device.preprocess import model_input
from cadr_device.selftest import run_selftest
from cadr_device.signing import Keyring, default_key_dir

logger = logging.getLogger("arm64_smoke")

#: Image sizes in pixels (width, height) and formats of the generated test photos.
TEST_IMAGES = (
    ((640, 480), "JPEG"),
    ((480, 640), "JPEG"),
    ((1024, 768), "PNG"),
    ((300, 300), "PNG"),
    ((800, 600), "JPEG"),
    ((1280, 720), "JPEG"),
)

#: Seed of the generated photos, so both architectures see the same files.
IMAGE_SEED = 20261204

#: Input side of the fallback bundle's model, in pixels.
FALLBACK_INPUT_SIDE = 64

#: Index records written by cadr-device (see cadr_device.records).
RECORD_INDEX_NAME = "index.jsonl"


def write_images(folder: Path) -> list[Path]:
    """Write the test photos: skin-toned backgrounds with red blotches of varying density."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(IMAGE_SEED)
    paths = []

    for number, ((width, height), image_format) in enumerate(TEST_IMAGES):
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        skin = np.array([224, 172, 140], dtype=np.float32) * rng.uniform(0.7, 1.05)
        pixels = np.broadcast_to(skin, (height, width, 3)).copy()
        shade = 1.0 - 0.25 * (yy / height)
        pixels *= shade[..., np.newaxis]

        for _ in range(int(rng.integers(0, 12))):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            radius = rng.uniform(0.03, 0.15) * min(width, height)
            blotch = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
            pixels += blotch[..., np.newaxis] * np.array([10.0, -90.0, -70.0], dtype=np.float32)

        pixels += np.asarray(rng.normal(0.0, 6.0, pixels.shape), dtype=np.float32)
        image = Image.fromarray(np.asarray(np.clip(pixels, 0, 255), dtype=np.uint8), "RGB")
        suffix = ".jpg" if image_format == "JPEG" else ".png"
        path = folder / f"smoke_{number:02d}{suffix}"
        image.save(path, image_format, **({"quality": 90} if image_format == "JPEG" else {}))
        paths.append(path)
    return paths


def build_fallback_bundle(folder: Path, key_path: Path) -> None:
    """Build and sign a small demonstration bundle with a random-weight CNN converted to int8.

    The model only has to exercise the int8 kernels the same way on both architectures,
    so its weights are random (seeded) and its decision statistics are placeholders.
    """
    side = FALLBACK_INPUT_SIDE
    calibration = _calibration_inputs(side)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.tflite").write_bytes(_random_int8_model(side, calibration))
    (folder / "selftest").mkdir(exist_ok=True)
    golden = []
    for number in range(3):
        name = f"selftest/golden_{number:02d}.png"
        Image.fromarray(calibration[number * 8 + 3].astype(np.uint8), "RGB").save(folder / name)
        golden.append(name)

    fields = _fallback_manifest_fields(side, [(name, 0.0) for name in golden])
    key = load_private_key(key_path)
    write_manifest(folder, fields)
    sign_bundle(folder, key)

    # The golden probabilities are measured with the device's own classifier on this host.
    keyring = Keyring.from_directory(Path(__file__).resolve().parent.parent / "device" / "keys")
    classifier = Classifier(load_bundle(folder, keyring), num_threads=1)
    cases = []
    for name in golden:
        with Image.open(folder / name) as image:
            probability, _ = classifier.probability(np.asarray(image.convert("RGB")))
        cases.append((name, round(probability, 6)))
    write_manifest(folder, _fallback_manifest_fields(side, cases))
    sign_bundle(folder, key)


def _random_int8_model(side: int, calibration: np.ndarray) -> bytes:
    """Return a seeded random CNN with a sigmoid output, converted to full-integer int8."""
    import tensorflow as tf  # noqa: PLC0415 - only the host has TensorFlow, the arm64 root not

    tf.keras.utils.set_random_seed(7)
    inputs = tf.keras.Input((side, side, 3), dtype=tf.float32)
    x = tf.keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    for filters in (8, 16, 32):
        x = tf.keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
        x = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    features = tf.keras.layers.GlobalAveragePooling2D()(x)
    head = tf.keras.layers.Dense(1, activation="sigmoid")
    model = tf.keras.Model(inputs, head(features))

    # Random weights give logits near zero, so every output would be 0.5. Standardise the
    # features on the calibration set and scale the head so the logits spread over about
    # [-4, 4], which puts the outputs on many different int8 steps.
    values = tf.keras.Model(inputs, features).predict(calibration, verbose=0)
    # A floor on the spread keeps near-constant features from getting huge weights, which
    # would turn a one-step difference inside the network into a large output change.
    spread = values.std(axis=0)
    mean, std = values.mean(axis=0), np.maximum(spread, spread.mean() + 1e-6)
    direction = np.random.default_rng(7).normal(size=values.shape[1])
    logits = ((values - mean) / std) @ direction
    gain = 2.0 / (logits.std() + 1e-6)
    kernel = (direction / std * gain)[:, np.newaxis]
    head.set_weights([kernel.astype(np.float32),
                      np.array([-(mean / std * gain) @ direction], dtype=np.float32)])

    def representative_dataset() -> Any:
        for sample in calibration:
            yield [sample[np.newaxis]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    return bytes(converter.convert())


def _calibration_inputs(side: int) -> np.ndarray:
    """Return model inputs cut from the test photos at random places, as float32."""
    rng = np.random.default_rng(IMAGE_SEED)
    samples = []
    with tempfile.TemporaryDirectory() as scratch:
        for path in write_images(Path(scratch)):
            with Image.open(path) as opened:
                photo = opened.convert("RGB")
            for _ in range(8):
                crop = int(rng.uniform(0.2, 0.9) * min(photo.size))
                left = int(rng.integers(0, photo.width - crop + 1))
                top = int(rng.integers(0, photo.height - crop + 1))
                box = (left, top, left + crop, top + crop)
                samples.append(np.asarray(photo.resize((side, side), box=box), dtype=np.float32))

    # Uniform noise spans 0..255, so the calibrated input range is exactly that of raw pixels
    # and the converter gives the uint8 input the scale 1.0 and zero point 0 the device expects.
    samples += list(rng.integers(0, 256, (2, side, side, 3)).astype(np.float32))
    return np.stack(samples)


def _fallback_manifest_fields(side: int, cases: list[tuple[str, float]]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "name": "cadr-arm64-smoke",
        "version": "0.0.1",
        "created": "2026-12-04T00:00:00Z",
        "demonstration_only": True,
        "intended_use": "arm64 smoke test only; random weights, not for clinical use",
        "labels": ["benign", "scar"],
        "positive_label": "scar",
        "min_app_version": "0.1.0",
        "model": {
            "file": "model.tflite",
            "input": {"width": side, "height": side, "color_order": "RGB", "dtype": "uint8",
                      "scale": 1.0, "zero_point": 0, "normalisation": "x / 127.5 - 1"},
            "output": {"kind": "sigmoid", "positive_index": 0},
        },
        "preprocess": {"crop": "center_square", "crop_fraction": 0.8, "resample": "bilinear"},
        "decision": {"threshold": 0.5, "target_sensitivity": 0.5, "sensitivity": 0.5,
                     "specificity": 0.5, "validation_images": 0},
        "toolchain": {"converter": "scripts/arm64_smoke_compare.py"},
        "provenance": {"source": "random weights, seed 7"},
        "selftest": {"cases": [{"file": name, "probability": float(probability)}
                               for name, probability in cases],
                     "tolerance": 0.02},
    }


def probe(bundle_dir: Path, images: Path, key_dir: Path | None) -> dict[str, Any]:
    """Run the self-test and classify every image; return the probabilities and context."""
    keyring = Keyring.from_directory(key_dir or default_key_dir())
    bundle = load_bundle(bundle_dir, keyring)
    classifier = Classifier(bundle, num_threads=1)
    selftest = run_selftest(classifier)
    output_scale, _ = classifier.interpreter.get_output_details()[0]["quantization"]

    probabilities = {}
    for path in iter_image_files(images):
        pixels = model_input(load_rgb(path), bundle.manifest.preprocess)
        probabilities[path.name], _ = classifier.probability(pixels)

    cases = [case.file for case in bundle.manifest.selftest.cases]
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "runtime": classifier.runtime.label,
        "model_id": bundle.manifest.model_id,
        "output_scale": float(output_scale),
        "selftest": dict(zip(cases, selftest.probabilities, strict=True)),
        "images": probabilities,
    }


def read_records(out: Path) -> dict[str, float]:
    """Return source file name → probability from the records ``cadr-device`` wrote in ``out``."""
    index = next(iter(sorted(out.rglob(RECORD_INDEX_NAME))), None)
    if index is None:
        raise FileNotFoundError(f"{out}: no {RECORD_INDEX_NAME}; did cadr-device write records?")
    probabilities = {}
    for line in index.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("probability") is not None:
            probabilities[Path(str(entry["source"])).name] = float(entry["probability"])
    return probabilities


def compare(arm64: dict[str, Any], x86: dict[str, Any], arm64_records: dict[str, float],
            x86_records: dict[str, float], arm64_label: str = "arm64") -> bool:
    """Print both runs side by side; return True when every pair is within one output step."""
    tolerance = max(arm64["output_scale"], x86["output_scale"]) * 1.0001
    print(f"{arm64_label}: {arm64['machine']} Python {arm64['python']} {arm64['runtime']}")
    print(f"x86-64: {x86['machine']} Python {x86['python']} {x86['runtime']}")
    print(f"model {arm64['model_id']}; tolerance {tolerance:.6f} (one int8 output step)")
    print(f"{'source':<34} {'item':<22} {'arm64':>9} {'x86-64':>9} {'diff':>9}  result")

    rows = []
    for group in ("selftest", "images"):
        for name in sorted(set(arm64[group]) | set(x86[group])):
            rows.append(("probe " + group, name, arm64[group].get(name), x86[group].get(name)))
    for name in sorted(set(arm64_records) | set(x86_records)):
        rows.append(("cadr-device record", name, arm64_records.get(name), x86_records.get(name)))

    passed = True
    for source, name, left, right in rows:
        if left is None or right is None:
            passed = False
            print(f"{source:<34} {name:<22} {_cell(left):>9} {_cell(right):>9} {'':>9}  MISSING")
            continue
        difference = abs(left - right)
        verdict = "identical" if difference == 0 else (
            "within tolerance" if difference <= tolerance else "MISMATCH")
        passed = passed and verdict != "MISMATCH"
        print(f"{source:<34} {name:<22} {left:>9.6f} {right:>9.6f} {difference:>9.6f}  {verdict}")

    identical = sum(1 for _, _, a, b in rows if a is not None and a == b)
    print(f"{'PASS' if passed else 'FAIL'}: {identical} of {len(rows)} probabilities identical, "
          f"all within {tolerance:.6f}" if passed else "FAIL: see MISMATCH or MISSING rows")
    return passed


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    images = commands.add_parser("images", help="write the test photos into DIR")
    images.add_argument("dir", type=Path)
    bundle = commands.add_parser("bundle", help="build a small signed demonstration bundle")
    bundle.add_argument("dir", type=Path)
    bundle.add_argument("--key", type=Path, required=True, help="demo signing key (PEM)")
    probe_parser = commands.add_parser("probe", help="classify with cadr_device, write JSON")
    probe_parser.add_argument("--bundle", type=Path, required=True)
    probe_parser.add_argument("--images", type=Path, required=True)
    probe_parser.add_argument("--keys", type=Path, help="trusted key folder")
    probe_parser.add_argument("--json", type=Path, required=True)
    compare_parser = commands.add_parser("compare", help="print both runs side by side")
    compare_parser.add_argument("arm64", type=Path)
    compare_parser.add_argument("x86", type=Path)
    compare_parser.add_argument("--arm64-records", type=Path, help="cadr-device --out of arm64")
    compare_parser.add_argument("--x86-records", type=Path, help="cadr-device --out of x86-64")
    compare_parser.add_argument("--arm64-label", default="arm64",
                                help="name of the arm64 run in the output (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if args.command == "images":
        for path in write_images(args.dir):
            print(path)
        return 0
    if args.command == "bundle":
        build_fallback_bundle(args.dir, args.key)
        return 0
    if args.command == "probe":
        result = probe(args.bundle, args.images, args.keys)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        return 0

    arm64 = json.loads(args.arm64.read_text(encoding="utf-8"))
    x86 = json.loads(args.x86.read_text(encoding="utf-8"))
    arm64_records = read_records(args.arm64_records) if args.arm64_records else {}
    x86_records = read_records(args.x86_records) if args.x86_records else {}
    passed = compare(arm64, x86, arm64_records, x86_records, args.arm64_label)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

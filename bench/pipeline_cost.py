"""Measurement 2: time per capture against the bare invoke, where the rest goes, and
cheaper paths checked against the baseline's probabilities.

Two paths, both through the device's own functions on the device bundle:

- device: a camera still as an RGB array (2028 x 1520, the Raspberry Pi HQ camera's
  2x2-binned mode) → ``Screening.screen`` (crop, resize, invoke, annotate, JPEG encode,
  durable record);
- file: a 12-megapixel JPEG (4032 x 3024) → ``load_rgb`` → ``Screening.screen``.

Stages are timed one by one with the same public functions ``Screening.screen`` calls,
and the whole call is timed separately. The fsync share comes from a second record
write with ``os.fsync`` patched out inside this process (measurement only).

The inputs are generated 224-pixel lesion images scaled up, so they are smoother than
photographs; JPEG decoding and draft-mode results on real photographs may differ.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from PIL import Image, ImageOps

from bench.common import ratio, stats_ms
from bench.fixtures import Workspace, enlarge, labelled

#: Camera still size: Raspberry Pi HQ camera (IMX477) 2x2-binned mode, in pixels.
STILL_SIZE = (2028, 1520)

#: The camera's small stream: the default ``camera.lores_size`` of the device config.
#: The ISP scales it on a Pi; here Pillow's box filter does.
LORES_SIZE = (320, 240)

#: File path input: a 12-megapixel JPEG as phones and clinic cameras write.
FILE_SIZE = (4032, 3024)

#: Captures per path and mode.
CAPTURES = {"full": 40, "quick": 4, "tiny": 2}

#: Draft decoding keeps at least this many source pixels per model input pixel across
#: the crop, so the resize still averages over real detail.
DRAFT_OVERSAMPLE = 2


def run(ws: Workspace, mode: str) -> dict[str, Any]:
    from cadr_device.bundle import load_bundle
    from cadr_device.classifier import Classifier
    from cadr_device.pipeline import Screening
    from cadr_device.records import RecordStore
    from cadr_device.runtime import load_runtime
    from cadr_device.signing import Keyring, default_key_dir

    bundle_path, bundle_source = ws.device_bundle()
    bundle = load_bundle(bundle_path, Keyring.from_directory(default_key_dir()))
    classifier = Classifier(bundle, num_threads=os.cpu_count() or 1, runtime=load_runtime())
    folder = ws.work / "pipeline"
    screening = Screening(bundle, classifier, RecordStore(folder / "records"), locale="en")

    count = CAPTURES[mode]
    files, _ = labelled(ws.test_set())
    sources = files[:: max(1, len(files) // count)][:count]
    inputs = _make_inputs(sources, folder)

    device = _device_path(screening, inputs["stills"])
    file_path = _file_path(screening, inputs["jpegs"])
    fsync = _fsync_share(screening, inputs["stills"][0])
    candidates = _candidates(screening, inputs)
    return {"bundle": bundle_source, "model_id": bundle.manifest.model_id,
            "threads": os.cpu_count() or 1,
            "captures": len(sources), "still_size": STILL_SIZE, "file_size": FILE_SIZE,
            "device_path": device, "file_path": file_path, "record_write_fsync": fsync,
            "candidates": candidates,
            "tolerance": bundle.manifest.selftest.tolerance}


def _make_inputs(sources: list[Path], folder: Path) -> dict[str, list[Any]]:
    """Scale each source up to a camera still (array), its lores frame and a 12 MP JPEG."""
    jpeg_dir = folder / "jpegs"
    jpeg_dir.mkdir(parents=True, exist_ok=True)
    stills, lores, jpegs = [], [], []
    for i, source in enumerate(sources):
        with Image.open(source) as image:
            rgb = image.convert("RGB")
            still = rgb.resize(STILL_SIZE, Image.Resampling.BICUBIC)
        stills.append(np.asarray(still))
        lores.append(np.asarray(still.resize(LORES_SIZE, Image.Resampling.BOX)))
        jpegs.append(enlarge(source, FILE_SIZE, jpeg_dir / f"{i:03d}.jpg"))
    return {"stills": stills, "lores": lores, "jpegs": jpegs}


def _stage_times(screening: Any, image: Image.Image, frame: np.ndarray | None) -> dict[str, float]:
    """Time each stage of ``Screening.screen`` with the functions it calls, in ms."""
    from cadr_device.annotate import annotate
    from cadr_device.pipeline import ANNOTATED_JPEG_QUALITY, STILL_JPEG_QUALITY
    from cadr_device.preprocess import model_input, model_input_from_array
    from cadr_device.records import new_capture_id

    rule = screening.bundle.manifest.preprocess
    times: dict[str, float] = {}

    start = time.perf_counter()
    pixels = model_input_from_array(frame, rule) if frame is not None else model_input(image, rule)
    times["crop_resize"] = _since(start)

    prediction = screening.classifier.classify(pixels)
    times["invoke"] = prediction.inference_ms

    start = time.perf_counter()
    annotated = annotate(image, prediction, screening.bundle.manifest, screening.translator)
    times["annotate"] = _since(start)

    start = time.perf_counter()
    files = {"still.jpg": _jpeg(image, STILL_JPEG_QUALITY),
             "annotated.jpg": _jpeg(annotated, ANNOTATED_JPEG_QUALITY)}
    times["jpeg_encode"] = _since(start)

    record = {"capture_id": new_capture_id(), "status": "ok", "model_id": screening.model_id,
              "probability": prediction.probability}
    start = time.perf_counter()
    screening.store.write(record, files)
    times["record_write"] = _since(start)
    return times


def _device_path(screening: Any, stills: list[np.ndarray]) -> dict[str, Any]:
    stages = [_stage_times(screening, Image.fromarray(frame), frame) for frame in stills]
    totals, invokes = [], []
    for frame in stills:
        start = time.perf_counter()
        result = screening.screen(Image.fromarray(frame), source="bench-still")
        totals.append(_since(start))
        invokes.append(result.prediction.inference_ms)
    return _summary(stages, totals, invokes)


def _file_path(screening: Any, jpegs: list[Path]) -> dict[str, Any]:
    from cadr_device.images import load_rgb

    stages = []
    for path in jpegs:
        start = time.perf_counter()
        image = load_rgb(path)
        decode = _since(start)
        stages.append({"jpeg_decode": decode, **_stage_times(screening, image, None)})
    totals, invokes = [], []
    for path in jpegs:
        start = time.perf_counter()
        result = screening.screen(load_rgb(path), source=path.name)
        totals.append(_since(start))
        invokes.append(result.prediction.inference_ms)
    return _summary(stages, totals, invokes)


def _summary(stages: list[dict[str, float]], totals: list[float],
             invokes: list[float]) -> dict[str, Any]:
    medians = {name: round(float(np.median([s[name] for s in stages])), 3) for name in stages[0]}
    stage_sum = sum(medians.values())
    total = stats_ms(totals)
    invoke = stats_ms(invokes)
    return {
        "per_capture": total,
        "bare_invoke": invoke,
        "ratio_capture_to_invoke": ratio(total["median_ms"], invoke["median_ms"]),
        "stage_median_ms": medians,
        "stage_share": {name: ratio(value, stage_sum) for name, value in medians.items()},
    }


def _fsync_share(screening: Any, frame: np.ndarray) -> dict[str, Any]:
    """Time the record write of one capture with and without fsync, 5 times each."""
    from cadr_device.records import new_capture_id

    files = {"still.jpg": _jpeg(Image.fromarray(frame), 92), "annotated.jpg": b"x" * 200_000}
    with_fsync, without = [], []
    for _ in range(5):
        start = time.perf_counter()
        screening.store.write({"capture_id": new_capture_id(), "status": "ok"}, files)
        with_fsync.append(_since(start))
        with mock.patch("os.fsync"):
            start = time.perf_counter()
            screening.store.write({"capture_id": new_capture_id(), "status": "ok"}, files)
            without.append(_since(start))
    a, b = stats_ms(with_fsync), stats_ms(without)
    return {"with_fsync": a, "without_fsync": b,
            "fsync_share": ratio(a["median_ms"] - b["median_ms"], a["median_ms"])}


def _candidates(screening: Any, inputs: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Faster ways to get the same model input, each against the baseline in this run."""
    from cadr_device.images import load_rgb
    from cadr_device.preprocess import model_input, model_input_from_array

    rule = screening.bundle.manifest.preprocess
    results = []

    # File path: full decode then crop/resize, against draft-mode (DCT-scaled) decode.
    baseline, draft = [], []
    base_p, draft_p = [], []
    for path in inputs["jpegs"]:
        start = time.perf_counter()
        pixels = model_input(load_rgb(path), rule)
        baseline.append(_since(start))
        base_p.append(screening.classifier.probability(pixels)[0])

        start = time.perf_counter()
        pixels = model_input(_load_rgb_draft(path, rule.width * DRAFT_OVERSAMPLE,
                                             rule.crop_fraction), rule)
        draft.append(_since(start))
        draft_p.append(screening.classifier.probability(pixels)[0])
    results.append(_compare("file: JPEG draft decode for the model input",
                            "load_rgb + model_input", baseline_ms=baseline, candidate_ms=draft,
                            baseline_p=base_p, candidate_p=draft_p, screening=screening))

    # Device path: crop/resize the full still, against the camera's small (lores) stream.
    baseline, lores = [], []
    base_p, lores_p = [], []
    for frame, small in zip(inputs["stills"], inputs["lores"], strict=True):
        start = time.perf_counter()
        pixels = model_input_from_array(frame, rule)
        baseline.append(_since(start))
        base_p.append(screening.classifier.probability(pixels)[0])

        start = time.perf_counter()
        pixels = model_input_from_array(small, rule)
        lores.append(_since(start))
        lores_p.append(screening.classifier.probability(pixels)[0])
    results.append(_compare("device: model input from the 320x240 lores frame",
                            "model_input_from_array(still)", baseline_ms=baseline,
                            candidate_ms=lores, baseline_p=base_p, candidate_p=lores_p,
                            screening=screening))

    # Device path: resize with Pillow's reducing_gap (integer pre-shrink, then resample).
    baseline, gap = [], []
    base_p, gap_p = [], []
    for frame in inputs["stills"]:
        start = time.perf_counter()
        pixels = model_input_from_array(frame, rule)
        baseline.append(_since(start))
        base_p.append(screening.classifier.probability(pixels)[0])

        start = time.perf_counter()
        pixels = _model_input_reducing_gap(frame, rule)
        gap.append(_since(start))
        gap_p.append(screening.classifier.probability(pixels)[0])
    results.append(_compare("device: resize with reducing_gap=3", "model_input_from_array",
                            baseline_ms=baseline, candidate_ms=gap, baseline_p=base_p,
                            candidate_p=gap_p, screening=screening))
    return results


def _compare(name: str, baseline_name: str, *, baseline_ms: list[float],
             candidate_ms: list[float], baseline_p: list[float], candidate_p: list[float],
             screening: Any) -> dict[str, Any]:
    threshold = screening.bundle.manifest.decision.threshold
    tolerance = screening.bundle.manifest.selftest.tolerance
    difference = np.abs(np.asarray(baseline_p) - np.asarray(candidate_p))
    agree = np.mean((np.asarray(baseline_p) >= threshold) == (np.asarray(candidate_p) >= threshold))
    before, after = stats_ms(baseline_ms), stats_ms(candidate_ms)
    return {
        "candidate": name, "baseline": baseline_name,
        "before": before, "after": after,
        "speedup": ratio(before["median_ms"], after["median_ms"]),
        "max_abs_probability_difference": round(float(difference.max()), 6),
        "identical": bool(difference.max() == 0.0),
        "decision_agreement": round(float(agree), 4),
        "qualifies": bool(difference.max() <= tolerance and agree == 1.0),
        "tolerance": tolerance,
    }


def _load_rgb_draft(path: Path, min_crop_side: int, crop_fraction: float) -> Image.Image:
    """Decode a JPEG at the smallest DCT scale whose centre crop keeps ``min_crop_side``.

    Same result type as ``cadr_device.images.load_rgb`` (upright 8-bit RGB), without its
    size checks, which the benchmark's own files pass.
    """
    from cadr_device.images import to_rgb

    with Image.open(path) as opened:
        shorter = min(opened.size)
        needed_shorter = int(np.ceil(min_crop_side / crop_fraction))
        scale = max(1.0, shorter / needed_shorter)
        request = (int(opened.width / scale), int(opened.height / scale))
        opened.draft("RGB", request)
        opened.load()
        return to_rgb(ImageOps.exif_transpose(opened))


def _model_input_reducing_gap(frame: np.ndarray, rule: Any) -> np.ndarray:
    from cadr_device.preprocess import RESAMPLING

    image = Image.fromarray(frame)
    box = rule.crop_box(image.width, image.height)
    resized = image.resize((rule.width, rule.height), RESAMPLING[rule.resample],
                           box=box.as_tuple(), reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    lines = [("bundle", f"{result['model_id']} ({result['bundle']})")]
    for path in ("device_path", "file_path"):
        section = result[path]
        lines.append((f"{path} per capture",
                      f"median {section['per_capture']['median_ms']:.1f} ms, "
                      f"bare invoke {section['bare_invoke']['median_ms']:.2f} ms, "
                      f"ratio {section['ratio_capture_to_invoke']}"))
        shares = ", ".join(f"{k} {v:.0%}" for k, v in sorted(
            section["stage_share"].items(), key=lambda kv: -(kv[1] or 0)))
        lines.append((f"{path} stages", shares))
    fsync = result["record_write_fsync"]
    lines.append(("record write with/without fsync",
                  f"{fsync['with_fsync']['median_ms']:.1f} / "
                  f"{fsync['without_fsync']['median_ms']:.1f} ms"))
    for c in result["candidates"]:
        lines.append((c["candidate"],
                      f"{c['before']['median_ms']:.1f} → {c['after']['median_ms']:.1f} ms "
                      f"(x{c['speedup']}), max |dp| {c['max_abs_probability_difference']}, "
                      f"agreement {c['decision_agreement']}, "
                      f"{'qualifies' if c['qualifies'] else 'does not qualify'}"))
    return lines

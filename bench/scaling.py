"""Measurement 6: conversion against calibration size, record store against its size.

Conversion: ``cadr-convert --int8`` runs as a child process on the bench-trained small
model with 100, 300 and 1,000 calibration images (100 with --quick) and 20 validation
images per class. Each run reports its wall time and peak RSS (``wait4``). The 1,000
calibration images are flips and rotations of the generated training images (see
``fixtures.dihedral_variants``).

Record store: stores of 1,000 and 100,000 records (1,000 and 5,000 with --quick, 50 and
200 with --tiny) are written directly in the on-disk format of ``cadr_device.records``
(day folders, ``<capture_id>/record.json``, ``index.jsonl``), 200 captures per day,
without fsync. ``RecordStore.list`` reading them back checks that format. Small stores
get the still and annotated JPEGs of a real capture in every record. The large one gets
every index line but record folders (``record.json`` only) for the last day alone,
because opening a store scans only the last indexed day and listing reads only the
index.

Timed: opening the store (crash recovery of the last day), ``list()``, ``cadr-device
records list --json`` as a child process, and ``export()`` for the small stores only.
Export fsyncs every file and folder it writes, so at the per-record time measured here
a 100,000-record export would take over an hour (an estimate, not measured).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.common import BIN, run_child, stats_ms
from bench.fixtures import DEMO_KEY, LABELS, LENIENT_GATE, Workspace, dihedral_variants, labelled

CALIBRATION_SIZES = {"full": (100, 300, 1000), "quick": (100,), "tiny": (100,)}
STORE_SIZES = {"full": (1000, 100_000), "quick": (1000, 5000), "tiny": (50, 200)}

#: Stores up to this size are exported and carry JPEGs in every record.
EXPORT_MAX_RECORDS = 1000

#: Validation images per class for the scaling conversions; their float and int8 inference
#: cost the same at every calibration size.
VALIDATION_PER_CLASS = 20

CAPTURES_PER_DAY = 200
CONVERT_TIMEOUT_S = 600
LIST_TIMEOUT_S = 300


def run(ws: Workspace, mode: str) -> dict[str, Any]:
    return {"conversion": _conversion(ws, CALIBRATION_SIZES[mode]),
            "records": [_record_store(ws, size) for size in STORE_SIZES[mode]]}


def _conversion(ws: Workspace, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    trained = ws.model(ws.small_spec())
    train_files, _ = labelled(ws.train_set())
    calibration = dihedral_variants(train_files, max(sizes), ws.work / "calibration")
    validation = _validation_subset(ws, ws.work / "scaling-validation")
    (ws.work / "scaling").mkdir(parents=True, exist_ok=True)
    results = []
    for count in sizes:
        out = ws.work / "scaling" / f"bundle-{count}"
        argv = [str(BIN / "cadr-convert"), "--int8", str(trained.keras_path),
                "--calibration", str(calibration), "--validation", str(validation),
                "--out", str(out), "--signing-key", str(DEMO_KEY), "--demonstration-only",
                "--name", "bench-scaling", "--version", "0.0.1",
                "--labels", ",".join(LABELS), "--normalisation", "mobilenet",
                "--input-size", str(trained.spec.size), "--calibration-count", str(count),
                "--max-auc-drop", str(LENIENT_GATE["max_auc_drop"]),
                "--min-agreement", str(LENIENT_GATE["min_agreement"]),
                "--min-output-spread", str(LENIENT_GATE["min_output_spread"]), "--force"]
        child = run_child(argv, timeout_s=CONVERT_TIMEOUT_S, measure_peak=True)
        if child.returncode != 0:
            raise RuntimeError(f"cadr-convert exited with {child.returncode}: "
                               + "\n".join(child.stderr_lines[-10:]))
        results.append({"calibration_images": count, "wall_s": child.wall_s,
                        "peak_rss_mib": child.peak_rss_mib,
                        "quantize_s": _quantize_seconds(child.stderr_lines)})
        shutil.rmtree(out, ignore_errors=True)
    return results


def _validation_subset(ws: Workspace, out: Path) -> Path:
    """Copy the first validation images of each class, so validation cost stays small."""
    for label in LABELS:
        (out / label).mkdir(parents=True, exist_ok=True)
        for path in sorted((ws.validation_set() / label).glob("*.jpg"))[:VALIDATION_PER_CLASS]:
            shutil.copyfile(path, out / label / path.name)
    return out


def _quantize_seconds(lines: list[str]) -> float | None:
    """Seconds from the "Quantizing" log line to the next time-stamped line."""
    stamps = []
    for line in lines:
        try:
            moment = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        except ValueError:
            continue
        stamps.append((moment, line))
    for i, (moment, line) in enumerate(stamps[:-1]):
        if "Quantizing" in line:
            return round((stamps[i + 1][0] - moment).total_seconds(), 2)
    return None


def _record_store(ws: Workspace, size: int) -> dict[str, Any]:
    from cadr_device.records import RecordStore

    root = ws.work / "stores" / f"records-{size}"
    with_files = size <= EXPORT_MAX_RECORDS
    start = time.perf_counter()
    _write_store(root, size, _sample_files(ws) if with_files else {}, write_all=with_files)
    build_s = time.perf_counter() - start

    opened = []
    listed = []
    for _ in range(3):
        start = time.perf_counter()
        store = RecordStore(root)
        opened.append((time.perf_counter() - start) * 1000.0)
        start = time.perf_counter()
        entries = store.list()
        listed.append((time.perf_counter() - start) * 1000.0)
    if len(entries) != size:
        raise RuntimeError(f"RecordStore.list read {len(entries)} of {size} bench records; "
                           "the bench's copy of the on-disk format is out of date")

    argv = [str(BIN / "cadr-device"), "records", "list", "--records", str(root), "--json"]
    child = run_child(argv, timeout_s=LIST_TIMEOUT_S, measure_peak=True)
    if child.returncode != 0:
        raise RuntimeError(f"cadr-device records list exited with {child.returncode}: "
                           + "\n".join(child.stderr_lines[-10:]))

    result: dict[str, Any] = {
        "records": size, "with_jpegs": with_files, "build_s": round(build_s, 1),
        "index_bytes": (root / "index.jsonl").stat().st_size,
        "open": stats_ms(opened), "list": stats_ms(listed),
        "cli_list_json": {"wall_s": child.wall_s, "peak_rss_mib": child.peak_rss_mib},
    }
    if with_files:
        dest = ws.work / "stores" / f"export-{size}"
        start = time.perf_counter()
        exported = store.export(dest)
        export_s = time.perf_counter() - start
        result["export"] = {"records": exported, "wall_s": round(export_s, 2),
                            "per_record_ms": round(export_s * 1000 / exported, 2)}
        shutil.rmtree(dest, ignore_errors=True)
    else:
        result["export"] = {"measured": False,
                            "reason": "every exported file and folder is fsynced; see the "
                                      "per-record time of the 1,000-record export"}
    shutil.rmtree(root, ignore_errors=True)
    return result


def _sample_files(ws: Workspace) -> dict[str, bytes]:
    """Encode a still and an annotated JPEG of the size a 1280 x 960 capture produces."""
    files, _ = labelled(ws.test_set())
    with Image.open(files[0]) as image:
        still = image.convert("RGB").resize((1280, 960), Image.Resampling.BICUBIC)
    annotated = still.resize((1280, 1100))
    return {"annotated.jpg": _encode(annotated, 88), "still.jpg": _encode(still, 92)}


def _encode(image: Image.Image, quality: int) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _write_store(root: Path, size: int, files: dict[str, bytes], write_all: bool) -> None:
    """Write ``size`` records in the store's on-disk format, without fsync.

    Every record gets its index line. Record folders are written for all records when
    ``write_all`` is set, else only for the last day's, the only ones that opening the
    store (recovery) and listing read.
    """
    from cadr_device.records import INDEX_FIELDS, INDEX_NAME, RECORD_NAME, RECORD_SCHEMA_VERSION

    root.mkdir(parents=True, mode=0o700)
    hashes = {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
              for name, data in sorted(files.items())}
    rng = np.random.default_rng(size)
    begin = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
    index_lines = []
    last_day = (size - 1) // CAPTURES_PER_DAY
    for i in range(size):
        day, slot = divmod(i, CAPTURES_PER_DAY)
        moment = begin + timedelta(days=day, seconds=slot * 120)
        capture_id = (moment.strftime("%Y%m%dT%H%M%S") + ".000Z-"
                      + f"{int(rng.integers(0, 1 << 24)):06x}")
        probability = float(rng.uniform())
        document = {
            "capture_id": capture_id, "status": "ok",
            "captured_at": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "source": f"IMG_{i:06d}.jpg", "label": "severe" if probability >= 0.5 else
            "non_severe", "probability": round(probability, 6), "threshold": 0.5,
            "model_id": "bench-records@0.0.1", "demonstration_only": True, "error": None,
            "schema_version": RECORD_SCHEMA_VERSION, "files": hashes,
        }
        if write_all or day == last_day:
            folder = root / moment.strftime("%Y-%m-%d") / capture_id
            folder.mkdir(parents=True, mode=0o700)
            for name, data in files.items():
                (folder / name).write_bytes(data)
            (folder / RECORD_NAME).write_text(json.dumps(document, indent=2) + "\n",
                                              encoding="utf-8")
        entry = {key: document.get(key) for key in INDEX_FIELDS}
        entry["path"] = f"{moment.strftime('%Y-%m-%d')}/{capture_id}/{RECORD_NAME}"
        index_lines.append(json.dumps(entry, separators=(",", ":")))
    (root / INDEX_NAME).write_text("\n".join(index_lines) + "\n", encoding="utf-8")


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    lines = []
    for c in result["conversion"]:
        lines.append((f"cadr-convert, {c['calibration_images']} calibration images",
                      f"{c['wall_s']:.1f} s (quantize {c['quantize_s']} s), "
                      f"peak RSS {c['peak_rss_mib']} MiB"))
    for r in result["records"]:
        export = r["export"]
        exported = (f"export {export['wall_s']} s ({export['per_record_ms']} ms/record)"
                    if "wall_s" in export else "export not measured")
        lines.append((f"record store, {r['records']} records",
                      f"open {r['open']['median_ms']:.1f} ms, list {r['list']['median_ms']:.1f} "
                      f"ms, CLI list --json {r['cli_list_json']['wall_s']} s / "
                      f"{r['cli_list_json']['peak_rss_mib']} MiB, {exported}"))
    return lines

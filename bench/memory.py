"""Measurement 3: resident memory of ``cadr-device`` over a long replay.

``cadr-device --source DIR --bundle B --out OUT --headless`` runs as a child process on
1,000 images (200 with --quick, 110 with --tiny). Its VmRSS is sampled from
``/proc/<pid>/status`` every 0.1 s and matched to the number of "Recorded capture" log
lines so far; the exact peak comes from ``wait4``. Growth is VmRSS at the last sample
minus VmRSS at capture 100; the trend compares window medians and fits a slope.

The replay folder holds copies of the generated test images scaled to 1280 x 960, so
each capture decodes, annotates and records a photo-sized still.
"""

from __future__ import annotations

import shutil
from typing import Any

import numpy as np

from bench.common import BIN, run_child
from bench.fixtures import Workspace, enlarge, labelled

CAPTURES = {"full": 1000, "quick": 200, "tiny": 110}

#: Growth is measured from this capture on, after caches and the allocator settle.
SETTLED_CAPTURE = 100

#: Size of the replayed JPEGs, in pixels.
REPLAY_SIZE = (1280, 960)

REPLAY_TIMEOUT_S = 900

#: One stderr line per written record (cadr_device.records logs it at INFO).
RECORD_LINE = r"Recorded capture"


def run(ws: Workspace, mode: str) -> dict[str, Any]:
    bundle, bundle_source = ws.device_bundle()
    count = CAPTURES[mode]
    source = ws.work / "memory" / "source"
    _fill_source(ws, source, count)

    out = ws.work / "memory" / "out"
    argv = [str(BIN / "cadr-device"), "--source", str(source), "--bundle", str(bundle),
            "--out", str(out), "--headless", "--locale", "en"]
    child = run_child(argv, timeout_s=REPLAY_TIMEOUT_S, count_pattern=RECORD_LINE,
                      sample_rss=True)
    if child.returncode != 0:
        raise RuntimeError(f"cadr-device replay exited with {child.returncode}: "
                           + "\n".join(child.stderr_lines[-10:]))

    samples = child.rss_samples
    settled = [s for s in samples if s[2] >= SETTLED_CAPTURE]
    first, last = (settled[0], settled[-1]) if settled else (samples[0], samples[-1])
    by_hundred = {}
    for seconds, rss, captures in samples:
        by_hundred.setdefault(captures // 100 * 100, (seconds, rss, captures))
    shutil.rmtree(ws.work / "memory", ignore_errors=True)
    return {
        "trend": _trend(samples, count),
        "bundle": bundle_source, "captures": count, "image_size": REPLAY_SIZE,
        "wall_s": child.wall_s,
        "per_capture_ms": round(child.wall_s * 1000 / count, 1),
        "peak_rss_mib": child.peak_rss_mib,
        "rss_at_capture_mib": {"capture": first[2], "rss_mib": first[1]},
        "rss_at_end_mib": {"capture": last[2], "rss_mib": last[1]},
        "growth_mib": round(last[1] - first[1], 1),
        "rss_every_100_captures": [{"capture": c, "rss_mib": r, "seconds": s}
                                   for s, r, c in by_hundred.values()],
        "samples": len(samples),
    }


def _trend(samples: list[tuple[float, float, int]], count: int) -> dict[str, Any]:
    """Return the median VmRSS of the first and last 100 settled captures and the slope.

    Single samples swing by 10 MiB or more as stills are decoded and freed, so medians
    of two windows and a least-squares slope over every settled sample show the trend
    better than two single samples.
    """
    settled = [(c, r) for _, r, c in samples if c >= SETTLED_CAPTURE]
    if len(settled) < 3:
        return {"measured": False, "reason": f"only {len(settled)} samples after capture "
                f"{SETTLED_CAPTURE}"}
    early = [r for c, r in settled if c < SETTLED_CAPTURE + 100]
    late = [r for c, r in settled if c >= count - 100]
    captures = np.asarray([c for c, _ in settled], dtype=np.float64)
    rss = np.asarray([r for _, r in settled], dtype=np.float64)
    slope = float(np.polyfit(captures, rss, 1)[0]) if np.ptp(captures) > 0 else 0.0
    return {
        "measured": True,
        "median_rss_first_100_mib": round(float(np.median(early)), 1) if early else None,
        "median_rss_last_100_mib": round(float(np.median(late)), 1) if late else None,
        "slope_mib_per_1000_captures": round(slope * 1000, 2),
        "min_rss_mib": round(float(rss.min()), 1),
        "max_rss_mib": round(float(rss.max()), 1),
    }


def _fill_source(ws: Workspace, source: Any, count: int) -> None:
    """Write ``count`` replay files: the test images at 1280 x 960, copied under new names."""
    source.mkdir(parents=True, exist_ok=True)
    files, _ = labelled(ws.test_set())
    originals = [enlarge(path, REPLAY_SIZE, source / f"{i:05d}.jpg")
                 for i, path in enumerate(files[:min(count, 50)])]
    for i in range(len(originals), count):
        shutil.copyfile(originals[i % len(originals)], source / f"{i:05d}.jpg")


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    start, end = result["rss_at_capture_mib"], result["rss_at_end_mib"]
    trend = result["trend"]
    trend_row = ("RSS trend", trend.get("reason", "")) if not trend["measured"] else (
        "RSS trend after capture 100",
        f"median {trend['median_rss_first_100_mib']} MiB (captures 100-199) → "
        f"{trend['median_rss_last_100_mib']} MiB (last 100), range {trend['min_rss_mib']}-"
        f"{trend['max_rss_mib']} MiB, slope {trend['slope_mib_per_1000_captures']:+} MiB "
        "per 1,000 captures")
    return [
        ("cadr-device replay", f"{result['captures']} captures in {result['wall_s']:.0f} s "
         f"({result['per_capture_ms']} ms each)"),
        ("peak RSS (wait4)", f"{result['peak_rss_mib']} MiB"),
        ("RSS growth", f"{start['rss_mib']} MiB at capture {start['capture']} → "
         f"{end['rss_mib']} MiB at capture {end['capture']} "
         f"({result['growth_mib']:+} MiB)"),
        trend_row,
    ]

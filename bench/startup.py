"""Measurement 4: ``cadr-device`` from process start to its first recorded result.

``cadr-device --source ONE.jpg`` runs as a child process several times. Its log lines
carry wall-clock times to the millisecond, so the run splits into: Python start, imports
and the TFLite runtime import (spawn to "Loaded TFLite runtime"), bundle verification
(signature, schema, hashes), interpreter build and self-test, first inference (decode,
crop, resize, invoke), first record (annotation, JPEG encoding, durable write) and exit.
"Ready" is spawn to the first inference's log line.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

import numpy as np

from bench.common import BIN, run_child
from bench.fixtures import Workspace, enlarge, labelled

RUNS = {"full": 5, "quick": 2, "tiny": 1}
STARTUP_TIMEOUT_S = 120

#: Milestones in log order: name → message fragment that ends the phase.
MILESTONES = (
    ("python_start_imports_and_runtime", "Loaded TFLite runtime"),
    ("bundle_verify", "Loaded bundle"),
    ("interpreter_and_selftest", "Self-test passed"),
    ("first_inference", "Capture "),
    ("first_record", "Recorded capture"),
)

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def run(ws: Workspace, mode: str) -> dict[str, Any]:
    bundle, bundle_source = ws.device_bundle()
    files, _ = labelled(ws.test_set())
    image = enlarge(files[0], (2028, 1520), ws.work / "startup-still.jpg")

    runs = []
    for i in range(RUNS[mode]):
        out = ws.work / "startup" / f"run-{i}"
        argv = [str(BIN / "cadr-device"), "--source", str(image), "--bundle", str(bundle),
                "--out", str(out), "--headless", "--locale", "en"]
        spawned = time.time()
        child = run_child(argv, timeout_s=STARTUP_TIMEOUT_S)
        if child.returncode != 0:
            raise RuntimeError(f"cadr-device exited with {child.returncode}: "
                               + "\n".join(child.stderr_lines[-10:]))
        runs.append(_phases(spawned, child.wall_s, child.stderr_lines))

    phases = {name: round(float(np.median([r[name] for r in runs])), 1) for name in runs[0]}
    return {"bundle": bundle_source, "runs": len(runs), "median_ms": phases, "each_run": runs}


def _phases(spawned: float, wall_s: float, lines: list[str]) -> dict[str, float]:
    """Split one run into phases in ms, from log time stamps (local time, ms resolution)."""
    stamps: list[tuple[float, str]] = []
    for line in lines:
        match = _STAMP.match(line)
        if match:
            moment = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            stamps.append((moment, line))
    if not stamps:
        raise RuntimeError("cadr-device wrote no time-stamped log lines:\n" + "\n".join(lines))

    # The first milestone is usually the first log line, so phases start at the spawn.
    phases: dict[str, float] = {}
    previous = spawned
    ready = float("nan")
    for name, fragment in MILESTONES:
        moment = next((t for t, line in stamps if fragment in line and t >= previous), None)
        if moment is None:
            phases[name] = float("nan")
            continue
        phases[name] = (moment - previous) * 1000.0
        previous = moment
        if name == "first_inference":
            # Ready: bundle verified, self-test passed and the first result computed.
            ready = (moment - spawned) * 1000.0
    phases["exit"] = (spawned + wall_s - previous) * 1000.0
    phases["total"] = wall_s * 1000.0
    phases["ready"] = ready
    return {k: round(v, 1) for k, v in phases.items()}


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    median = result["median_ms"]
    lines = [("start to ready (median)",
              f"{median['ready']:.0f} ms to the first result, {median['total']:.0f} ms to exit, "
              f"{result['runs']} runs")]
    lines.extend((f"  {name}", f"{value:.0f} ms") for name, value in median.items()
                 if name not in ("total", "ready"))
    return lines

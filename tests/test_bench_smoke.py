"""The benchmark suite's plumbing: a --tiny run end to end, and its pure helpers.

No assertion here is about speed; the numbers of a --tiny run mean nothing. The run
checks that every measurement executes against the real converter, runtime and
cadr-device processes and writes the JSON the docs quote.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import runtime_speed, startup
from bench.common import ratio, stats_ms

REPO = Path(__file__).resolve().parent.parent

SECTIONS = ("runtime", "pipeline", "memory", "startup", "fidelity", "scaling")


def test_stats_median_and_p90() -> None:
    result = stats_ms([float(v) for v in range(1, 11)])
    assert result["median_ms"] == 5.5
    assert result["p90_ms"] == pytest.approx(9.1)
    assert result["min_ms"] == 1.0
    assert result["runs"] == 10


def test_ratio_of_zero_is_none() -> None:
    assert ratio(1.0, 0.0) is None
    assert ratio(3.0, 2.0) == 1.5


def test_ratios_pair_matching_cells() -> None:
    cells = [
        {"runtime": "ai_edge_litert", "model": "m", "precision": "int8", "threads": 1,
         "median_ms": 2.0},
        {"runtime": "ai_edge_litert", "model": "m", "precision": "float32", "threads": 1,
         "median_ms": 4.0},
        {"runtime": "tflite_runtime", "model": "m", "precision": "int8", "threads": 1,
         "median_ms": 8.0},
    ]
    found = {(r["kind"], r.get("runtime", r.get("precision"))): r["median"]
             for r in runtime_speed._ratios(cells)}
    assert found[("int8/float32", "ai_edge_litert")] == 0.5
    assert found[("litert/tflite_runtime", "int8")] == 0.25
    assert ("int8/float32", "tflite_runtime") not in found


def test_startup_phases_from_log_stamps() -> None:
    lines = [
        "2026-12-04 10:00:00,100 INFO cadr_device.runtime: Loaded TFLite runtime ai-edge-litert",
        "2026-12-04 10:00:00,300 INFO cadr_device.bundle: Loaded bundle x@1.0.0",
        "2026-12-04 10:00:00,400 INFO cadr_device.selftest: Self-test passed for x@1.0.0",
        "2026-12-04 10:00:00,450 INFO cadr_device.pipeline: Capture 1: severe p=0.9",
        "2026-12-04 10:00:00,500 INFO cadr_device.records: Recorded capture 1",
    ]
    from datetime import datetime

    spawned = datetime(2026, 12, 4, 10, 0, 0).timestamp()
    phases = startup._phases(spawned, 0.6, lines)
    assert phases["python_start_imports_and_runtime"] == pytest.approx(100.0, abs=0.5)
    assert phases["bundle_verify"] == pytest.approx(200.0, abs=0.5)
    assert phases["interpreter_and_selftest"] == pytest.approx(100.0, abs=0.5)
    assert phases["ready"] == pytest.approx(450.0, abs=0.5)
    assert phases["exit"] == pytest.approx(100.0, abs=0.5)


@pytest.mark.slow
def test_tiny_run_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "tiny.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1500, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "== runtime" in completed.stdout

    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["mode"] == "tiny"
    assert results["machine"]["cpu_count"] >= 1
    assert sorted(results["sections"]) == sorted(SECTIONS)

    runtime = results["sections"]["runtime"]
    assert runtime["availability"]["ai_edge_litert"]["importable"] is True
    assert "tflite_runtime" in runtime["availability"]
    litert = [c for c in runtime["cells"] if c["runtime"] == "ai_edge_litert"]
    assert {c["precision"] for c in litert} == {"int8", "float32"}
    assert all(c["median_ms"] > 0 for c in litert)

    pipeline = results["sections"]["pipeline"]
    for path in ("device_path", "file_path"):
        assert pipeline[path]["per_capture"]["median_ms"] > 0
        assert pipeline[path]["ratio_capture_to_invoke"] > 0
        assert "record_write" in pipeline[path]["stage_median_ms"]
    assert "jpeg_decode" in pipeline["file_path"]["stage_median_ms"]
    assert len(pipeline["candidates"]) == 3
    assert all(isinstance(c["qualifies"], bool) for c in pipeline["candidates"])

    memory = results["sections"]["memory"]
    assert memory["captures"] == 110
    assert memory["peak_rss_mib"] > 0
    assert memory["rss_at_end_mib"]["capture"] >= 100

    ready = results["sections"]["startup"]["median_ms"]["ready"]
    assert not math.isnan(ready)
    assert ready > 0

    fidelity = results["sections"]["fidelity"]
    test = fidelity["models"]["separable-1.0-128"]["test"]
    assert 0.0 <= test["float_auc"] <= 1.0
    assert 0.0 <= test["decision_agreement"] <= 1.0
    assert "measured" in fidelity["default_bundle"]

    scaling = results["sections"]["scaling"]
    assert scaling["conversion"][0]["peak_rss_mib"] > 0
    assert [r["records"] for r in scaling["records"]] == [50, 200]
    assert scaling["records"][0]["export"]["records"] == 50

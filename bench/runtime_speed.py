"""Measurement 1: invoke time of int8 and float32 models in LiteRT and tflite-runtime.

Each (runtime, model, threads) cell runs :mod:`bench.invoke_worker` in its own process,
so every interpreter is built fresh with its thread count fixed at construction, and the
two runtimes run the same code on the same files. The default bundle's int8 model is
timed too when it is present; it has no float32 twin here. tflite-runtime 2.14 needs numpy < 2;
it is measured from ``.cache/bench/tflite-runtime-venv`` (made by
``bench/tflite_runtime_venv.sh``) when that venv exists.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.common import REPO, ratio, run_child, stats_ms
from bench.fixtures import TrainedModel, Workspace

WORKER = Path(__file__).with_name("invoke_worker.py")
TFLITE_RUNTIME_PYTHON = REPO / ".cache" / "bench" / "tflite-runtime-venv" / "bin" / "python"

#: Timed invokes per cell and mode: (small model, large model).
RUNS = {"full": (200, 60), "quick": (20, 5), "tiny": (3, 3)}
WORKER_TIMEOUT_S = 300


def run(ws: Workspace, mode: str) -> dict[str, Any]:
    models = [ws.model(ws.small_spec())]
    if ws.sizes.with_large:
        models.append(ws.model(ws.large_spec()))
    threads = sorted({1, os.cpu_count() or 1})
    pythons = _runtime_pythons()

    cells: list[dict[str, Any]] = []
    availability: dict[str, Any] = {}
    for runtime, python in pythons.items():
        for model_index, trained in enumerate(models):
            runs = RUNS[mode][model_index]
            for precision in ("int8", "float32"):
                path = trained.int8_tflite if precision == "int8" else trained.float_tflite
                for count in threads:
                    result = _invoke(python, runtime, path, count, runs)
                    availability.setdefault(runtime, {"importable": result["importable"],
                                                      "python": str(python)})
                    if not result["importable"]:
                        availability[runtime]["error"] = result["error"]
                        break
                    availability[runtime]["numpy"] = result["numpy"]
                    availability[runtime]["version"] = result["version"]
                    cells.append({"runtime": runtime, "model": trained.spec.name,
                                  "precision": precision, "threads": count,
                                  **stats_ms(result["times_ms"])})
        default = _default_bundle_model(ws)
        if default is not None and availability[runtime]["importable"]:
            for count in threads:
                result = _invoke(python, runtime, default, count, RUNS[mode][0])
                cells.append({"runtime": runtime, "model": "cadr-demo", "precision": "int8",
                              "threads": count, **stats_ms(result["times_ms"])})
    if "tflite_runtime" not in pythons:
        availability["tflite_runtime"] = _main_venv_tflite_runtime()

    return {"availability": availability, "cells": cells, "ratios": _ratios(cells),
            "models": {m.spec.name: _model_facts(m) for m in models}}


def _default_bundle_model(ws: Workspace) -> Path | None:
    """Return the default bundle's int8 model when the device measurements use that bundle."""
    bundle, source = ws.device_bundle()
    return bundle / "model.tflite" if source == "models/cadr-demo" else None


def _runtime_pythons() -> dict[str, Path]:
    pythons = {"ai_edge_litert": Path(sys.executable)}
    if TFLITE_RUNTIME_PYTHON.exists():
        pythons["tflite_runtime"] = TFLITE_RUNTIME_PYTHON
    return pythons


def _main_venv_tflite_runtime() -> dict[str, Any]:
    """Report whether tflite-runtime imports in the project venv (numpy 2)."""
    result = _probe(Path(sys.executable), "tflite_runtime")
    if result["importable"]:
        return {"importable": True, "python": sys.executable,
                "note": "importable here, but not measured: the separate venv is missing"}
    return {"importable": False, "python": sys.executable, "error": result["error"],
            "note": "not installed / not importable in the project venv; run "
                    "bench/tflite_runtime_venv.sh to measure it from a numpy 1.x venv"}


def _probe(python: Path, runtime: str) -> dict[str, Any]:
    argv = [str(python), "-c", f"import {runtime}.interpreter"]
    child = run_child(argv, timeout_s=60)
    if child.returncode == 0:
        return {"importable": True}
    return {"importable": False, "error": (child.stderr_lines or ["no output"])[-1]}


def _invoke(python: Path, runtime: str, model: Path, threads: int, runs: int) -> dict[str, Any]:
    argv = [str(python), str(WORKER), "--runtime", runtime, "--model", str(model),
            "--threads", str(threads), "--runs", str(runs)]
    child = run_child(argv, timeout_s=WORKER_TIMEOUT_S)
    if child.returncode != 0:
        raise RuntimeError(f"invoke worker failed ({child.returncode}): "
                           + "\n".join(child.stderr_lines[-10:]))
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def _ratios(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """int8 / float32 per runtime, model and threads; LiteRT / tflite-runtime per cell."""
    index = {(c["runtime"], c["model"], c["precision"], c["threads"]): c for c in cells}
    ratios = []
    for (runtime, model, precision, threads), cell in sorted(index.items()):
        if precision == "int8":
            other = index.get((runtime, model, "float32", threads))
            if other:
                ratios.append({"kind": "int8/float32", "runtime": runtime, "model": model,
                               "threads": threads,
                               "median": ratio(cell["median_ms"], other["median_ms"])})
        if runtime == "ai_edge_litert":
            other = index.get(("tflite_runtime", model, precision, threads))
            if other:
                ratios.append({"kind": "litert/tflite_runtime", "precision": precision,
                               "model": model, "threads": threads,
                               "median": ratio(cell["median_ms"], other["median_ms"])})
    return ratios


def _model_facts(trained: TrainedModel) -> dict[str, Any]:
    return {"int8_bytes": trained.int8_tflite.stat().st_size,
            "float32_bytes": trained.float_tflite.stat().st_size,
            "alpha": trained.spec.alpha, "input_size": trained.spec.size,
            "from_cache": trained.cached, **trained.timings_s}


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """Table lines: one per cell, then the ratios."""
    lines = []
    for runtime, facts in result["availability"].items():
        if not facts["importable"]:
            lines.append((f"{runtime}", f"not measured: {facts.get('error', '')[:70]}"))
    for c in result["cells"]:
        lines.append((f"invoke {c['runtime']} {c['model']} {c['precision']} {c['threads']}t",
                      f"median {c['median_ms']:.2f} ms, p90 {c['p90_ms']:.2f} ms"))
    for r in result["ratios"]:
        where = r.get("runtime", r.get("precision"))
        lines.append((f"ratio {r['kind']} {where} {r['model']} {r['threads']}t",
                      f"{r['median']}"))
    return lines

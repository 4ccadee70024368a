"""``python -m bench``: speed, memory and fidelity of cadr, printed and saved as JSON.

Measurements (one module each): runtime (invoke time per runtime, precision and
threads), pipeline (time per capture against bare invoke, and cheaper variants),
memory (cadr-device RSS over a long replay), startup (process start to first result),
fidelity (float against int8), scaling (conversion against calibration size, record
store against its size). Results go to ``bench/results/<date>-<host>.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import fidelity, memory, pipeline_cost, runtime_speed, scaling, startup
from bench.common import REPO, filesystem_of, machine
from bench.fixtures import CACHE, SIZES, Workspace

logger = logging.getLogger("bench")

RESULTS = Path(__file__).resolve().parent / "results"

Section = tuple[Callable[[Workspace, str], dict[str, Any]],
                Callable[[dict[str, Any]], list[tuple[str, str]]]]

SECTIONS: dict[str, Section] = {
    "runtime": (runtime_speed.run, runtime_speed.rows),
    "pipeline": (pipeline_cost.run, pipeline_cost.rows),
    "memory": (memory.run, memory.rows),
    "startup": (startup.run, startup.rows),
    "fidelity": (fidelity.run, fidelity.rows),
    "scaling": (scaling.run, scaling.rows),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true",
                       help="small sizes and few repetitions, a few minutes; its numbers are "
                       "rough and not for quoting")
    sizes.add_argument("--tiny", action="store_true",
                       help="the smallest sizes, to check the plumbing (used by the tests); "
                       "its numbers mean nothing")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), default=None,
                        help="run only these measurements (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="result JSON path (default: bench/results/<date>-<host>.json, "
                        "with -quick or -tiny appended)")
    parser.add_argument("--retrain", action="store_true",
                        help="train and convert the bench models again instead of reusing "
                        "the ones cached in .cache/bench/models/")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep the scratch folder under .cache/bench/ for inspection")
    args = parser.parse_args(argv)

    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    work = CACHE / f"work-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    mode = "full"
    if args.quick:
        mode = "quick"
    if args.tiny:
        mode = "tiny"
    ws = Workspace(work, SIZES[mode], retrain=args.retrain)
    facts = machine()
    facts["filesystem_of_workdir"] = filesystem_of(work)

    started = time.perf_counter()
    results: dict[str, Any] = {
        "schema": 1,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "machine": facts,
        "sections": {},
        "section_wall_s": {},
    }
    failed = []
    try:
        for name in args.only or list(SECTIONS):
            measure, _ = SECTIONS[name]
            logger.info("Measuring %s", name)
            section_start = time.perf_counter()
            try:
                results["sections"][name] = measure(ws, mode)
            except Exception as e:  # one broken measurement must not lose the others
                logger.exception("Measurement %s failed", name)
                results["sections"][name] = {"error": f"{type(e).__name__}: {e}"}
                failed.append(name)
            results["section_wall_s"][name] = round(time.perf_counter() - section_start, 1)
    finally:
        results["total_wall_s"] = round(time.perf_counter() - started, 1)
        results["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)

    out = args.out or _default_path(mode)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(format_table(results))
    print(f"\nwrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    if failed:
        print(f"failed: {', '.join(failed)} (see the log above)", file=sys.stderr)
        return 1
    return 0


def _default_path(mode: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    suffix = "" if mode == "full" else f"-{mode}"
    return RESULTS / f"{stamp}-{os.uname().nodename}{suffix}.json"


def format_table(results: dict[str, Any]) -> str:
    """Return the results as a two-column text table, one block per measurement."""
    lines = []
    facts = results["machine"]
    lines.append(f"{facts['cpu_model']}, {facts['cpu_count']} cores, {facts['memory_gib']} GiB, "
                 f"Python {facts['python']}, mode {results['mode']}, "
                 f"{results['total_wall_s']} s in total")
    for name, section in results["sections"].items():
        _, to_rows = SECTIONS[name]
        lines.append(f"\n== {name} ({results['section_wall_s'][name]} s)")
        pairs = [("error", section["error"])] if "error" in section else to_rows(section)
        width = max((len(label) for label, _ in pairs), default=0)
        lines.extend(f"{label.ljust(width)}  {value}" for label, value in pairs)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

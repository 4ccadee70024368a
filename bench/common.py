"""Helpers shared by the measurements: statistics, machine facts and child processes.

Peak memory of a child comes from ``os.wait4`` in :mod:`bench.peak_rss`, whose
``ru_maxrss`` is that one child's peak resident set size in KiB on Linux
(``RUSAGE_CHILDREN`` would mix all children).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent

#: The project venv's scripts (cadr-device, cadr-convert), beside the running Python.
BIN = Path(sys.executable).parent

PEAK_LAUNCHER = Path(__file__).with_name("peak_rss.py")

#: Interval between /proc samples of a running child's VmRSS, in seconds.
RSS_SAMPLE_INTERVAL_S = 0.1


def stats_ms(times_ms: Sequence[float]) -> dict[str, float]:
    """Return the median, 90th percentile, minimum and count of timings in milliseconds."""
    values = np.asarray(times_ms, dtype=np.float64)
    return {
        "median_ms": round(float(np.median(values)), 3),
        "p90_ms": round(float(np.percentile(values, 90)), 3),
        "min_ms": round(float(values.min()), 3),
        "runs": int(values.size),
    }


def ratio(numerator: float, denominator: float) -> float | None:
    """Return numerator / denominator rounded to 3 places, or None when undefined."""
    if not denominator:
        return None
    return round(numerator / denominator, 3)


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``function`` and return its result and the wall time in milliseconds."""
    start = time.perf_counter()
    result = function()
    return result, (time.perf_counter() - start) * 1000.0


def machine() -> dict[str, Any]:
    """Describe the CPU, memory, OS and library versions behind a result file."""
    cpu_model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    versions = {}
    for distribution in ("ai-edge-litert", "tensorflow-cpu", "keras", "numpy", "pillow"):
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = "not installed"
    return {
        "host": platform.node(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "libraries": versions,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
        "filesystem_of_workdir": None,
    }


@dataclass
class ChildRun:
    """A finished child process: exit code, wall time, peak RSS and what it wrote.

    Attributes:
        peak_rss_mib: The command's own peak RSS, or None when it was not measured.
        rss_samples: (seconds since start, VmRSS in MiB, stderr lines matching the
            count pattern so far) per sample; empty unless sampling was requested.
    """

    returncode: int
    wall_s: float
    peak_rss_mib: float | None
    stdout: str
    stderr_lines: list[str]
    rss_samples: list[tuple[float, float, int]] = field(default_factory=list)


def run_child(argv: list[str], *, timeout_s: float, env: dict[str, str] | None = None,
              measure_peak: bool = False, count_pattern: str | None = None,
              sample_rss: bool = False) -> ChildRun:
    """Run ``argv`` to completion, optionally measuring its peak RSS and sampling VmRSS.

    Args:
        argv: The command; never run through a shell.
        timeout_s: Stop the child after this many seconds and raise TimeoutError.
        env: Environment for the child; None inherits this process's.
        measure_peak: Start the command through :mod:`bench.peak_rss`, so that its
            ``ru_maxrss`` is its own and not this process's (see that module). The
            launcher adds a few tens of milliseconds to the wall time.
        count_pattern: Regular expression; each stderr line matching it advances the
            counter stored with every RSS sample (for example one line per capture).
        sample_rss: Also read the command's ``/proc/<pid>/status`` every
            :data:`RSS_SAMPLE_INTERVAL_S`.

    Raises:
        TimeoutError: If the child runs longer than ``timeout_s``; stderr is in the message.
    """
    descriptor, name = tempfile.mkstemp(prefix="cadr-bench-rss-", suffix=".json")
    os.close(descriptor)
    result_path = Path(name)
    launched = argv
    if measure_peak or sample_rss:
        launched = [sys.executable, str(PEAK_LAUNCHER), str(result_path), "--", *argv]

    start = time.perf_counter()
    child = subprocess.Popen(launched, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env, cwd=REPO)
    pattern = re.compile(count_pattern.encode()) if count_pattern else None
    stderr_lines: list[str] = []
    stdout_chunks: list[bytes] = []
    counted = [0]
    done = threading.Event()
    samples: list[tuple[float, float, int]] = []

    def read_stderr() -> None:
        for line in child.stderr or ():
            stderr_lines.append(line.decode(errors="replace").rstrip("\n"))
            if pattern is not None and pattern.search(line):
                counted[0] += 1

    def read_stdout() -> None:
        if child.stdout is not None:
            stdout_chunks.append(child.stdout.read())

    def sample() -> None:
        status_path: Path | None = None
        while not done.wait(RSS_SAMPLE_INTERVAL_S):
            status_path = status_path or _grandchild_status(child.pid)
            rss = _vm_rss_mib(status_path) if status_path else None
            if rss is not None:
                samples.append((round(time.perf_counter() - start, 3), rss, counted[0]))

    threads = [threading.Thread(target=read_stderr, daemon=True),
               threading.Thread(target=read_stdout, daemon=True)]
    if sample_rss:
        threads.append(threading.Thread(target=sample, daemon=True))
    for thread in threads:
        thread.start()

    try:
        child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.terminate()
        child.wait()
        done.set()
        raise TimeoutError(f"{argv[0]} ran longer than {timeout_s} s; stderr:\n"
                           + "\n".join(stderr_lines[-20:])) from None
    finally:
        done.set()
    wall_s = time.perf_counter() - start
    for thread in threads:
        thread.join(timeout=10)

    returncode, peak = child.returncode, None
    if launched is not argv:
        returncode, peak = _launcher_result(result_path, returncode)
    result_path.unlink(missing_ok=True)
    return ChildRun(returncode, round(wall_s, 3), peak,
                    b"".join(stdout_chunks).decode(errors="replace"), stderr_lines, samples)


def _launcher_result(result_path: Path, returncode: int) -> tuple[int, float | None]:
    """Return the command's exit code and peak RSS in MiB as :mod:`bench.peak_rss` wrote them."""
    measured = json.loads(result_path.read_text(encoding="utf-8") or "{}")
    peak = measured.get("ru_maxrss_kib")
    return (measured.get("returncode", returncode),
            None if peak is None else round(peak / 1024, 1))


def _grandchild_status(launcher_pid: int) -> Path | None:
    """Return the status file of the launcher's child, once it has started."""
    try:
        children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text()
    except OSError:
        return None
    pids = children.split()
    return Path(f"/proc/{pids[0]}/status") if pids else None


def _vm_rss_mib(status_path: Path) -> float | None:
    try:
        text = status_path.read_text(encoding="ascii")
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return round(int(match.group(1)) / 1024, 1) if match else None


def filesystem_of(path: Path) -> str:
    """Return the type of the file system that contains ``path``, such as ``ext4``."""
    target = str(path.resolve())
    best, kind = "", "unknown"
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            parts = line.split()
            mount_point, fs_type = parts[1], parts[2]
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) > len(best):
                best, kind = mount_point, fs_type
    return kind

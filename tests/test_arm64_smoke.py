"""The emulated arm64 smoke test, run as CI runs it: scripts/arm64-smoke.sh in a subprocess.

The script takes minutes (debootstrap under qemu on a cold cache), so it runs only when
``CADR_ARM64_SMOKE=1``; CI sets it in ``.ci/run``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "arm64-smoke.sh"

#: Upper bound for a cold run (debootstrap, two wheelhouses, two installs), in seconds.
SMOKE_TIMEOUT_S = 3600

#: One comparison row: source, item, arm64 probability, x86-64 probability, difference, result.
ROW = re.compile(r"^(probe selftest|probe images|cadr-device record)\s+(\S+)\s+"
                 r"([01]\.\d{6})\s+([01]\.\d{6})\s+(\d\.\d{6})\s+(identical|within tolerance)$",
                 re.MULTILINE)

pytestmark = [
    pytest.mark.emulation,
    pytest.mark.skipif(os.environ.get("CADR_ARM64_SMOKE") != "1",
                       reason="set CADR_ARM64_SMOKE=1 to run the emulated arm64 smoke test "
                              "(needs root, binfmt_misc and several minutes)"),
]


@pytest.fixture(scope="module")
def smoke_output() -> str:
    env = {**os.environ, "CADR_HOST_PYTHON": sys.executable}
    result = subprocess.run([str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=SMOKE_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    if result.stdout.startswith("arm64 smoke test skipped:"):
        pytest.skip(result.stdout.strip())
    return result.stdout


def test_smoke_passes(smoke_output: str) -> None:
    assert "arm64 smoke test passed" in smoke_output
    assert "PASS:" in smoke_output
    assert "MISMATCH" not in smoke_output
    assert "MISSING" not in smoke_output


def test_smoke_runs_under_emulation(smoke_output: str) -> None:
    for cpu in ("cortex-a72", "cortex-a76"):
        assert re.search(rf"^arm64 \(qemu {cpu}\): aarch64 Python 3\.\d+\.\d+ ai-edge-litert ",
                         smoke_output, re.MULTILINE), cpu
    assert re.search(r"^x86-64: x86_64 Python 3\.\d+\.\d+ ai-edge-litert ", smoke_output,
                     re.MULTILINE)


def test_smoke_compares_every_source(smoke_output: str) -> None:
    rows = ROW.findall(smoke_output)
    sources = {row[0] for row in rows}

    assert sources == {"probe selftest", "probe images", "cadr-device record"}
    assert len([row for row in rows if row[0] == "probe images"]) >= 5
    assert len([row for row in rows if row[0] == "cadr-device record"]) >= 5


def test_smoke_rows_within_tolerance(smoke_output: str) -> None:
    tolerance = float(re.search(r"tolerance (\d\.\d+)", smoke_output).group(1))

    for source, item, arm64, x86, difference, _ in ROW.findall(smoke_output):
        assert abs(float(arm64) - float(x86)) <= tolerance + 1e-6, (source, item)
        assert float(difference) <= tolerance, (source, item)

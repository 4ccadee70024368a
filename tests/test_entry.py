"""The toolchain entry points on a device install, where the convert extra is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Makes imports of one top-level module fail, as on a device venv without TensorFlow or
# packaging, then runs a tool through the entry-point wrapper.
RUNNER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
sys.path.insert(0, ".")
from cadr_convert import entry
sys.exit(entry._run("cadr-tool", {module!r}))
"""

# A tool that imports its heavy dependency at module level, and one that imports it late.
TOOLS = {
    "eager_tool": "import keras\n\ndef main():\n    return 0\n",
    "lazy_tool": "def main():\n    import keras\n    return 0\n",
}


def _run_tool(tmp_path: Path, module: str, blocked: str) -> subprocess.CompletedProcess[str]:
    for name, source in TOOLS.items():
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
    script = RUNNER.format(blocked=blocked, module=module)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, check=False)


@pytest.mark.parametrize("module", ["eager_tool", "lazy_tool"])
def test_missing_convert_extra_gives_one_line(module: str, tmp_path: Path) -> None:
    result = _run_tool(tmp_path, module, blocked="keras")

    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "cadr-tool: error: missing Python package 'keras'" in result.stderr
    assert "pip install 'cadr[convert]'" in result.stderr


def test_other_missing_module_still_raises(tmp_path: Path) -> None:
    (tmp_path / "broken_tool.py").write_text("import no_such_module_here\n", encoding="utf-8")

    result = _run_tool(tmp_path, "broken_tool", blocked="keras")

    assert result.returncode == 1
    assert "ModuleNotFoundError" in result.stderr


def test_entry_point_runs_installed_tool() -> None:
    result = subprocess.run([sys.executable, "-c",
                             "import sys; from cadr_convert import entry; "
                             "sys.argv = ['cadr-lesions', '--help']; "
                             "sys.exit(entry.lesions_main())"],
                            capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0
    assert "usage: cadr-lesions" in result.stdout

"""The laptop walk-through in docs/updates.md runs as written and ends as it says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from update_support import DEMO_PRIVATE_KEY

from cadr_convert.package import resign_bundle
from cadr_convert.signing import load_private_key

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "updates.md"
DEMO_BUNDLE = "models/cadr-demo"


def walkthrough_script() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("```sh\n", text.index("## The whole flow on a laptop")) + len("```sh\n")
    return text[start:text.index("```", start)]


def stand_in_demo_bundle(directory: Path, source: Path) -> Path:
    """Return a demonstration bundle named cadr-demo, signed with the demonstration key."""
    bundle = directory / "cadr-demo"
    shutil.copytree(source, bundle)
    manifest_path = bundle / "manifest.yaml"
    fields = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    fields.update(name="cadr-demo", version="0.1.0", demonstration_only=True)
    manifest_path.write_text(yaml.safe_dump(fields, sort_keys=False), encoding="utf-8")
    resign_bundle(bundle, load_private_key(DEMO_PRIVATE_KEY))
    return bundle


def test_laptop_walkthrough_runs(tmp_path: Path, tiny_bundle: object) -> None:
    script = walkthrough_script()
    # Until the repository ships models/cadr-demo, a demonstration copy of the test
    # bundle stands in for it.
    if not (REPO / DEMO_BUNDLE / "manifest.yaml").is_file():
        stand_in = stand_in_demo_bundle(tmp_path, tiny_bundle.bundle)  # type: ignore[attr-defined]
        script = script.replace(DEMO_BUNDLE, str(stand_in))
    script += '\necho "LAB=$LAB"\n'
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "TMPDIR": str(tmp_path)}

    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run([bash, "-c", script], capture_output=True, text=True,
                            timeout=600, check=False, cwd=REPO, env=env)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("exit ")] == ["exit 0", "exit 10"]
    lab = Path(lines[-1].removeprefix("LAB="))
    bundles = lab / "root" / "bundles"
    assert os.readlink(bundles / "current") == "cadr-demo-9.0.0"
    first = os.readlink(bundles / "previous")
    assert first.startswith("cadr-demo-")
    assert first != "cadr-demo-9.0.0"
    assert "the package was altered or damaged" in result.stderr
    assert not (bundles / "cadr-demo-9.1.0").exists()

"""Bundles with accelerator entries for the back-end tests, signed with the demonstration key.

The Edge TPU file is a copy of the bundle's CPU model (no compiled Edge TPU model exists
here; the fake delegate runs it on the CPU), and the IMX500 file is a small zip standing in
for ``packerOut.zip`` (only the fake ``imx500-package`` reads it).
"""

from __future__ import annotations

import shutil
import stat
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml
from device_bundle import DEMO_KEY, INPUT_SIZE

from cadr_convert.bundle_writer import write_manifest
from cadr_convert.signing import load_private_key, sign_bundle
from cadr_device.bundle import Bundle, load_bundle
from cadr_device.manifest import MANIFEST_NAME, SIGNATURE_NAME
from cadr_device.signing import Keyring, default_key_dir

FAKE_PACKAGER = """\
#!{python}
import os, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["FAKE_PACKAGER_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if os.environ.get("FAKE_PACKAGER_FAIL"):
    sys.stderr.write("Error: packerOut.zip is not a valid IMX500 package\\n")
    sys.exit(1)
out_dir = Path(args[args.index("-o") + 1])
out_dir.mkdir(parents=True, exist_ok=True)
(out_dir / "network.rpk").write_bytes(b"placeholder network.rpk from the fake imx500-package")
"""


def with_accelerators(base: Path, directory: Path, *, edgetpu: bool = False,
                      imx500: bool = False, imx500_size: int = INPUT_SIZE,
                      imx500_threshold: Any = 0.6) -> Bundle:
    """Copy ``base`` to ``directory``, add the requested accelerator files, re-sign and load it."""
    shutil.copytree(base, directory)
    manifest: dict[str, Any] = yaml.safe_load((directory / MANIFEST_NAME).read_text())
    manifest.pop("files")
    accelerators: dict[str, Any] = {}

    if edgetpu:
        (directory / "edgetpu").mkdir()
        shutil.copyfile(directory / "model.tflite", directory / "edgetpu" / "model_edgetpu.tflite")
        accelerators["edgetpu"] = {"file": "edgetpu/model_edgetpu.tflite",
                                   "delegate": "libedgetpu.so.1", "min_runtime_version": 14}
    if imx500:
        (directory / "imx500").mkdir()
        with zipfile.ZipFile(directory / "imx500" / "packerOut.zip", "w") as packer:
            packer.writestr("dnnParams.xml", "<dnnParams/>")
        accelerators["imx500"] = {
            "file": "imx500/packerOut.zip",
            "input": {"width": imx500_size, "height": imx500_size, "color_order": "RGB"},
            "output": {"positive_index": 0},
            "decision": {"threshold": imx500_threshold, "target_sensitivity": 0.9},
        }

    manifest["accelerators"] = accelerators
    (directory / MANIFEST_NAME).unlink()
    (directory / SIGNATURE_NAME).unlink()
    write_manifest(directory, manifest)
    sign_bundle(directory, load_private_key(DEMO_KEY))
    return load_bundle(directory, Keyring.from_directory(default_key_dir()))


def install_fake_packager(bin_dir: Path) -> Path:
    """Write a fake ``imx500-package`` into ``bin_dir``; it logs its argv to $FAKE_PACKAGER_LOG."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "imx500-package"
    script.write_text(FAKE_PACKAGER.format(python=sys.executable), encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script

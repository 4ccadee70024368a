"""Writing a bundle's manifest with the sha256 of every file, then signing it.

The converter and the trainer assemble a bundle directory's files first, then call
:func:`write_manifest` with everything but ``files``; it hashes what is on disk so the
list can never disagree with the directory. The result is checked with the device's own
parser, so a bundle that the device would reject is never written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cadr_device.bundle import sha256_file
from cadr_device.manifest import MANIFEST_NAME, SIGNATURE_NAME, parse_manifest


def write_manifest(bundle_dir: Path, fields: dict[str, Any]) -> Path:
    """Hash every file in ``bundle_dir``, write ``manifest.yaml`` and validate it.

    Args:
        bundle_dir: The directory holding the model, self-test inputs and reports.
        fields: Every manifest key except ``files``.

    Returns:
        The manifest path.

    Raises:
        BundleError: If the result does not pass the device's manifest validation.
    """
    files = {
        p.relative_to(bundle_dir).as_posix(): sha256_file(p)
        for p in sorted(bundle_dir.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST_NAME, SIGNATURE_NAME)
    }
    manifest = {**fields, "files": files}
    text = yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=100)

    path = bundle_dir / MANIFEST_NAME
    parse_manifest(text, path)
    path.write_text(text, encoding="utf-8")
    return path

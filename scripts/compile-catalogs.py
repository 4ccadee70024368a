#!/usr/bin/env python3
"""Compile device/locale/*/LC_MESSAGES/*.po into the .mo files gettext loads.

Pure Python, so no gettext tools are needed; the .mo files are committed so an
installed package works without running this. Supports the subset of the PO format
the catalogs use: comments, msgid/msgstr with continuation lines, no plurals or
contexts (a catalog using them is rejected with its file and line).

Usage: python scripts/compile-catalogs.py [--check]
  --check  exit 1 if a committed .mo differs from what its .po compiles to
"""

from __future__ import annotations

import argparse
import ast
import struct
import sys
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "device" / "locale"

#: GNU .mo magic number, little-endian, and the format revision written.
MO_MAGIC = 0x950412DE
MO_REVISION = 0

#: Bytes of the .mo header: magic, revision, count, two table offsets, hash size and offset.
MO_HEADER_BYTES = 7 * 4


class PoError(Exception):
    """A .po file uses syntax this compiler does not accept."""


def parse_po(path: Path) -> dict[str, str]:
    """Return msgid → msgstr of a .po file, including the header entry (msgid "")."""
    messages: dict[str, str] = {}
    key: str | None = None
    current: str | None = None
    parts: dict[str, list[str]] = {}

    def finish() -> None:
        if "msgid" in parts:
            if "msgstr" not in parts:
                raise PoError(f"{path}: msgid {''.join(parts['msgid'])!r} has no msgstr")
            messages["".join(parts["msgid"])] = "".join(parts["msgstr"])

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("msgctxt", "msgid_plural", "msgstr[")):
            raise PoError(f"{path}:{number}: contexts and plurals are not supported")
        if line.startswith(("msgid ", "msgstr ")):
            key, _, rest = line.partition(" ")
            if key == "msgid":
                finish()
                parts = {}
            current = key
            parts[key] = [_unquote(rest, path, number)]
        elif line.startswith('"') and current is not None:
            parts[current].append(_unquote(line, path, number))
        else:
            raise PoError(f"{path}:{number}: unexpected line {raw!r}")
    finish()
    return messages


def _unquote(text: str, path: Path, number: int) -> str:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
        raise PoError(f"{path}:{number}: invalid string {text!r}") from e
    if not isinstance(value, str):
        raise PoError(f"{path}:{number}: expected a quoted string, got {text!r}")
    return value


def mo_bytes(messages: dict[str, str]) -> bytes:
    """Return a GNU .mo file for ``messages``; untranslated (empty) entries are left out."""
    entries = sorted((k, v) for k, v in messages.items() if v or k == "")
    ids = [k.encode("utf-8") for k, _ in entries]
    strs = [v.encode("utf-8") for _, v in entries]

    originals_offset = MO_HEADER_BYTES
    translations_offset = originals_offset + 8 * len(entries)
    data_offset = translations_offset + 8 * len(entries)

    tables = b""
    data = b""
    for group in (ids, strs):
        for item in group:
            tables += struct.pack("<II", len(item), data_offset + len(data))
            data += item + b"\0"

    header = struct.pack("<7I", MO_MAGIC, MO_REVISION, len(entries), originals_offset,
                         translations_offset, 0, data_offset)
    return header + tables + data


def main() -> int:
    """Compile every catalog, or with --check report stale ones; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if any .mo is missing or out of date")
    args = parser.parse_args()

    stale = []
    for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po")):
        compiled = mo_bytes(parse_po(po))
        mo = po.with_suffix(".mo")
        if args.check:
            if not mo.is_file() or mo.read_bytes() != compiled:
                stale.append(mo)
            continue
        mo.write_bytes(compiled)
        print(f"compiled {po.relative_to(LOCALE_DIR)}")

    for mo in stale:
        print(f"{mo}: out of date; run python scripts/compile-catalogs.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

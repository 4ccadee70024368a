"""Safe display form of file names that come from outside (replay folders, USB sticks).

A POSIX file name is any byte string. Python decodes bytes that are not UTF-8 into lone
surrogates, which ``json.dumps(...).encode()`` cannot write, and a name may contain
newlines or terminal escapes that break table rows and log lines. :func:`display_name`
is the one place that turns such a name into text fit for records, logs and the screen.
"""

from __future__ import annotations

import os


def display_name(name: str | os.PathLike[str]) -> str:
    r"""Return ``name`` as printable UTF-8 text.

    Bytes that are not UTF-8 become U+FFFD, and characters that are not printable
    (newline, ESC, other control and format characters) become backslash escapes such
    as ``\n`` or ``\x1b``. Printable non-ASCII text such as Japanese is kept.
    """
    text = os.fspath(name)
    try:
        raw = os.fsencode(text)
    except UnicodeEncodeError:
        # A surrogate that did not come from decoding a file name.
        raw = text.encode("utf-8", "replace")
    decoded = raw.decode("utf-8", "replace")
    return "".join(_printable(character) for character in decoded)


def _printable(character: str) -> str:
    if character.isprintable():
        return character
    return character.encode("unicode_escape").decode("ascii")

"""A counter on stderr for loops over images: redrawn in place on a terminal, lines otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

#: Lines written when stderr is not a terminal, at evenly spaced counts.
NON_TTY_UPDATES = 10


class Progress:
    """Show ``label: done/total`` while a loop runs; call :meth:`advance` once per item."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self._step = max(1, total // NON_TTY_UPDATES)

    def advance(self, count: int = 1) -> None:
        """Count ``count`` finished items and redraw when due."""
        self.done += count
        if self.interactive:
            self.stream.write(f"\r{self.label}: {self.done}/{self.total}")
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif self.done % self._step == 0 or self.done >= self.total:
            self.stream.write(f"{self.label}: {self.done}/{self.total}\n")
            self.stream.flush()

"""Semantic version parsing and comparison (``MAJOR.MINOR.PATCH`` only, as manifests use)."""

from __future__ import annotations

import re

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


def parse_version(text: str) -> tuple[int, int, int]:
    """Return ``(major, minor, patch)`` of ``text``.

    Raises:
        ValueError: If ``text`` is not ``MAJOR.MINOR.PATCH`` with non-negative integers.

    """
    match = _SEMVER.match(text)
    if match is None:
        raise ValueError(f"version must be MAJOR.MINOR.PATCH, got {text!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def is_valid_version(text: str) -> bool:
    """Return whether ``text`` is a ``MAJOR.MINOR.PATCH`` version."""
    return _SEMVER.match(text) is not None

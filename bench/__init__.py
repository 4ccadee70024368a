"""Benchmarks of cadr: run ``python -m bench`` from the repository root."""

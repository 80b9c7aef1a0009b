"""Reproducible benchmarks: `python -m benchmarks.encrypt --json` (see docs/performance.md)."""

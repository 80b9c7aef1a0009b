"""`python -m benchmarks.encrypt --json --quick` runs and reports every figure.

A smoke test of the benchmark's plumbing, not of speed: the figures of a short run
on a shared CI machine mean nothing, so none is compared with a target here."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

KEYS = (
    "native_single_us",
    "pywebpush_us",
    "bound_us",
    "native_batch_msgs_per_s",
    "native_single_msgs_per_s",
    "ratio_vs_pywebpush",
    "ratio_of_bound",
    "batch_speedup",
)


@pytest.mark.slow
class TestBenchmarkSmoke:
    def test_quick_json_run_reports_every_figure(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.encrypt", "--json", "--quick"],
            cwd=REPO,
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr

        report = json.loads(result.stdout)  # exactly one JSON object on stdout

        for key in KEYS:
            value = report[key]
            assert isinstance(value, int | float) and not isinstance(value, bool), key
            assert math.isfinite(value) and value > 0, (key, value)
        # Memory can also shrink over a short run: any finite number is a valid reading.
        growth = report["rss_growth_mb"]
        assert isinstance(growth, int | float) and math.isfinite(growth)
        assert report["messages"] == 10_000
        assert report["quick"] is True

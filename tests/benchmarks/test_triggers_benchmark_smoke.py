"""`python -m benchmarks.triggers --quick --json` runs and reports every figure.

A smoke test of the benchmark's plumbing (nginx as the push service logging arrivals,
the load generator in its own process, a live campaign pushing every event), not of
speed: no latency is compared with the target here. What it does check is what the
figures rest on: every event was pushed exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXIT_NO_SINK = 3


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.triggers", "--quick", "--json"],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode == EXIT_NO_SINK:
        pytest.skip(result.stderr.strip().splitlines()[-1])
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.mark.slow
class TestTriggersBenchmarkSmoke:
    def test_every_event_is_pushed_once(self, report: dict[str, Any]) -> None:
        assert (report["rate_asked"], report["seconds"], report["events"]) == (100, 10.0, 1000)
        assert report["events_refused"] == 0, report["refusals"]
        assert (report["pushed"], report["missing"], report["duplicated"]) == (1000, 0, 0)
        assert 1 <= report["runs"] <= 1000

    def test_reports_the_latency_percentiles_and_the_rate(self, report: dict[str, Any]) -> None:
        latency = report["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
        assert 0 < report["events_per_s"] <= 110
        assert report["cpu_seconds"] > 0
        assert isinstance(report["meets_target"], bool)

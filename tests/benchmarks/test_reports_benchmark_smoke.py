"""`python -m benchmarks.reports --database sqlite --recipients 2000 --json` runs, reports
every figure, and the report's numbers are the ones it loaded.

A smoke test of the benchmark's plumbing (load through the store, reports timed over
gRPC, the JSON), not of speed: 2,000 recipients on SQLite say nothing about the 200 ms
target at 1M on PostgreSQL, so no latency is compared with it here.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.support.benchmark_runs import run_benchmark


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return run_benchmark(
        "benchmarks.reports", "--database", "sqlite", "--recipients", "2000", "--calls", "5"
    )


@pytest.mark.slow
class TestReportsBenchmarkSmoke:
    def test_reports_every_figure(self, report: dict[str, Any]) -> None:
        assert "error" not in report, report
        assert (report["database"], report["recipients"], report["calls"]) == ("sqlite", 2000, 5)
        for timing in ("run_report_ms", "campaign_report_ms"):
            figures = report[timing]
            assert set(figures) == {"p50", "p99", "max"}
            assert all(math.isfinite(v) and v > 0 for v in figures.values()), timing
            assert figures["p50"] <= figures["p99"] <= figures["max"]
        assert report["load_seconds"] > 0 and report["target_ms"] == 200.0
        assert isinstance(report["target_met"], bool)

    def test_the_reports_numbers_are_what_was_loaded(self, report: dict[str, Any]) -> None:
        assert report["report_matches_load"] is True
        assert report["reported"] == report["expected"]
        assert report["expected"]["run_audience"] == 2000
        assert report["expected"]["audience"] == 2000 + 9 * 1000
        assert report["expected"]["run_sent"] > 0 and report["expected"]["run_viewed"] > 0
        assert report["browsers_reported"] == 4

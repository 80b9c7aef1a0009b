"""`python -m benchmarks.reports --figure outcomes --database sqlite --outcomes 6000 --json`
runs and reports its figures: a smoke test of the plumbing (a reporting server in a
process of its own, outcomes over gRPC, CPU read from /proc), not of speed."""

from __future__ import annotations

import pytest

from tests.support.benchmark_runs import run_benchmark


@pytest.mark.slow
class TestOutcomesFigureSmoke:
    def test_records_every_outcome_and_reports_its_cpu(self) -> None:
        report = run_benchmark(
            "benchmarks.reports", "--figure", "outcomes", "--database", "sqlite",
            "--outcomes", "6000",
        )  # fmt: skip
        assert "error" not in report, report
        assert (report["figure"], report["database"]) == ("outcomes", "sqlite")
        # Two calls (5,000 and 1,000), every outcome new.
        assert report["outcomes"] == report["recorded"] == 6000
        assert report["server_cpu_us_per_outcome"] > 0
        assert report["database_cpu_us_per_outcome"] is None  # SQLite runs in the server
        assert len(report["loadavg"]) == 3

"""`python -m benchmarks.reports --figure outcomes --database sqlite --outcomes 6000 --json`
runs and reports its figures: a smoke test of the plumbing (a reporting server in a
process of its own, outcomes over gRPC, CPU read from /proc), not of speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
class TestOutcomesFigureSmoke:
    def test_records_every_outcome_and_reports_its_cpu(self) -> None:
        result = subprocess.run(
            [
                sys.executable, "-m", "benchmarks.reports", "--figure", "outcomes",
                "--database", "sqlite", "--outcomes", "6000", "--json",
            ],
            cwd=REPO,
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        report = json.loads(result.stdout)
        assert "error" not in report, report
        assert (report["figure"], report["database"]) == ("outcomes", "sqlite")
        # Two calls (5,000 and 1,000), every outcome new.
        assert report["outcomes"] == report["recorded"] == 6000
        assert report["server_cpu_us_per_outcome"] > 0
        assert report["database_cpu_us_per_outcome"] is None  # SQLite runs in the server
        assert len(report["loadavg"]) == 3

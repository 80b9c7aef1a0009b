"""`python -m benchmarks.segments --quick --json` runs and reports every figure, on both
databases.

A smoke test of the benchmark's plumbing (generated data loaded, each RPC timed, the
report), not of speed: small sizes on a shared CI machine say nothing about the targets,
so no figure is compared with one here.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FIGURES = (
    "load_seconds", "count_behaviour_s", "count_behaviour_first_s", "count_property_s",
    "count_property_first_s", "estimate_reach_s",
    "match_one_profile_ms", "ingest_events_per_s", "stream_1m_s", "register_per_s",
    "import_per_s", "reimport_per_s",
)  # fmt: skip


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    env = dict(os.environ)
    # In CI the suite's PostgreSQL serves the benchmark too (else it starts its own).
    if "CLARION_TEST_POSTGRES_URL" in env:
        env.setdefault("CLARION_BENCH_POSTGRES_URL", env["CLARION_TEST_POSTGRES_URL"])
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.segments", "--quick", "--json"],
        cwd=REPO,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return dict(json.loads(result.stdout))  # exactly one JSON object on stdout


@pytest.mark.slow
class TestSegmentsBenchmarkSmoke:
    @pytest.mark.parametrize("database", ["postgres", "sqlite"])
    def test_reports_every_figure(self, report: dict[str, Any], database: str) -> None:
        result = report[database]
        assert "error" not in result, result
        for figure in FIGURES:
            value = result[figure]
            assert isinstance(value, int | float) and math.isfinite(value) and value > 0, figure
        assert result["stream_rss_growth_mb"] >= 0
        # The gateway runs in a process of its own: its CPU is counted apart, and so is
        # the importing client's.
        assert result["register_gateway_cpu_us"] > 0 and result["import_client_cpu_us"] > 0
        runs = [result[f"{figure}_runs"] for figure in ("register", "import", "reimport")]
        assert [len(of_figure) for of_figure in runs] == [3, 3, 3]
        # Each run says how fast the VM was just before it (its speed drifts within a run).
        for run in (run for of_figure in runs for run in of_figure):
            assert run["reference_loop_s_before"] > 0
        assert 0 <= result["estimate_error_pct"] < 100
        if database == "postgres":
            # The log an ingested event wrote: at least its row and a few index entries.
            assert result["ingest_wal_bytes"] > 300
        else:
            assert "ingest_wal_bytes" not in result
        # The machine's speed beside the figures, so runs can be compared.
        assert report["reference_loop_s"] > 0

    @pytest.mark.parametrize("database", ["postgres", "sqlite"])
    def test_counts_are_of_the_generated_data(self, report: dict[str, Any], database: str) -> None:
        result = report[database]
        # The behaviour segment selects some people, not all; a run's audience streams
        # every reachable subscriber of the generated ones.
        assert 0 < result["behaviour_people"] < result["profiles"]
        assert result["behaviour_reachable"] <= result["subscribers"]
        assert 0.9 * result["subscribers"] < result["stream_members"] <= result["subscribers"]

    def test_reports_the_load_average(self, report: dict[str, Any]) -> None:
        assert len(report["loadavg_start"]) == 3

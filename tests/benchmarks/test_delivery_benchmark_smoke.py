"""`python -m benchmarks.delivery --quick --json` runs and reports every figure.

A smoke test of the benchmark's plumbing (sink, subscriptions, the four senders, the
report), not of speed: a 2000-message run on a shared CI machine says nothing about
throughput, so no figure is compared with a target here. It needs nginx (the sink),
which the benchmark installs with apt-get when it is missing; the test is skipped
only where that is impossible.
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
EXIT_NO_SINK = 3  # benchmarks.delivery: nginx is missing and cannot be installed

DATABASES = ("sqlite", "postgres")
CLARION_MODES = ("clarion_sqlite", "clarion_postgres", "clarion_postgres_2proc", "clarion_apns")
MODES = (*CLARION_MODES, "pywebpush", "bare_http", "bare_native", "encrypt_batch")


def assert_positive(stats: Any, name: str) -> None:
    assert isinstance(stats, dict), (name, stats)
    for key in ("median", "min", "max"):
        value = stats[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), (name, key)
        assert math.isfinite(value) and value > 0, (name, key, value)
    assert stats["min"] <= stats["median"] <= stats["max"], (name, stats)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    env = dict(os.environ)
    # In CI the suite's PostgreSQL serves the benchmark too (else it starts its own).
    if "CLARION_TEST_POSTGRES_URL" in env:
        env.setdefault("CLARION_BENCH_POSTGRES_URL", env["CLARION_TEST_POSTGRES_URL"])
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.delivery", "--quick", "--json"],
        cwd=REPO,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode == EXIT_NO_SINK:
        reason = result.stderr.strip().splitlines()[-1]
        print(reason)
        pytest.skip(reason)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))  # exactly one JSON object on stdout


@pytest.mark.slow
class TestDeliveryBenchmarkSmoke:
    def test_reports_the_baselines(self, report: dict[str, Any]) -> None:
        assert report["errors"] is None, report["errors"]
        assert_positive(report["pywebpush_msgs_per_s"], "pywebpush_msgs_per_s")
        assert_positive(report["bare_http_msgs_per_s"], "bare_http_msgs_per_s")
        assert_positive(report["encrypt_batch_msgs_per_s"], "encrypt_batch_msgs_per_s")
        assert_positive(report["bare_native_msgs_per_s"], "bare_native_msgs_per_s")
        assert_positive(report["bare_native_vs_pywebpush"], "bare_native_vs_pywebpush")

    def test_reports_two_delivery_processes_and_legacy_safari(
        self, report: dict[str, Any]
    ) -> None:
        assert report["clarion_error"] is None, report["clarion_error"]
        assert_positive(report["clarion_2proc_msgs_per_s"], "clarion_2proc_msgs_per_s")
        assert_positive(report["ratio_vs_pywebpush_2proc"], "ratio_vs_pywebpush_2proc")
        assert_positive(report["apns_msgs_per_s"], "apns_msgs_per_s")
        assert report["apns_recipients"] == 300
        for mode in CLARION_MODES:
            assert_positive(report["delivery_peak_rss_mb"][mode], f"delivery_peak_rss_mb.{mode}")
        # Only with --rss-1m (ten minutes: not in the suite).
        assert report["delivery_rss_mb_at_1m"] is None
        assert len(report["loadavg"]) == 3

    def test_reports_clarion_on_both_databases(self, report: dict[str, Any]) -> None:
        assert report["clarion_error"] is None, report["clarion_error"]
        for database in DATABASES:
            for figure in (
                "clarion_msgs_per_s",
                "send_call_seconds",
                "ratio_vs_pywebpush",
                "ratio_of_http_ceiling",
                "ratio_of_crypto_ceiling",
            ):
                assert_positive(report[figure][database], f"{figure}.{database}")

    def test_reports_cost_per_sender(self, report: dict[str, Any]) -> None:
        for mode in ("pywebpush", "bare_http"):
            assert_positive(report["cpu_ms_per_msg"][mode], f"cpu_ms_per_msg.{mode}")
            assert_positive(report["peak_rss_mb"][mode], f"peak_rss_mb.{mode}")
        if report["clarion_error"] is None:
            for mode in CLARION_MODES:
                assert_positive(report["cpu_ms_per_msg"][mode], f"cpu_ms_per_msg.{mode}")
                assert_positive(report["peak_rss_mb"][mode], f"peak_rss_mb.{mode}")
        load = report["loadavg_1m_at_start"]
        assert isinstance(load, float) and load >= 0

    def test_is_a_quick_run(self, report: dict[str, Any]) -> None:
        assert report["quick"] is True
        assert report["subscribers"] == 2000
        assert report["repeat"] == 1
        assert report["payload_bytes"] == 239
        assert set(report["cpu_ms_per_msg"]) == set(MODES)
        assert set(report["targets_met"]) == {f"ratio_vs_pywebpush_{d}" for d in DATABASES}

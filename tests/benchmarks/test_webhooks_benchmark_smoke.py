"""`python -m benchmarks.webhooks` on 1,000 events with the full failure mix (20 % answered
500, 1 % held past the sender's timeout) on SQLite: every event reaches the receiver,
every signature verifies.

A smoke test of the benchmark's plumbing and of its two hard figures (lost and
signature_failures must be 0), not of speed. Retries run at 1/1000 of reporting's
schedule (--retry-scale 0.001), so the run's tail is seconds, not hours.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EVENTS = 1000


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.webhooks", "--events", str(EVENTS),
            "--retry-scale", "0.001", "--deadline", "90", "--json",
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return dict(json.loads(result.stdout))  # exactly one JSON object on stdout


@pytest.mark.slow
class TestWebhooksBenchmarkSmoke:
    def test_no_event_is_lost_and_every_signature_verifies(self, report: dict[str, Any]) -> None:
        assert report["database"] == "sqlite"
        assert report["recorded"] == EVENTS
        assert report["delivered"] == EVENTS, report
        assert report["lost"] == 0, report
        assert report["signature_failures"] == 0, report
        assert report["unexpected"] == 0, report

    def test_the_receiver_failed_and_held_requests_that_were_retried(
        self, report: dict[str, Any]
    ) -> None:
        # ~20 % of ~1,270 attempts answered 500 and ~1 % held past the 10 s timeout; each
        # failed attempt was made again, so there are more attempts than events.
        assert 0.1 * EVENTS < report["answered_500"] < 0.4 * EVENTS, report
        assert report["held_past_timeout"] > 0, report
        assert report["attempts"] >= EVENTS + report["answered_500"], report
        assert report["max_attempts_of_one_event"] >= 2, report
        assert report["dead_letters"] == 0, report

    def test_reports_rate_lag_and_duplicates(self, report: dict[str, Any]) -> None:
        for figure in ("events_per_s", "seconds", "lag_p50_s", "lag_p99_s"):
            value = report[figure]
            assert isinstance(value, int | float) and math.isfinite(value) and value > 0, figure
        assert report["lag_p50_s"] <= report["lag_p99_s"] <= report["lag_max_s"]
        # A held request is a timeout for the sender: it is sent again under the same
        # webhook-id, and answered 200 only once.
        assert report["duplicates"] == 0, report
        assert report["retry_delays_s"][0] == pytest.approx(0.005)
        assert len(report["loadavg_start"]) == len(report["loadavg_end"]) == 3

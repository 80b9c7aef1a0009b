"""`python -m benchmarks.personalization --quick --json` runs and reports every figure.

A smoke test of the benchmark's plumbing, not of speed: no figure is compared with a
target here (a shared CI machine says nothing about microseconds)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIGURES = (
    "engagement_token_us",
    "plain_payload_us",
    "personalized_payload_us",
    "encrypt_us",
    "personalization_share_of_encrypt",
)


def test_the_quick_run_prints_every_figure_as_json() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.personalization", "--quick", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["recipients"] == 1000
    assert report["repetitions"] == 1
    for name in FIGURES:
        stats = report[name]
        assert set(stats) == {"median", "min", "max"}, name
        assert all(math.isfinite(value) for value in stats.values()), name
    for name in FIGURES[:4]:
        assert report[name]["median"] > 0, name

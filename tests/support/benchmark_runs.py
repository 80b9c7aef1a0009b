"""Runs a benchmark module as a user would (`python -m benchmarks.<name> ... --json`) and
returns the one JSON object it prints, failing with the end of its output otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_benchmark(module: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", module, *args, "--json"],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return dict(json.loads(result.stdout))  # exactly one JSON object on stdout

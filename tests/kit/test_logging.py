"""Logs as an operator reads them: the standard library's records (grpc, sqlalchemy,
asyncio...) formatted like Clarion's own, and no secret in either.

The output checked is the real configured one: a process of its own calls
configure_logging, logs, and its stderr is read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.kit.logging import OncePer

ROOT = Path(__file__).resolve().parent.parent.parent

SECRETS = {
    "bearer": "sk_live_bearer_0123456789",
    "api_key": "ak_0123456789abcdef",
    "internal_token": "it_0123456789abcdef",
    "vapid": "vapid_private_0123456789",
    "engagement": "engagement_0123456789",
    "query": "auth_in_query_0123456789",
}

SCRIPT = f"""
import logging, sys
from services.kit.logging import configure_logging, get_logger

configure_logging(sys.argv[1], "INFO")
s = {SECRETS!r}
# The standard library's loggers, as grpc, sqlalchemy or asyncio would log.
logging.getLogger("grpc._cython").warning(
    "call failed: metadata (('authorization', 'Bearer %s'),)", s["bearer"]
)
logging.getLogger("sqlalchemy.engine").warning(
    "connect with api_key=%s", s["api_key"], extra={{"api_key": s["api_key"], "attempt": 2}}
)
logging.getLogger("aiohttp.client").info(
    "POST https://fcm.googleapis.com/fcm/send/abc?auth=%s", s["query"]
)
try:
    raise RuntimeError("token mismatch: Bearer " + s["bearer"])
except RuntimeError:
    logging.getLogger("asyncio").exception("Task exception was never retrieved")
# Clarion's own.
log = get_logger("clarion.test")
log.info(
    "site credentials",
    internal_token=s["internal_token"],
    vapid_private_key=s["vapid"].encode(),
    engagement_secret=s["engagement"],
    endpoint="https://updates.push.services.mozilla.com/wpush/v2/x?k=" + s["query"],
    headers={{"Authorization": "vapid t=" + s["vapid"] + ", k=public"}},
    tokens_asked=3,
)
logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
"""


def configured_output(fmt: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, fmt],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    return result.stderr


class TestOneFormatForEveryLogger:
    def test_standard_library_records_are_json_lines_like_ours(self) -> None:
        records = [json.loads(line) for line in configured_output("json").splitlines()]
        by_logger = {record["logger"]: record for record in records}
        assert set(by_logger) == {
            "grpc._cython",
            "sqlalchemy.engine",
            "aiohttp.client",
            "asyncio",
            "clarion.test",
        }
        for record in records:
            assert {"event", "level", "logger", "timestamp"} <= set(record), record
        assert by_logger["sqlalchemy.engine"]["attempt"] == 2  # `extra` fields kept
        assert "Traceback" in by_logger["asyncio"]["exception"]
        assert by_logger["clarion.test"]["tokens_asked"] == 3  # a count is no secret

    def test_alembic_chatter_is_left_out_at_info(self) -> None:
        assert "Context impl" not in configured_output("json")


class TestRedaction:
    @pytest.mark.parametrize("fmt", ["json", "console"])
    def test_no_secret_reaches_the_log(self, fmt: str) -> None:
        output = configured_output(fmt)
        for name, secret in SECRETS.items():
            assert secret not in output, name
        assert "[redacted]" in output

    def test_what_is_redacted_and_what_is_kept(self) -> None:
        records = {r["logger"]: r for r in map(json.loads, configured_output("json").splitlines())}
        assert records["grpc._cython"]["event"] == (
            "call failed: metadata (('authorization', 'Bearer [redacted]'),)"
        )
        assert records["sqlalchemy.engine"]["api_key"] == "[redacted]"
        assert records["sqlalchemy.engine"]["event"] == "connect with api_key=[redacted]"
        # The push service stays visible; the query string does not.
        assert records["aiohttp.client"]["event"] == (
            "POST https://fcm.googleapis.com/fcm/send/abc?[redacted]"
        )
        ours = records["clarion.test"]
        for key in ("internal_token", "vapid_private_key", "engagement_secret"):
            assert ours[key] == "[redacted]", key
        assert ours["endpoint"].endswith("/wpush/v2/x?[redacted]")
        assert ours["headers"] == {"Authorization": "[redacted]"}


class TestOncePer:
    def test_once_per_key_per_window(self) -> None:
        now = [0.0]
        once = OncePer(60, timer=lambda: now[0])
        assert [once("fcm"), once("fcm"), once("mozilla"), once("fcm")] == [
            True,
            False,
            True,
            False,
        ]
        now[0] = 59.0
        assert not once("fcm")
        now[0] = 61.0
        assert once("fcm") and not once("fcm")

    def test_bounded(self) -> None:
        once = OncePer(3600, max_keys=10)
        assert all(once(n) for n in range(1000))
        assert len(once._seen) == 10

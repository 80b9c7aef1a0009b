"""Pure rules: what a push answer means, backoff, Retry-After, the payload and the Topic."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from services.delivery.domain.payload import build_payload, topic_for
from services.delivery.domain.rules import (
    Failed,
    PushAnswer,
    RetryLater,
    RetryPolicy,
    Sent,
    decide,
    parse_retry_after,
)
from services.delivery.store import NewRun
from services.kit.clock import FrozenClock

POLICY = RetryPolicy(max_attempts=3, base_seconds=2.0, max_seconds=60.0)
NOW = FrozenClock().now()


class TestDecide:
    @pytest.mark.parametrize("status", [200, 201, 202])
    def test_accepted_is_sent(self, status: int) -> None:
        assert decide(PushAnswer(status=status), 1, POLICY, NOW) == Sent()

    @pytest.mark.parametrize(
        ("status", "verdict"),
        [
            (404, Failed("push_service_404", unsubscribe=True)),
            (410, Failed("push_service_410", unsubscribe=True)),
            (413, Failed("payload_too_large")),
            (400, Failed("push_service_400")),
            (401, Failed("push_service_401")),
            (403, Failed("push_service_403")),
        ],
    )
    def test_permanent_failures(self, status: int, verdict: Failed) -> None:
        assert decide(PushAnswer(status=status), 1, POLICY, NOW) == verdict

    def test_429_waits_as_long_as_retry_after_says(self) -> None:
        verdict = decide(PushAnswer(status=429, retry_after="7"), 1, POLICY, NOW)
        assert verdict == RetryLater("push_service_429", 7.0)

    @pytest.mark.parametrize(
        ("answer", "reason"),
        [
            (PushAnswer(status=503), "push_service_5xx"),
            (PushAnswer(error="timeout"), "timeout"),
            (PushAnswer(error="connection_error"), "connection_error"),
        ],
    )
    def test_transient_failures_retry_then_fail(self, answer: PushAnswer, reason: str) -> None:
        first = decide(answer, 1, POLICY, NOW)
        assert isinstance(first, RetryLater) and first.reason == reason
        assert decide(answer, POLICY.max_attempts, POLICY, NOW) == Failed(reason)


class TestBackoff:
    def test_grows_exponentially_with_bounded_jitter_and_a_cap(self) -> None:
        for attempt, base in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)]:
            delay = POLICY.backoff(attempt)
            assert base <= delay <= base * 1.25


class TestRetryAfter:
    def test_seconds(self) -> None:
        assert parse_retry_after("120", NOW) == 120.0

    def test_http_date(self) -> None:
        later = NOW + timedelta(seconds=90)
        header = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
        assert parse_retry_after(header, NOW) == 90.0

    @pytest.mark.parametrize("value", [None, "", "soon", "-5"])
    def test_unusable_values_mean_default_backoff(self, value: str | None) -> None:
        assert parse_retry_after(value, NOW) is None


class TestPayload:
    def test_compact_utf8_with_empty_values_left_out(self) -> None:
        run = NewRun(
            "site", "run_1", "cmp_1", "Été", "", "", "https://i/x.png", "https://t/", 60, "low"
        )
        payload = build_payload(run)
        assert (
            payload
            == (
                '{"title":"Été","image":"https://i/x.png","url":"https://t/",'
                '"campaign_id":"cmp_1","run_id":"run_1"}'
            ).encode()
        )
        assert json.loads(payload)["title"] == "Été"


class TestTopic:
    def test_is_stable_short_and_url_safe(self) -> None:
        topic = topic_for("run_abc")
        assert topic == topic_for("run_abc") != topic_for("run_abd")
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", topic)

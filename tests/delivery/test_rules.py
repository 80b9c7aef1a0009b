"""Pure rules: what a push answer means, backoff, Retry-After, the per-recipient payload,
the Topic, and the closed set of reasons."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from clarion.common.v1 import common_pb2
from services.delivery.adapters.grpc_peers import reason_enum
from services.delivery.domain.payload import (
    MAX_PAYLOAD_BYTES,
    PER_RECIPIENT_ROOM,
    PayloadError,
    check_shared_payload,
    for_recipient,
    topic_for,
)
from services.delivery.domain.rules import (
    Expired,
    Failed,
    PushAnswer,
    Reason,
    RetryLater,
    RetryPolicy,
    Sent,
    decide,
    parse_retry_after,
)
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
            (404, Failed(Reason.PUSH_SERVICE_404, unsubscribe=True)),
            (410, Failed(Reason.PUSH_SERVICE_410, unsubscribe=True)),
            (413, Failed(Reason.PAYLOAD_TOO_LARGE)),
            (400, Failed(Reason.PUSH_SERVICE_4XX)),
            (401, Failed(Reason.PUSH_SERVICE_AUTH)),
            (403, Failed(Reason.PUSH_SERVICE_AUTH)),
        ],
    )
    def test_permanent_failures_are_not_retried(self, status: int, verdict: Failed) -> None:
        assert decide(PushAnswer(status=status), 1, POLICY, NOW) == verdict

    def test_only_a_gone_subscription_is_unsubscribed(self) -> None:
        for status in (400, 401, 403, 413):
            verdict = decide(PushAnswer(status=status), 1, POLICY, NOW)
            assert isinstance(verdict, Failed) and not verdict.unsubscribe

    def test_429_waits_as_long_as_retry_after_says(self) -> None:
        verdict = decide(PushAnswer(status=429, retry_after="7"), 1, POLICY, NOW)
        assert verdict == RetryLater(Reason.PUSH_SERVICE_429, 7.0)

    def test_retry_after_is_honoured_past_the_backoff_maximum(self) -> None:
        verdict = decide(PushAnswer(status=429, retry_after="3600"), 1, POLICY, NOW)
        assert verdict == RetryLater(Reason.PUSH_SERVICE_429, 3600.0)
        assert POLICY.max_seconds < 3600

    def test_retry_after_as_an_http_date_is_honoured_exactly(self) -> None:
        header = (NOW + timedelta(seconds=1800)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        verdict = decide(PushAnswer(status=429, retry_after=header), 1, POLICY, NOW)
        assert verdict == RetryLater(Reason.PUSH_SERVICE_429, 1800.0)

    @pytest.mark.parametrize("header", ["0", "1", "Thu, 01 Jan 1970 00:00:00 GMT"])
    def test_retry_after_zero_or_past_means_the_first_backoff_step(self, header: str) -> None:
        # "Soon", jittered like the first backoff step: never several attempts at once.
        for attempt in (1, 2):
            verdict = decide(PushAnswer(status=429, retry_after=header), attempt, POLICY, NOW)
            assert isinstance(verdict, RetryLater)
            assert POLICY.base_seconds <= verdict.delay_seconds <= POLICY.base_seconds * 1.25

    def test_a_503_with_retry_after_waits_as_it_says(self) -> None:
        verdict = decide(PushAnswer(status=503, retry_after="900"), 1, POLICY, NOW)
        assert verdict == RetryLater(Reason.PUSH_SERVICE_5XX, 900.0)

    def test_a_retry_past_the_ttl_expires_now(self) -> None:
        expires = NOW + timedelta(seconds=1800)
        verdict = decide(PushAnswer(status=429, retry_after="3600"), 1, POLICY, NOW, expires)
        assert verdict == Expired(Reason.PUSH_SERVICE_429)
        # Within the TTL it is a retry as usual.
        verdict = decide(PushAnswer(status=429, retry_after="1200"), 1, POLICY, NOW, expires)
        assert verdict == RetryLater(Reason.PUSH_SERVICE_429, 1200.0)
        # A backoff past it expires too: nothing stays pending past its TTL.
        soon = NOW + timedelta(seconds=1)
        assert decide(PushAnswer(status=503), 1, POLICY, NOW, soon) == Expired(
            Reason.PUSH_SERVICE_5XX
        )

    def test_attempts_running_out_fail_rather_than_expire(self) -> None:
        expires = NOW + timedelta(seconds=1)
        verdict = decide(PushAnswer(status=503), POLICY.max_attempts, POLICY, NOW, expires)
        assert verdict == Failed(Reason.PUSH_SERVICE_5XX)

    def test_429_without_retry_after_backs_off(self) -> None:
        verdict = decide(PushAnswer(status=429), 2, POLICY, NOW)
        assert isinstance(verdict, RetryLater)
        assert 4.0 <= verdict.delay_seconds <= 5.0

    @pytest.mark.parametrize(
        ("answer", "reason"),
        [
            (PushAnswer(status=503), Reason.PUSH_SERVICE_5XX),
            (PushAnswer(status=500), Reason.PUSH_SERVICE_5XX),
            (PushAnswer(status=429), Reason.PUSH_SERVICE_429),
            (PushAnswer(error=Reason.TIMEOUT), Reason.TIMEOUT),
            (PushAnswer(error=Reason.CONNECTION_ERROR), Reason.CONNECTION_ERROR),
        ],
    )
    def test_transient_failures_retry_then_fail(self, answer: PushAnswer, reason: Reason) -> None:
        for attempt in range(1, POLICY.max_attempts):
            verdict = decide(answer, attempt, POLICY, NOW)
            assert isinstance(verdict, RetryLater) and verdict.reason is reason
        assert decide(answer, POLICY.max_attempts, POLICY, NOW) == Failed(reason)

    def test_a_refused_endpoint_fails_at_once(self) -> None:
        verdict = decide(PushAnswer(error=Reason.ENDPOINT_REFUSED), 1, POLICY, NOW)
        assert verdict == Failed(Reason.ENDPOINT_REFUSED)


class TestBackoff:
    def test_grows_exponentially_with_bounded_jitter_and_a_cap(self) -> None:
        for attempt, base in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)]:
            for _ in range(20):
                delay = POLICY.backoff(attempt)
                assert base <= delay <= base * 1.25


class TestRetryAfter:
    def test_seconds(self) -> None:
        assert parse_retry_after("120", NOW) == 120.0

    def test_http_date(self) -> None:
        later = NOW + timedelta(seconds=90)
        header = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
        assert parse_retry_after(header, NOW) == 90.0

    def test_a_date_in_the_past_means_now(self) -> None:
        earlier = NOW - timedelta(seconds=90)
        assert parse_retry_after(earlier.strftime("%a, %d %b %Y %H:%M:%S GMT"), NOW) == 0.0

    @pytest.mark.parametrize("value", [None, "", "soon", "-5"])
    def test_unusable_values_mean_default_backoff(self, value: str | None) -> None:
        assert parse_retry_after(value, NOW) is None


class TestReasons:
    def test_are_exactly_the_contracts_delivery_reasons(self) -> None:
        contract = {
            name.removeprefix("DELIVERY_REASON_").lower()
            for name in common_pb2.DeliveryReason.DESCRIPTOR.values_by_name
            if name != "DELIVERY_REASON_UNSPECIFIED"
        }
        assert {reason.value for reason in Reason} == contract

    def test_each_maps_to_its_enum_value(self) -> None:
        for reason in Reason:
            value = reason_enum(reason.value)
            assert common_pb2.DeliveryReason.Name(value) == f"DELIVERY_REASON_{reason.name}"
        assert reason_enum("") == common_pb2.DELIVERY_REASON_UNSPECIFIED


class TestSharedPayload:
    def test_a_json_object_is_accepted(self) -> None:
        check_shared_payload(b'{"title":"Hi","run_id":"run_1"}')

    @pytest.mark.parametrize(
        "payload",
        [
            b"",
            b"not json",
            b"\xff\xfe",
            b"[1,2]",
            b"{}",
            b'"title"',
            b'{"title":"x","subscriber_id":"s"}',
            b'{"title":"x","engagement_token":"t"}',
            b'{"title":"' + b"x" * MAX_PAYLOAD_BYTES + b'"}',
        ],
    )
    def test_what_cannot_carry_the_per_recipient_fields_is_refused(self, payload: bytes) -> None:
        with pytest.raises(PayloadError):
            check_shared_payload(payload)

    def test_the_largest_accepted_payload_still_fits_with_its_fields(self) -> None:
        shared = b'{"title":"' + b"x" * (MAX_PAYLOAD_BYTES - PER_RECIPIENT_ROOM - 12) + b'"}'
        check_shared_payload(shared)
        full = for_recipient(shared, "s" * 128, "t" * 43)
        assert len(full) <= MAX_PAYLOAD_BYTES


class TestForRecipient:
    def test_appends_the_recipient_fields_to_the_object(self) -> None:
        shared = '{"title":"Été","url":"https://t/","run_id":"run_1"}\n'.encode()
        payload = for_recipient(shared, "sub_1", "tok_1")
        assert json.loads(payload) == {
            "title": "Été",
            "url": "https://t/",
            "run_id": "run_1",
            "subscriber_id": "sub_1",
            "engagement_token": "tok_1",
        }
        assert payload.startswith(shared.rstrip()[:-1])

    def test_ids_are_json_escaped(self) -> None:
        payload = for_recipient(b'{"t":1}', 'a"b\\c', "tok")
        assert json.loads(payload)["subscriber_id"] == 'a"b\\c'


class TestTopic:
    def test_is_stable_short_and_url_safe(self) -> None:
        topic = topic_for("run_abc")
        assert topic == topic_for("run_abc") != topic_for("run_abd")
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", topic)

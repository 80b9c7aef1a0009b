"""Legacy Safari over APNs: delivery sends a run's legacy Safari recipients with aioapns to
the APNs simulator (beside Web Push to the Web Push simulator) and maps every APNs answer
(domain/apns.py); a 403 holds the site's APNs sends; a dropped connection never makes
a duplicate; one provider token per team."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clarion.campaign.v1 import site_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2
from clarion.segment.v1 import segment_service_pb2, subscriber_pb2
from clarion.simulator import PushServiceSimulator
from clarion.simulator.apns import ApnsBehaviour, ApnsSimulator, ProviderKey
from services.delivery.adapters.apns_sender import (
    MIN_TOKEN_USE_SECONDS,
    TOKEN_PERIOD_SECONDS,
    ProviderTokens,
)
from services.delivery.domain.apns import apns_payload, decide_apns, url_args
from services.delivery.domain.ports import ApnsAnswer
from services.delivery.domain.rules import (
    Expired,
    Failed,
    Reason,
    RetryLater,
    RetryPolicy,
    Sent,
)
from services.kit.clock import FrozenClock
from tests.delivery.conftest import (
    FAST_DELIVERY,
    FAST_ENCRYPTOR,
    Site,
    Stack,
    eventually,
    running_stack,
)
from tests.support.safari import pem_private, setup

URL_FORMAT = "https://shop.example.com/%@?from=safari"
POLICY = RetryPolicy(max_attempts=3, base_seconds=1.0, max_seconds=10.0)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class ShiftedClock:
    """The system clock, moved forward by `shift` (a probe due in a minute, now)."""

    def __init__(self) -> None:
        self.shift = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift


@pytest.fixture(scope="module")
async def apns() -> AsyncIterator[ApnsSimulator]:
    sim = ApnsSimulator()
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
def delivery_clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture(scope="module")
async def stack(
    settings_factory,  # type: ignore[no-untyped-def]
    simulator: PushServiceSimulator,
    apns: ApnsSimulator,
    delivery_clock: ShiftedClock,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    ca_file = Path(tmp_path_factory.mktemp("apns")) / "ca.pem"
    ca_file.write_text(apns.ca_pem)
    settings = settings_factory(
        encryptor=FAST_ENCRYPTOR,
        **{**FAST_DELIVERY, "delivery_concurrency": 8},  # 4 requests in flight per sender
        apns_url=apns.base_url,
        apns_ca_file=str(ca_file),
    )
    async with running_stack(settings, simulator, delivery_clock=delivery_clock) as running:
        yield running


@dataclass(frozen=True)
class SafariSite:
    site: Site
    push_id: str
    team_id: str
    key_id: str
    public_key: ec.EllipticCurvePublicKey


async def safari_site(stack: Stack, apns: ApnsSimulator, *, trusted: bool = True) -> SafariSite:
    """A site with legacy Safari set up (its own team and key; trusted by the simulator
    unless `trusted` is False)."""
    site = await stack.new_site()
    push_id = f"web.com.example.t{uuid.uuid4().hex[:10]}"
    made = setup(push_id)
    key = ProviderKey.generate()
    if trusted:
        apns.register_key(key.team_id, key.key_id, made.apns_key.public_key())
    stub = site_service_pb2_grpc.SiteServiceStub(stack.channels["campaign"])
    await stub.SetLegacySafari(
        made.request(
            apns_private_key=pem_private(made.apns_key),
            apns_key_id=key.key_id,
            apns_team_id=key.team_id,
            url_format_string=URL_FORMAT,
        ),
        metadata=site.metadata,
    )
    return SafariSite(site, push_id, key.team_id, key.key_id, made.apns_key.public_key())


async def safari_device(
    stack: Stack, apns: ApnsSimulator, site: Site, push_id: str, *, token_topic: str = ""
) -> tuple[str, str]:
    """A legacy Safari subscriber whose token the simulator issued (for `token_topic`,
    default the site's push id); returns (subscriber_id, token)."""
    token = apns.mint_device(token_topic or push_id)
    registered = await stack.segment.RegisterSubscriber(
        segment_service_pb2.RegisterSubscriberRequest(
            apns_device=common_pb2.ApnsDevice(device_token=token, topic=push_id),
            browser=common_pb2.BROWSER_SAFARI_LEGACY,
            timezone="UTC",
        ),
        metadata=site.metadata,
    )
    return registered.subscriber.subscriber_id, token


def content(run_id: str, url: str = "https://shop.example.com/sale/shoes?from=safari") -> dict:
    payload = {"title": "Sale", "body": "50% off today", "icon": "https://x/i.png", "url": url}
    return {
        "run_id": run_id,
        "content": delivery_pb2.RunContent(
            payload=json.dumps(payload, separators=(",", ":")).encode(),
            ttl_seconds=3600,
            urgency=common_pb2.URGENCY_HIGH,
        ),
    }


async def run_to_end(stack: Stack, site: Site, timeout: float = 20.0) -> delivery_pb2.DeliveryRun:
    run_id = f"run_{uuid.uuid4().hex}"
    await stack.start_run(site, **content(run_id))
    return await stack.wait_finished(site, run_id, timeout=timeout)


def statuses(outcome: delivery_pb2.RecipientOutcome) -> list[int]:
    return [a.http_status for a in outcome.attempt_history]


class TestMixedRun:
    async def test_web_push_and_legacy_safari_recipients_all_end_sent(
        self, stack: Stack, apns: ApnsSimulator
    ) -> None:
        safari_setup = await safari_site(stack, apns)
        site, push_id = safari_setup.site, safari_setup.push_id
        web = [await stack.subscriber(site) for _ in range(3)]
        safari = [await safari_device(stack, apns, site, push_id) for _ in range(3)]

        run = await run_to_end(stack, site)

        assert (run.progress.sent, run.progress.failed) == (6, 0)
        for subscriber_id, _ in [*web, *safari]:
            outcome = await stack.outcome(site, run.run_id, subscriber_id)
            assert outcome.status == common_pb2.DELIVERY_STATUS_SENT
        for subscriber_id, token in safari:
            [notification] = apns.notifications(token)
            assert notification.topic == push_id
            assert notification.payload == {
                "aps": {
                    "alert": {"title": "Sale", "body": "50% off today", "action": "View"},
                    "url-args": ["sale/shoes"],
                }
            }
            assert notification.safari_problems == ()
            assert notification.push_type == "alert" and notification.priority == 10
            outcome = await stack.outcome(site, run.run_id, subscriber_id)
            assert [(a.http_status, a.push_service) for a in outcome.attempt_history] == [
                (200, "api.push.apple.com")
            ]
        assert "TooManyProviderTokenUpdates" not in apns.stats.rejected


class TestApnsAnswers:
    async def test_each_reason_ends_its_recipient_as_apple_means_it(
        self, stack: Stack, apns: ApnsSimulator
    ) -> None:
        safari_setup = await safari_site(stack, apns)
        site, push_id = safari_setup.site, safari_setup.push_id
        devices = {name: await safari_device(stack, apns, site, push_id) for name in (
            "gone", "bad_token", "too_large", "throttled", "error_500", "unavailable"
        )}  # fmt: skip
        devices["other_topic"] = await safari_device(
            stack, apns, site, push_id, token_topic="web.com.example.another"
        )
        gone_ms = int((datetime.now(UTC) - timedelta(days=2)).timestamp() * 1000)
        behaviours = {
            "gone": ApnsBehaviour(status=410, timestamp_ms=gone_ms),
            "bad_token": ApnsBehaviour(status=400, reason="BadDeviceToken"),
            "too_large": ApnsBehaviour(status=413),
            "throttled": ApnsBehaviour(status=429, times=1),
            "error_500": ApnsBehaviour(status=500, times=1),
            "unavailable": ApnsBehaviour(status=503, times=1),
        }
        for name, behaviour in behaviours.items():
            apns.set_behaviour(devices[name][1], behaviour)

        run = await run_to_end(stack, site)

        expected = {
            "gone": (common_pb2.DELIVERY_STATUS_FAILED, "APNS_UNREGISTERED", [410]),
            "bad_token": (common_pb2.DELIVERY_STATUS_FAILED, "APNS_BAD_DEVICE_TOKEN", [400]),
            "other_topic": (common_pb2.DELIVERY_STATUS_FAILED, "APNS_TOKEN_NOT_FOR_TOPIC", [400]),
            "too_large": (common_pb2.DELIVERY_STATUS_FAILED, "PAYLOAD_TOO_LARGE", [413]),
            "throttled": (common_pb2.DELIVERY_STATUS_SENT, "UNSPECIFIED", [429, 200]),
            "error_500": (common_pb2.DELIVERY_STATUS_SENT, "UNSPECIFIED", [500, 200]),
            "unavailable": (common_pb2.DELIVERY_STATUS_SENT, "UNSPECIFIED", [503, 200]),
        }
        for name, (status, reason, answers) in expected.items():
            outcome = await stack.outcome(site, run.run_id, devices[name][0])
            got = (
                outcome.status,
                common_pb2.DeliveryReason.Name(outcome.reason).removeprefix("DELIVERY_REASON_"),
                statuses(outcome),
            )
            assert got == (status, reason, answers), name
        # The retried ones were each retried at their own time, after the backoff.
        throttled = await stack.outcome(site, run.run_id, devices["throttled"][0])
        first, second = (a.attempt_time.ToDatetime(UTC) for a in throttled.attempt_history)
        assert second - first >= timedelta(seconds=FAST_DELIVERY["push_retry_base_seconds"])

        # The unregistered token is pruned: segment unsubscribes it, with APNs' reason.
        async def pruned() -> bool:
            found = await stack.segment.GetSubscriber(
                segment_service_pb2.GetSubscriberRequest(subscriber_id=devices["gone"][0]),
                metadata=site.metadata,
            )
            return found.subscriber.state == subscriber_pb2.SUBSCRIBER_STATE_UNSUBSCRIBED

        await eventually(pruned, what="the unregistered device unsubscribed")


class TestDroppedConnection:
    async def test_a_push_whose_answer_was_lost_is_not_sent_twice(
        self, stack: Stack, apns: ApnsSimulator
    ) -> None:
        safari_setup = await safari_site(stack, apns)
        site, push_id = safari_setup.site, safari_setup.push_id
        subscriber_id, token = await safari_device(stack, apns, site, push_id)
        # APNs takes the notification, then the connection dies before the answer.
        apns.set_behaviour(token, ApnsBehaviour(drop=True, times=1))
        dropped_before = apns.stats.dropped

        run = await run_to_end(stack, site)

        assert apns.stats.dropped == dropped_before + 1
        notifications = apns.notifications(token)
        assert len(notifications) == 1  # delivered once: no resend by aioapns or by us
        assert notifications[0].apns_id not in apns.stats.duplicates
        outcome = await stack.outcome(site, run.run_id, subscriber_id)
        assert outcome.status == common_pb2.DELIVERY_STATUS_SENT
        assert [(a.http_status, a.reason) for a in outcome.attempt_history] == [
            (0, common_pb2.DELIVERY_REASON_CONNECTION_ERROR)
        ]

        # The next run opens a new connection with the same team token: accepted.
        connections_before = apns.stats.connections
        again = await run_to_end(stack, site)
        assert again.progress.sent == 1 and len(apns.notifications(token)) == 2
        assert apns.stats.connections > connections_before
        assert apns.stats.duplicates == {}
        assert "TooManyProviderTokenUpdates" not in apns.stats.rejected


class TestProviderTokenRefused:
    async def test_a_403_holds_the_sites_apns_sends_until_a_probe_is_accepted(
        self, stack: Stack, apns: ApnsSimulator, delivery_clock: ShiftedClock
    ) -> None:
        refused_site = await safari_site(stack, apns, trusted=False)
        site, push_id = refused_site.site, refused_site.push_id
        devices = [await safari_device(stack, apns, site, push_id) for _ in range(12)]
        web_id, _ = await stack.subscriber(site)
        refused_before = apns.stats.rejected["InvalidProviderToken"]
        run_id = f"run_{uuid.uuid4().hex}"
        await stack.start_run(site, **content(run_id))

        async def held() -> bool:
            run = await stack.get_run(site, run_id)
            return run.progress.sent == 1 and len(run.held_push_services) == 1

        await eventually(held, what="the Web Push recipient sent, APNs held")
        run = await stack.get_run(site, run_id)
        [hold] = run.held_push_services
        assert (hold.push_service, hold.http_status, hold.detail) == (
            "api.push.apple.com",
            403,
            "InvalidProviderToken",
        )
        assert hold.reason == common_pb2.DELIVERY_REASON_PUSH_SERVICE_AUTH
        # A circuit, not 12 identical failures: at most one sender's window was refused.
        refused = apns.stats.rejected["InvalidProviderToken"] - refused_before
        assert 1 <= refused <= 4
        assert not run.HasField("finish_time")
        outcome = await stack.outcome(site, run_id, devices[-1][0])
        assert outcome.status == common_pb2.DELIVERY_STATUS_UNSPECIFIED  # pending, held

        # The key is fixed at Apple's end; the probe, a minute later, is accepted.
        apns.register_key(refused_site.team_id, refused_site.key_id, refused_site.public_key)
        delivery_clock.shift += timedelta(seconds=61)
        try:
            finished = await stack.wait_finished(site, run_id)
        finally:
            delivery_clock.shift -= timedelta(seconds=61)
        assert (finished.progress.sent, finished.progress.failed) == (13, 0)
        assert list(finished.held_push_services) == []
        for subscriber_id, token in devices:
            assert len(apns.notifications(token)) == 1
        assert web_id


class TestProviderTokens:
    def test_one_token_per_team_until_a_new_period_has_begun_and_it_served_20_minutes(
        self,
    ) -> None:
        clock = FrozenClock(NOW)
        der = _der(ec.generate_private_key(ec.SECP256R1()))
        tokens = ProviderTokens(clock)
        first = tokens.header("TEAM000001", "KEY0000001", der)
        clock.advance(seconds=TOKEN_PERIOD_SECONDS - 1)
        assert tokens.header("TEAM000001", "KEY0000001", der) == first
        clock.advance(seconds=2)  # a new period, and it served 30 minutes
        second = tokens.header("TEAM000001", "KEY0000001", der)
        assert second != first and tokens.made == 2
        # Another process with the same key makes the very same token (RFC 6979).
        assert ProviderTokens(clock).header("TEAM000001", "KEY0000001", der) == second

    def test_a_token_first_used_late_in_its_period_serves_on_past_it(self) -> None:
        clock = FrozenClock(NOW + timedelta(seconds=TOKEN_PERIOD_SECONDS - 60))
        der = _der(ec.generate_private_key(ec.SECP256R1()))
        tokens = ProviderTokens(clock)
        first = tokens.header("TEAM000002", "KEY0000002", der)
        clock.advance(seconds=MIN_TOKEN_USE_SECONDS - 1)
        assert tokens.header("TEAM000002", "KEY0000002", der) == first
        clock.advance(seconds=2)
        assert tokens.header("TEAM000002", "KEY0000002", der) != first


def _der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TestApnsPayload:
    @pytest.mark.parametrize(
        ("url", "url_format", "expected"),
        [
            ("https://shop.example.com/sale?from=safari", URL_FORMAT, ["sale"]),
            ("https://SHOP.example.com/a/b?from=safari", URL_FORMAT, ["a/b"]),
            ("https://a.example/x/1/y/2", "https://a.example/x/%@/y/%@", ["1", "2"]),
            ("https://other.example/sale", URL_FORMAT, None),
            ("", URL_FORMAT, None),
        ],
    )
    def test_url_args_are_read_off_the_click_url_by_the_format(
        self, url: str, url_format: str, expected: list[str] | None
    ) -> None:
        assert url_args(url, url_format) == expected

    def test_a_url_outside_the_format_gets_empty_args_of_the_right_count(self) -> None:
        payload = json.dumps({"title": "T", "body": "B", "url": "https://elsewhere/x"}).encode()
        body, fitted = apns_payload(payload, "https://a.example/%@/%@")
        assert not fitted
        assert json.loads(body)["aps"]["url-args"] == ["", ""]


class TestDecide:
    @pytest.mark.parametrize(
        ("answer", "verdict"),
        [
            (ApnsAnswer(status=200), Sent()),
            (ApnsAnswer(error=Reason.CONNECTION_ERROR, unconfirmed=True), Sent()),
            (
                ApnsAnswer(status=410, reason="Unregistered", timestamp_ms=1),
                Failed(Reason.APNS_UNREGISTERED, unsubscribe=True),
            ),
            (ApnsAnswer(status=400, reason="BadDeviceToken"), Failed(Reason.APNS_BAD_DEVICE_TOKEN)),
            (
                ApnsAnswer(status=400, reason="DeviceTokenNotForTopic"),
                Failed(Reason.APNS_TOKEN_NOT_FOR_TOPIC),
            ),
            (ApnsAnswer(status=400, reason="BadTopic"), Failed(Reason.PUSH_SERVICE_4XX)),
            (ApnsAnswer(status=413, reason="PayloadTooLarge"), Failed(Reason.PAYLOAD_TOO_LARGE)),
        ],
    )
    def test_final_answers(self, answer: ApnsAnswer, verdict: object) -> None:
        assert decide_apns(answer, 1, POLICY, NOW) == verdict

    @pytest.mark.parametrize(
        ("answer", "reason"),
        [
            (ApnsAnswer(status=429, reason="TooManyRequests"), Reason.PUSH_SERVICE_429),
            (ApnsAnswer(status=500, reason="InternalServerError"), Reason.PUSH_SERVICE_5XX),
            (ApnsAnswer(status=503, reason="ServiceUnavailable"), Reason.PUSH_SERVICE_5XX),
            (ApnsAnswer(error=Reason.TIMEOUT), Reason.TIMEOUT),
            (ApnsAnswer(error=Reason.CONNECTION_ERROR), Reason.CONNECTION_ERROR),
        ],
    )
    def test_transient_answers_retry_then_fail_or_expire(
        self, answer: ApnsAnswer, reason: Reason
    ) -> None:
        retry = decide_apns(answer, 1, POLICY, NOW)
        assert isinstance(retry, RetryLater) and retry.reason is reason
        assert decide_apns(answer, 3, POLICY, NOW) == Failed(reason)
        assert decide_apns(answer, 1, POLICY, NOW, NOW + timedelta(seconds=1)) == Expired(reason)

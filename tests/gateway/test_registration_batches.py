"""Subscribes that arrive together are stored together (services/gateway/registrations.py),
and each browser still gets the answer a lone subscribe would have got."""

from __future__ import annotations

import asyncio
import base64
import uuid

import aiohttp

from clarion.common.v1 import common_pb2
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from services.gateway.registrations import SENDERS_PER_SITE, RegistrationBatcher
from services.gateway.server import create_gateway
from services.kit.auth import internal_metadata
from services.kit.grpcserver import client_channel
from services.kit.tokens import verify_unsubscribe_token
from tests.gateway.conftest import GatewaySite, Stack, b64url, browser_subscription
from tests.gateway.test_gateway import assert_error, post, subscribe_body
from tests.support.sites import bearer

BROWSERS = ["chrome", "firefox", "edge", "safari", "opera"]


def _path(site: GatewaySite) -> str:
    return f"/v1/sites/{site.site_id}/subscriptions"


async def _stored(stack: Stack, site: GatewaySite, subscriber_id: str):
    response = await stack.segment.GetSubscriber(
        segment_service_pb2.GetSubscriberRequest(subscriber_id=subscriber_id),
        metadata=bearer(site.api_key),
    )
    return response.subscriber


class TestConcurrentSubscribes:
    async def test_each_browser_gets_its_own_subscriber_and_token(self, stack, site):
        bodies = [
            subscribe_body(browser=BROWSERS[i % len(BROWSERS)], profile_id=f"user-{i}")
            for i in range(60)
        ]

        answers = await asyncio.gather(*(post(stack, _path(site), json=b) for b in bodies))

        assert [status for status, _, _ in answers] == [201] * 60
        ids = [body["subscriber_id"] for _, body, _ in answers]
        assert len(set(ids)) == 60
        for body, (_, answer, _) in zip(bodies, answers, strict=True):
            assert answer["created"] is True
            assert verify_unsubscribe_token(
                site.engagement_secret, answer["unsubscribe_token"], site.site_id,
                answer["subscriber_id"],
            )  # fmt: skip
            stored = await _stored(stack, site, answer["subscriber_id"])
            assert stored.push_subscription.endpoint == body["subscription"]["endpoint"]
            assert stored.profile_id == body["profile_id"]
            assert stored.browser == getattr(common_pb2, f"BROWSER_{body['browser'].upper()}")

    async def test_the_same_subscription_twice_at_once_is_one_subscriber(self, stack, site):
        body = subscribe_body()

        (first_status, first, _), (second_status, second, _) = await asyncio.gather(
            post(stack, _path(site), json=body), post(stack, _path(site), json=body)
        )

        assert sorted([first_status, second_status]) == [200, 201]
        assert first["subscriber_id"] == second["subscriber_id"]
        assert sorted([first["created"], second["created"]]) == [False, True]

    async def test_a_bad_subscribe_among_good_ones_fails_alone_with_its_own_error(
        self, stack, site
    ):
        good = [subscribe_body() for _ in range(20)]
        off_curve = subscribe_body()
        # 65 bytes starting 0x04 pass the gateway's shape check; only the segment
        # service finds the point is not on the curve.
        off_curve["subscription"]["keys"]["p256dh"] = b64url(b"\x04" + bytes(64))  # type: ignore[index]
        bad_timezone = subscribe_body(timezone="Mars/Olympus_Mons")

        answers = await asyncio.gather(
            *(post(stack, _path(site), json=b) for b in [*good[:10], off_curve, *good[10:],
                                                          bad_timezone])
        )  # fmt: skip

        statuses = [status for status, _, _ in answers]
        assert statuses[:10] == [201] * 10 and statuses[11:21] == [201] * 10
        assert_error(answers[10][0], answers[10][1], 400, "INVALID_P256DH")
        assert "push_subscription.p256dh" in answers[10][1]["error"]["message"]
        assert "requests[" not in answers[10][1]["error"]["message"]
        assert_error(answers[21][0], answers[21][1], 400, "INVALID_TIMEZONE")
        for _, body, _ in answers[:10] + answers[11:21]:
            assert (await _stored(stack, site, body["subscriber_id"])).subscriber_id
        listed = await stack.segment.ListSubscribers(
            segment_service_pb2.ListSubscribersRequest(page_size=1000),
            metadata=bearer(site.api_key),
        )
        endpoints = {s.push_subscription.endpoint for s in listed.subscribers}
        assert off_curve["subscription"]["endpoint"] not in endpoints  # type: ignore[index]
        assert bad_timezone["subscription"]["endpoint"] not in endpoints  # type: ignore[index]


class TestSegmentUnreachable:
    async def test_every_waiting_subscribe_is_503_and_the_gateway_recovers(
        self, stack, site, settings_factory
    ):
        settings = settings_factory(
            database_url=stack.settings.database_url,
            internal_token=stack.settings.internal_token,
            campaign_address=stack.settings.campaign_address,
            segment_address="127.0.0.1:1",
            rpc_timeout_seconds=2.0,
        )
        gateway = await create_gateway("127.0.0.1:0", settings)
        await gateway.start()
        try:
            async with aiohttp.ClientSession() as http:

                async def subscribe() -> tuple[int, dict]:
                    body = {"subscription": browser_subscription(uuid.uuid4().hex)}
                    async with http.post(f"{gateway.url}{_path(site)}", json=body) as response:
                        return response.status, await response.json()

                answers = await asyncio.gather(*(subscribe() for _ in range(8)))
                for status, body in answers:
                    assert_error(status, body, 503, "SERVICE_UNAVAILABLE")
                # Nothing is left queued: the next subscribe is answered too.
                status, body = await subscribe()
                assert_error(status, body, 503, "SERVICE_UNAVAILABLE")
        finally:
            await gateway.stop()


class TestSenderEndingAsOneArrives:
    async def test_a_subscribe_arriving_as_the_sender_ends_is_sent(self, stack, site):
        """The site's sender finishes and a registration arrives before its done callback
        runs: it must be sent, not cancelled (browsers saw their connections dropped at
        1,000 registrations a second)."""
        channel = client_channel(stack.settings.segment_address)
        gate, at_gate = asyncio.Event(), []

        class HeldStub:
            """The real segment stub; each batch's answer waits at the gate."""

            def __init__(self) -> None:
                self._real = segment_service_pb2_grpc.SegmentServiceStub(channel)

            async def BatchRegisterSubscribers(self, *args, **kwargs):  # noqa: N802
                response = await self._real.BatchRegisterSubscribers(*args, **kwargs)
                at_gate.append(1)
                await gate.wait()
                return response

            async def RegisterSubscriber(self, *args, **kwargs):  # noqa: N802
                return await self._real.RegisterSubscriber(*args, **kwargs)

        def metadata(site_id: str) -> tuple[tuple[str, str], ...]:
            return internal_metadata(stack.settings.internal_token_value, site_id)

        batcher = RegistrationBatcher(HeldStub, metadata, 10.0)

        def request() -> segment_service_pb2.RegisterSubscriberRequest:
            subscription = browser_subscription(uuid.uuid4().hex)
            keys: dict[str, str] = subscription["keys"]  # type: ignore[assignment]
            return segment_service_pb2.RegisterSubscriberRequest(
                push_subscription=common_pb2.PushSubscription(
                    endpoint=str(subscription["endpoint"]),
                    p256dh=base64.urlsafe_b64decode(keys["p256dh"] + "=="),
                    auth=base64.urlsafe_b64decode(keys["auth"] + "=="),
                )
            )

        def register() -> asyncio.Future[segment_service_pb2.RegisterSubscriberResponse]:
            return asyncio.ensure_future(batcher.register(site.site_id, request()))

        try:
            # The site's sender takes both in one batch, stored and held at the gate.
            first = [register(), register()]
            while not at_gate:
                await asyncio.sleep(0.01)
            assert SENDERS_PER_SITE == 1 and len(at_gate) == 1
            # It ends in the next turn of the loop; this registration's first step runs
            # after it ended and before its done callback.
            gate.set()
            late = register()

            answers = await asyncio.wait_for(asyncio.gather(*first, late), 10)
        finally:
            await channel.close()

        assert [answer.created for answer in answers] == [True] * len(answers)
        assert (await _stored(stack, site, answers[-1].subscriber.subscriber_id)).subscriber_id

"""Reporting webhooks against real reporting servers (SQLite, and PostgreSQL when set) and
a real receiver on 127.0.0.1 that checks every signature with the standardwebhooks
library. Retries are driven by moving reporting's clock, never by sleeping through them.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import grpc
import pytest
import structlog
from google.protobuf.field_mask_pb2 import FieldMask
from standardwebhooks import WebhookVerificationError

from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import reporting_internal_service_pb2 as ris
from clarion.reporting.v1 import reporting_pb2, webhook_pb2
from clarion.reporting.v1 import webhook_service_pb2 as ws
from services.kit.errors import error_info
from services.kit.logging import configure_logging
from services.reporting.domain.webhooks import JITTER, MAX_ATTEMPTS, RETRY_DELAYS
from services.reporting.server import WEBHOOK_SERVICE_FULL_NAME
from tests.reporting.conftest import (
    Site,
    WebhooksUnderTest,
    webhook_settings,
    webhooks_server,
)
from tests.reporting.webhook_receiver import Received, WebhookReceiver
from tests.support.services import reflected_services

VIEW = webhook_pb2.WEBHOOK_EVENT_TYPE_VIEW
CLICK = webhook_pb2.WEBHOOK_EVENT_TYPE_CLICK
CLOSE = webhook_pb2.WEBHOOK_EVENT_TYPE_CLOSE
ACTIVE = webhook_pb2.WEBHOOK_ENDPOINT_STATE_ACTIVE
INACTIVE = webhook_pb2.WEBHOOK_ENDPOINT_STATE_INACTIVE
PAUSED = webhook_pb2.WEBHOOK_ENDPOINT_STATE_PAUSED
DISABLED = webhook_pb2.WEBHOOK_ENDPOINT_STATE_DISABLED
VIEWED = common_pb2.ENGAGEMENT_KIND_VIEWED
CLICKED = common_pb2.ENGAGEMENT_KIND_CLICKED
CLOSED = common_pb2.ENGAGEMENT_KIND_CLOSED

DESCRIPTION = common_pb2.RunDescription(
    notification_title="Hello {{ profile.name }}",
    utm_source="clarion",
    utm_medium="push",
    utm_campaign="spring-sale",
    utm_content="hero",
    utm_term="shoes",
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


async def refused(call: Awaitable[object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    info = error_info(raised.value)
    return raised.value.code(), info.reason if info is not None else ""


async def create(
    w: WebhooksUnderTest, site: Site, url: str, *types: int
) -> tuple[webhook_pb2.WebhookEndpoint, str]:
    response = await w.stub.CreateWebhookEndpoint(
        ws.CreateWebhookEndpointRequest(url=url, event_types=types or (VIEW, CLICK, CLOSE)),
        metadata=site.key,
    )
    return response.endpoint, response.secret


async def get(w: WebhooksUnderTest, site: Site, endpoint_id: str) -> webhook_pb2.WebhookEndpoint:
    response = await w.stub.GetWebhookEndpoint(
        ws.GetWebhookEndpointRequest(endpoint_id=endpoint_id), metadata=site.key
    )
    return response.endpoint


async def update(
    w: WebhooksUnderTest, site: Site, endpoint: webhook_pb2.WebhookEndpoint, *paths: str
) -> webhook_pb2.WebhookEndpoint:
    response = await w.stub.UpdateWebhookEndpoint(
        ws.UpdateWebhookEndpointRequest(endpoint=endpoint, update_mask=FieldMask(paths=paths)),
        metadata=site.key,
    )
    return response.endpoint


async def set_active(
    w: WebhooksUnderTest, site: Site, endpoint_id: str, active: bool
) -> webhook_pb2.WebhookEndpoint:
    endpoint = webhook_pb2.WebhookEndpoint(endpoint_id=endpoint_id, active=active)
    return await update(w, site, endpoint, "active")


async def record_run(
    w: WebhooksUnderTest,
    site: Site,
    description: common_pb2.RunDescription | None = DESCRIPTION,
) -> tuple[str, str]:
    """A run (audience recorded, with its description); returns (campaign, run)."""
    campaign_id, run_id = new_id("cmp"), new_id("run")
    request = ris.RecordRunAudienceRequest(run_id=run_id, campaign_id=campaign_id, audience=10)
    if description is not None:
        request.description.CopyFrom(description)
    await w.internal_stub.RecordRunAudience(request, metadata=site.internal)
    return campaign_id, run_id


async def record_events(w: WebhooksUnderTest, site: Site, *events) -> int:
    response = await w.internal_stub.RecordEngagementEvents(
        ris.RecordEngagementEventsRequest(events=events), metadata=site.internal
    )
    return response.recorded


def event(
    campaign_id: str, run_id: str, kind: int, subscriber_id: str = "", button: str = ""
) -> reporting_pb2.EngagementEvent:
    return reporting_pb2.EngagementEvent(
        run_id=run_id,
        campaign_id=campaign_id,
        subscriber_id=subscriber_id or new_id("sub"),
        kind=kind,
        button=button,
    )


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    """Waits (real time) for background work already due to be done."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def until_failures(
    w: WebhooksUnderTest, site: Site, endpoint_id: str, count: int
) -> webhook_pb2.WebhookEndpoint:
    """The endpoint once `count` attempts to it failed in a row (each settled)."""
    seen: list[webhook_pb2.WebhookEndpoint] = []

    async def settled() -> bool:
        seen.append(await get(w, site, endpoint_id))
        return seen[-1].consecutive_failures >= count

    await until(settled, f"{count} failed attempts")
    return seen[-1]


async def dead_letters(
    w: WebhooksUnderTest, site: Site, endpoint_id: str = "", **paging: object
) -> ws.ListWebhookDeadLettersResponse:
    return await w.stub.ListWebhookDeadLetters(
        ws.ListWebhookDeadLettersRequest(endpoint_id=endpoint_id, **paging), metadata=site.key
    )


def body(received: Received) -> dict[str, object]:
    return json.loads(received.body)


class TestEndpoints:
    async def test_a_created_endpoint_is_active_with_a_standard_webhooks_secret(
        self, webhooks: WebhooksUnderTest
    ) -> None:
        site = webhooks.site()
        endpoint, secret = await create(webhooks, site, "https://hooks.example.com/in", CLICK)

        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
        assert endpoint.active and endpoint.state == ACTIVE
        assert list(endpoint.event_types) == [CLICK]
        assert endpoint.backlog == 0
        fetched = await get(webhooks, site, endpoint.endpoint_id)
        assert fetched == endpoint

    async def test_the_list_pages_through_the_sites_endpoints_only(
        self, webhooks: WebhooksUnderTest
    ) -> None:
        site, other = webhooks.site(), webhooks.site()
        made = [
            (await create(webhooks, site, f"https://hooks.example.com/{n}"))[0].endpoint_id
            for n in range(3)
        ]
        await create(webhooks, other, "https://hooks.example.com/other")

        first = await webhooks.stub.ListWebhookEndpoints(
            ws.ListWebhookEndpointsRequest(page_size=2), metadata=site.key
        )
        second = await webhooks.stub.ListWebhookEndpoints(
            ws.ListWebhookEndpointsRequest(page_size=2, page_token=first.next_page_token),
            metadata=site.key,
        )

        assert [e.endpoint_id for e in [*first.endpoints, *second.endpoints]] == made
        assert first.next_page_token and not second.next_page_token

    @pytest.mark.parametrize(
        "url",
        [
            "",
            "ftp://hooks.example.com/in",
            "hooks.example.com/in",
            "https://user:password@hooks.example.com/in",
            "https://hooks.example.com/" + "a" * 2030,
            "https://hooks example.com/in",
            "javascript:alert(1)",
        ],
    )
    async def test_a_url_that_is_not_http_or_https_is_refused_and_nothing_stored(
        self, webhooks: WebhooksUnderTest, url: str
    ) -> None:
        site = webhooks.site()

        code, reason = await refused(create(webhooks, site, url))

        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_WEBHOOK_URL")
        listed = await webhooks.stub.ListWebhookEndpoints(
            ws.ListWebhookEndpointsRequest(), metadata=site.key
        )
        assert list(listed.endpoints) == []

    async def test_an_endpoint_needs_an_event_type(self, webhooks: WebhooksUnderTest) -> None:
        site = webhooks.site()
        no_types = webhooks.stub.CreateWebhookEndpoint(
            ws.CreateWebhookEndpointRequest(url="https://hooks.example.com/in"),
            metadata=site.key,
        )
        unspecified = create(
            webhooks,
            site,
            "https://hooks.example.com/in",
            webhook_pb2.WEBHOOK_EVENT_TYPE_UNSPECIFIED,
        )

        assert await refused(no_types) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EVENT_TYPE")
        assert await refused(unspecified) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_EVENT_TYPE",
        )

    async def test_unknown_and_other_sites_endpoints_are_not_found(
        self, webhooks: WebhooksUnderTest
    ) -> None:
        site, other = webhooks.site(), webhooks.site()
        theirs, _ = await create(webhooks, other, "https://hooks.example.com/theirs")
        not_found = (grpc.StatusCode.NOT_FOUND, "WEBHOOK_ENDPOINT_NOT_FOUND")

        for endpoint_id in ("whe_unknown", theirs.endpoint_id):
            assert await refused(get(webhooks, site, endpoint_id)) == not_found
            assert await refused(set_active(webhooks, site, endpoint_id, False)) == not_found
            assert (
                await refused(
                    webhooks.stub.DeleteWebhookEndpoint(
                        ws.DeleteWebhookEndpointRequest(endpoint_id=endpoint_id), metadata=site.key
                    )
                )
                == not_found
            )
            assert (
                await refused(
                    webhooks.stub.RotateWebhookSecret(
                        ws.RotateWebhookSecretRequest(endpoint_id=endpoint_id), metadata=site.key
                    )
                )
                == not_found
            )
            assert (
                await refused(
                    webhooks.stub.ReplayWebhookDeadLetters(
                        ws.ReplayWebhookDeadLettersRequest(endpoint_id=endpoint_id),
                        metadata=site.key,
                    )
                )
                == not_found
            )
            assert await refused(dead_letters(webhooks, site, endpoint_id)) == not_found
        # Untouched by the other site's attempts.
        assert (await get(webhooks, other, theirs.endpoint_id)) == theirs

    async def test_update_changes_only_the_masked_fields(self, webhooks: WebhooksUnderTest) -> None:
        site = webhooks.site()
        endpoint, _ = await create(webhooks, site, "https://hooks.example.com/a", VIEW)
        change = webhook_pb2.WebhookEndpoint(
            endpoint_id=endpoint.endpoint_id,
            url="https://hooks.example.com/b",
            event_types=[CLICK, CLOSE],
            active=False,
        )

        updated = await update(webhooks, site, change, "url", "event_types")

        assert updated.url == "https://hooks.example.com/b"
        assert list(updated.event_types) == [CLICK, CLOSE]
        assert updated.active and updated.state == ACTIVE
        switched_off = await update(webhooks, site, change, "active")
        assert (switched_off.active, switched_off.state) == (False, INACTIVE)
        bad_url = webhook_pb2.WebhookEndpoint(endpoint_id=endpoint.endpoint_id, url="ftp://x/")
        assert await refused(update(webhooks, site, bad_url, "url")) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_WEBHOOK_URL",
        )
        assert await refused(update(webhooks, site, change, "secret")) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_UPDATE_MASK",
        )
        assert (await get(webhooks, site, endpoint.endpoint_id)).url == (
            "https://hooks.example.com/b"
        )

    async def test_a_repeated_request_id_returns_the_first_endpoint_without_its_secret(
        self, webhooks: WebhooksUnderTest
    ) -> None:
        site = webhooks.site()
        request = ws.CreateWebhookEndpointRequest(
            url="https://hooks.example.com/in", event_types=[VIEW], request_id="create-1"
        )
        first = await webhooks.stub.CreateWebhookEndpoint(request, metadata=site.key)
        again = await webhooks.stub.CreateWebhookEndpoint(request, metadata=site.key)
        other = ws.CreateWebhookEndpointRequest(
            url="https://hooks.example.com/elsewhere", event_types=[VIEW], request_id="create-1"
        )

        assert first.secret and not again.secret
        assert again.endpoint.endpoint_id == first.endpoint.endpoint_id
        assert await refused(webhooks.stub.CreateWebhookEndpoint(other, metadata=site.key)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "REQUEST_ID_REUSED",
        )

    async def test_a_deleted_endpoint_is_gone(self, webhooks: WebhooksUnderTest) -> None:
        site = webhooks.site()
        endpoint, _ = await create(webhooks, site, "https://hooks.example.com/in")

        await webhooks.stub.DeleteWebhookEndpoint(
            ws.DeleteWebhookEndpointRequest(endpoint_id=endpoint.endpoint_id), metadata=site.key
        )

        assert await refused(get(webhooks, site, endpoint.endpoint_id)) == (
            grpc.StatusCode.NOT_FOUND,
            "WEBHOOK_ENDPOINT_NOT_FOUND",
        )

    async def test_the_service_is_listed_by_reflection_and_takes_the_internal_token(
        self, webhooks: WebhooksUnderTest
    ) -> None:
        site = webhooks.site()
        endpoint, _ = await create(webhooks, site, "https://hooks.example.com/in")

        by_token = await webhooks.stub.GetWebhookEndpoint(
            ws.GetWebhookEndpointRequest(endpoint_id=endpoint.endpoint_id),
            metadata=site.internal,
        )

        assert by_token.endpoint.endpoint_id == endpoint.endpoint_id
        assert WEBHOOK_SERVICE_FULL_NAME in await reflected_services(webhooks.channel)


class TestDelivery:
    async def test_a_button_click_arrives_signed_in_the_izooto_shape(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site = webhooks.site()
        path = receiver.new_path()
        _, secret = await create(webhooks, site, receiver.url(path), CLICK)
        campaign_id, run_id = await record_run(webhooks, site)

        await record_events(
            webhooks, site, event(campaign_id, run_id, CLICKED, "sub_1", button="action_2")
        )

        [received] = await receiver.wait_for(path, 1)
        assert received.verify(secret) == {
            "action": "Click",
            "cookie_id": "sub_1",
            "cid": campaign_id,
            "notification_title": "Hello {{ profile.name }}",
            "reference_id": run_id,
            "utm_source": "clarion",
            "utm_medium": "push",
            "utm_campaign": "spring-sale",
            "utm_content": "hero",
            "utm_term": "shoes",
            "clicked_button": 2,
        }
        assert received.message_id.startswith("msg_")
        assert received.headers["content-type"] == "application/json"

    async def test_views_closes_and_body_clicks_carry_button_0(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site = webhooks.site()
        path = receiver.new_path()
        _, secret = await create(webhooks, site, receiver.url(path))
        campaign_id, run_id = await record_run(webhooks, site)

        await record_events(
            webhooks,
            site,
            event(campaign_id, run_id, VIEWED, "sub_1"),
            event(campaign_id, run_id, CLICKED, "sub_1"),
            event(campaign_id, run_id, CLICKED, "sub_1", button="action_1"),
            event(campaign_id, run_id, CLOSED, "sub_1"),
        )

        received = await receiver.wait_for(path, 4)
        seen = sorted((b["action"], b["clicked_button"]) for b in map(body, received))
        assert seen == [("Click", 0), ("Click", 1), ("Close", 0), ("View", 0)]
        for request in received:
            request.verify(secret)
        assert len({r.message_id for r in received}) == 4

    async def test_a_variants_push_carries_the_variants_title(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site = webhooks.site()
        path = receiver.new_path()
        await create(webhooks, site, receiver.url(path), VIEW)
        described = common_pb2.RunDescription()
        described.CopyFrom(DESCRIPTION)
        described.variant_titles.add(variant_id="a", notification_title="Title A")
        described.variant_titles.add(variant_id="b", notification_title="Title B")
        campaign_id, run_id = await record_run(webhooks, site, described)
        await webhooks.internal_stub.RecordDeliveryOutcomes(
            ris.RecordDeliveryOutcomesRequest(
                outcomes=[
                    reporting_pb2.DeliveryOutcome(
                        run_id=run_id,
                        campaign_id=campaign_id,
                        subscriber_id="sub_b",
                        status=common_pb2.DELIVERY_STATUS_SENT,
                        variant="b",
                    )
                ]
            ),
            metadata=site.internal,
        )

        await record_events(webhooks, site, event(campaign_id, run_id, VIEWED, "sub_b"))

        [received] = await receiver.wait_for(path, 1)
        assert body(received)["notification_title"] == "Title B"

    async def test_a_run_without_a_description_is_sent_with_empty_strings(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site = webhooks.site()
        path = receiver.new_path()
        await create(webhooks, site, receiver.url(path), VIEW)
        campaign_id, run_id = new_id("cmp"), new_id("run")

        await record_events(webhooks, site, event(campaign_id, run_id, VIEWED, "sub_1"))

        [received] = await receiver.wait_for(path, 1)
        sent = body(received)
        assert sent["cid"] == campaign_id and sent["reference_id"] == run_id
        assert [sent[k] for k in ("notification_title", "utm_source", "utm_term")] == ["", "", ""]

    async def test_only_active_endpoints_taking_the_type_get_an_event(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site, other = webhooks.site(), webhooks.site()
        clicks, views, off, others = (receiver.new_path() for _ in range(4))
        await create(webhooks, site, receiver.url(clicks), CLICK)
        await create(webhooks, site, receiver.url(views), VIEW)
        switched_off, _ = await create(webhooks, site, receiver.url(off), VIEW, CLICK, CLOSE)
        await set_active(webhooks, site, switched_off.endpoint_id, False)
        await create(webhooks, other, receiver.url(others), VIEW, CLICK, CLOSE)
        campaign_id, run_id = await record_run(webhooks, site)

        await record_events(
            webhooks,
            site,
            event(campaign_id, run_id, VIEWED, "sub_1"),
            event(campaign_id, run_id, CLICKED, "sub_1"),
            event(campaign_id, run_id, CLOSED, "sub_1"),
        )

        assert [body(r)["action"] for r in await receiver.wait_for(clicks, 1)] == ["Click"]
        assert [body(r)["action"] for r in await receiver.wait_for(views, 1)] == ["View"]
        # Nothing was queued for the switched-off endpoint nor another site's.
        assert (await get(webhooks, site, switched_off.endpoint_id)).backlog == 0
        assert receiver.at(off) == [] and receiver.at(others) == []

    async def test_a_repeated_engagement_event_sends_no_second_webhook(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site = webhooks.site()
        path = receiver.new_path()
        endpoint, _ = await create(webhooks, site, receiver.url(path), CLICK)
        campaign_id, run_id = await record_run(webhooks, site)
        click = event(campaign_id, run_id, CLICKED, "sub_1", button="action_1")

        assert await record_events(webhooks, site, click) == 1
        assert await record_events(webhooks, site, click, click) == 0

        await receiver.wait_for(path, 1)

        async def settled() -> bool:
            found = await get(webhooks, site, endpoint.endpoint_id)
            return found.backlog == 0 and found.HasField("last_success_time")

        await until(settled, "the delivery to be recorded")
        assert len(receiver.at(path)) == 1


class TestRetries:
    async def test_failures_are_retried_with_growing_delays_then_dead_lettered(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site = webhooks.site()
        path = receiver.new_path()
        receiver.answer(path, 500)
        endpoint, secret = await create(webhooks, site, receiver.url(path), VIEW)
        campaign_id, run_id = await record_run(webhooks, site)
        await record_events(webhooks, site, event(campaign_id, run_id, VIEWED, "sub_1"))
        await receiver.wait_for(path, 1)
        await until_failures(webhooks, site, endpoint.endpoint_id, 1)

        for attempt, delay in enumerate(RETRY_DELAYS, start=2):
            # Not before the shortest jittered delay ...
            early = delay.total_seconds() * (1 - JITTER) * 0.95
            webhooks.clock.advance(seconds=early)
            await asyncio.sleep(0.25)
            assert len(receiver.at(path)) == attempt - 1, f"attempt {attempt} came early"
            # ... and by the longest.
            webhooks.clock.advance(seconds=delay.total_seconds() * (1 + JITTER) * 1.01 - early)
            await receiver.wait_for(path, attempt)
            await until_failures(webhooks, site, endpoint.endpoint_id, attempt)

        attempts = receiver.at(path)
        assert len(attempts) == MAX_ATTEMPTS
        assert len({a.message_id for a in attempts}) == 1
        assert len({a.body for a in attempts}) == 1
        for request in attempts:
            request.verify(secret)
        found = await get(webhooks, site, endpoint.endpoint_id)
        assert (found.backlog, found.last_failure, found.state) == (0, "HTTP 500", ACTIVE)
        [dead] = (await dead_letters(webhooks, site, endpoint.endpoint_id)).dead_letters
        assert (dead.message_id, dead.attempts, dead.last_failure) == (
            attempts[0].message_id,
            MAX_ATTEMPTS,
            "HTTP 500",
        )
        assert dead.payload == attempts[0].body.decode()
        assert dead.event_type == VIEW
        # Spanning more than a day from the first attempt to the dead letter.
        spent = dead.dead_time.ToDatetime() - dead.first_attempt_time.ToDatetime()
        assert spent >= timedelta(hours=24)
        # No more attempts once dead.
        webhooks.clock.advance(hours=48)
        await asyncio.sleep(0.25)
        assert len(receiver.at(path)) == MAX_ATTEMPTS

        # Replayed, it is sent again at once with the same webhook-id and body.
        receiver.answer(path, 200)
        replayed = await webhooks.stub.ReplayWebhookDeadLetters(
            ws.ReplayWebhookDeadLettersRequest(endpoint_id=endpoint.endpoint_id),
            metadata=site.key,
        )
        assert replayed.replayed == 1
        again = (await receiver.wait_for(path, MAX_ATTEMPTS + 1))[-1]
        assert (again.message_id, again.body) == (attempts[0].message_id, attempts[0].body)
        again.verify(secret)

        async def delivered() -> bool:
            found = await get(webhooks, site, endpoint.endpoint_id)
            return found.consecutive_failures == 0 and found.backlog == 0

        await until(delivered, "the replay to be delivered")
        assert list((await dead_letters(webhooks, site)).dead_letters) == []

    async def test_dead_letters_page_newest_first_and_replay_picks_by_id(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site = webhooks.site()
        path = receiver.new_path()
        receiver.answer(path, 410)
        endpoint, _ = await create(webhooks, site, receiver.url(path), VIEW)
        campaign_id, run_id = await record_run(webhooks, site)
        # One 410 dead-letters the endpoint's whole queue.
        await record_events(
            webhooks, site, *(event(campaign_id, run_id, VIEWED, f"s{n}") for n in range(3))
        )

        async def all_dead() -> bool:
            return len((await dead_letters(webhooks, site)).dead_letters) == 3

        await until(all_dead, "three dead letters")
        first = await dead_letters(webhooks, site, endpoint.endpoint_id, page_size=2)
        second = await dead_letters(
            webhooks, site, endpoint.endpoint_id, page_size=2, page_token=first.next_page_token
        )
        listed = [*first.dead_letters, *second.dead_letters]
        assert len({d.message_id for d in listed}) == 3 and not second.next_page_token
        times = [(d.dead_time.ToDatetime(), d.message_id) for d in listed]
        assert times == sorted(times, reverse=True)

        receiver.answer(path, 200)
        await set_active(webhooks, site, endpoint.endpoint_id, True)
        picked = listed[1].message_id
        replayed = await webhooks.stub.ReplayWebhookDeadLetters(
            ws.ReplayWebhookDeadLettersRequest(
                endpoint_id=endpoint.endpoint_id, message_ids=[picked, "msg_unknown"]
            ),
            metadata=site.key,
        )

        assert replayed.replayed == 1
        resent = [r for r in await receiver.wait_for(path, 4) if r.message_id == picked]
        assert len(resent) == 2

    async def test_410_gone_disables_the_endpoint_and_dead_letters_its_queue(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site = webhooks.site()
        path = receiver.new_path()
        receiver.answer(path, 410)
        endpoint, secret = await create(webhooks, site, receiver.url(path), VIEW, CLICK)
        campaign_id, run_id = await record_run(webhooks, site)

        await record_events(
            webhooks,
            site,
            event(campaign_id, run_id, VIEWED, "sub_1"),
            event(campaign_id, run_id, CLICKED, "sub_1"),
        )

        async def disabled() -> bool:
            return (await get(webhooks, site, endpoint.endpoint_id)).state == DISABLED

        await until(disabled, "the endpoint to be disabled")
        found = await get(webhooks, site, endpoint.endpoint_id)
        assert "410" in found.state_reason and found.backlog == 0
        assert len((await dead_letters(webhooks, site, endpoint.endpoint_id)).dead_letters) == 2
        # Disabled: new events are not even queued.
        sent_so_far = len(receiver.at(path))
        await record_events(webhooks, site, event(campaign_id, run_id, VIEWED, "sub_2"))
        assert (await get(webhooks, site, endpoint.endpoint_id)).backlog == 0

        # Set active again, it is sent to again.
        receiver.answer(path, 200)
        resumed = await set_active(webhooks, site, endpoint.endpoint_id, True)
        assert (resumed.state, resumed.state_reason) == (ACTIVE, "")
        await record_events(webhooks, site, event(campaign_id, run_id, VIEWED, "sub_3"))
        latest = (await receiver.wait_for(path, sent_so_far + 1))[-1]
        assert body(latest)["cookie_id"] == "sub_3"
        latest.verify(secret)

    async def test_an_endpoint_failing_for_over_a_day_is_paused_and_says_why(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site = webhooks.site()
        path = receiver.new_path()
        receiver.answer(path, 503)
        endpoint, _ = await create(webhooks, site, receiver.url(path), VIEW)
        campaign_id, run_id = await record_run(webhooks, site)
        await record_events(
            webhooks, site, *(event(campaign_id, run_id, VIEWED, f"s{n}") for n in range(3))
        )
        await until_failures(webhooks, site, endpoint.endpoint_id, 3)

        for attempt, delay in enumerate(RETRY_DELAYS, start=2):
            webhooks.clock.advance(seconds=delay.total_seconds() * (1 + JITTER) * 1.01)
            await until_failures(webhooks, site, endpoint.endpoint_id, 3 * attempt)

        paused = await get(webhooks, site, endpoint.endpoint_id)
        assert paused.state == PAUSED and paused.active
        assert "3 events in a row failed every attempt for over 24 hours" in paused.state_reason
        assert "HTTP 503" in paused.state_reason
        assert paused.last_failure == "HTTP 503"

        # Paused: events are queued, not sent, and go out once it is resumed (a run
        # described after its event is sent with its description).
        sent_so_far = len(receiver.at(path))
        late_campaign, late_run = new_id("cmp"), new_id("run")
        await record_events(webhooks, site, event(late_campaign, late_run, VIEWED, "late"))
        assert (await get(webhooks, site, endpoint.endpoint_id)).backlog == 1
        await asyncio.sleep(0.25)
        assert len(receiver.at(path)) == sent_so_far
        await webhooks.internal_stub.RecordRunAudience(
            ris.RecordRunAudienceRequest(
                run_id=late_run, campaign_id=late_campaign, audience=1, description=DESCRIPTION
            ),
            metadata=site.internal,
        )
        receiver.answer(path, 200)
        resumed = await set_active(webhooks, site, endpoint.endpoint_id, True)

        assert (resumed.state, resumed.state_reason) == (ACTIVE, "")
        latest = (await receiver.wait_for(path, sent_so_far + 1))[-1]
        assert body(latest)["cookie_id"] == "late"
        assert body(latest)["notification_title"] == DESCRIPTION.notification_title


class TestRotation:
    async def test_both_secrets_sign_during_the_overlap_and_only_the_new_one_after(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site = webhooks.site()
        path = receiver.new_path()
        endpoint, old = await create(webhooks, site, receiver.url(path), VIEW)
        campaign_id, run_id = await record_run(webhooks, site)

        rotated = await webhooks.stub.RotateWebhookSecret(
            ws.RotateWebhookSecretRequest(endpoint_id=endpoint.endpoint_id, overlap_seconds=3600),
            metadata=site.key,
        )
        new = rotated.secret
        await record_events(webhooks, site, event(campaign_id, run_id, VIEWED, "during"))
        [during] = await receiver.wait_for(path, 1)

        assert new.startswith("whsec_") and new != old
        assert rotated.endpoint.HasField("previous_secret_expire_time")
        assert len(during.signatures) == 2
        during.verify(old)
        during.verify(new)

        webhooks.clock.advance(seconds=3601)
        await record_events(webhooks, site, event(campaign_id, run_id, VIEWED, "after"))
        after = (await receiver.wait_for(path, 2))[-1]

        assert len(after.signatures) == 1
        after.verify(new)
        with pytest.raises(WebhookVerificationError):
            after.verify(old)

    async def test_expire_now_drops_the_old_secret_at_once(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site = webhooks.site()
        path = receiver.new_path()
        endpoint, old = await create(webhooks, site, receiver.url(path), VIEW)
        campaign_id, run_id = await record_run(webhooks, site)

        rotated = await webhooks.stub.RotateWebhookSecret(
            ws.RotateWebhookSecretRequest(endpoint_id=endpoint.endpoint_id, expire_now=True),
            metadata=site.key,
        )
        await record_events(webhooks, site, event(campaign_id, run_id, VIEWED, "sub_1"))
        [received] = await receiver.wait_for(path, 1)

        assert not rotated.HasField("previous_secret_expire_time")
        received.verify(rotated.secret)
        with pytest.raises(WebhookVerificationError):
            received.verify(old)

    async def test_an_overlap_over_a_week_is_refused(self, webhooks: WebhooksUnderTest) -> None:
        site = webhooks.site()
        endpoint, _ = await create(webhooks, site, "https://hooks.example.com/in")

        assert await refused(
            webhooks.stub.RotateWebhookSecret(
                ws.RotateWebhookSecretRequest(
                    endpoint_id=endpoint.endpoint_id, overlap_seconds=7 * 86400 + 1
                ),
                metadata=site.key,
            )
        ) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_OVERLAP")


class TestOutboundSafety:
    @pytest.mark.parametrize(
        ("host", "kind"),
        [
            ("127.0.0.1", "loopback"),
            ("10.0.0.5", "private"),
            ("169.254.169.254", "link-local"),
            ("[::1]", "loopback"),
            ("localhost", "loopback"),
        ],
    )
    async def test_non_public_addresses_are_refused_when_connecting(
        self,
        guarded_webhooks: WebhooksUnderTest,
        receiver: WebhookReceiver,
        host: str,
        kind: str,
    ) -> None:
        site = guarded_webhooks.site()
        path = receiver.new_path()
        # Accepted when stored: where a name leads is only known when connecting.
        endpoint, _ = await create(guarded_webhooks, site, receiver.url(path, host), VIEW)
        campaign_id, run_id = await record_run(guarded_webhooks, site)

        await record_events(guarded_webhooks, site, event(campaign_id, run_id, VIEWED, "sub_1"))

        failed = await until_failures(guarded_webhooks, site, endpoint.endpoint_id, 1)
        assert failed.last_failure.startswith("not connected:")
        assert kind in failed.last_failure
        assert receiver.at(path) == []

    async def test_a_redirect_is_not_followed(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        site = webhooks.site()
        path, target = receiver.new_path(), receiver.new_path()
        receiver.redirect(path, target)
        endpoint, _ = await create(webhooks, site, receiver.url(path), VIEW)
        campaign_id, run_id = await record_run(webhooks, site)

        await record_events(webhooks, site, event(campaign_id, run_id, VIEWED, "sub_1"))

        failed = await until_failures(webhooks, site, endpoint.endpoint_id, 1)
        assert failed.last_failure == "redirect not followed (HTTP 302)"
        assert len(receiver.at(path)) == 1 and receiver.at(target) == []


class TestReplicas:
    async def test_two_reporting_servers_on_one_database_send_each_message_once(
        self, settings_factory, receiver: WebhookReceiver
    ) -> None:
        settings = webhook_settings(settings_factory, webhook_allow_private_addresses=True)
        async with webhooks_server(settings) as first:
            async with webhooks_server(settings, resolver=first.resolver, clock=first.clock):
                site = first.site()
                path = receiver.new_path()
                _, secret = await create(first, site, receiver.url(path), VIEW)
                campaign_id, run_id = await record_run(first, site)
                for batch in range(4):
                    await record_events(
                        first,
                        site,
                        *(event(campaign_id, run_id, VIEWED, f"s{batch}_{n}") for n in range(50)),
                    )

                received = await receiver.wait_for(path, 200)
                await asyncio.sleep(0.3)

        received = receiver.at(path)
        assert len(received) == 200
        assert len({r.message_id for r in received}) == 200
        assert {body(r)["cookie_id"] for r in received} == {
            f"s{b}_{n}" for b in range(4) for n in range(50)
        }
        for request in received[:5]:
            request.verify(secret)


class TestRunDescription:
    async def test_a_description_over_its_limits_is_refused(
        self, webhooks: WebhooksUnderTest
    ) -> None:
        site = webhooks.site()
        too_long = common_pb2.RunDescription(utm_source="x" * 129)

        code, _ = await refused(
            webhooks.internal_stub.RecordRunAudience(
                ris.RecordRunAudienceRequest(
                    run_id="run_1", campaign_id="cmp_1", audience=1, description=too_long
                ),
                metadata=site.internal,
            )
        )

        assert code == grpc.StatusCode.INVALID_ARGUMENT


class TestSecretsStayOutOfLogs:
    async def test_no_secret_appears_in_the_log_at_debug_level(
        self, webhooks: WebhooksUnderTest, receiver: WebhookReceiver
    ) -> None:
        stream = io.StringIO()
        root = logging.getLogger()
        saved_handlers, saved_level = list(root.handlers), root.level
        saved_structlog = structlog.get_config()
        configure_logging("json", "DEBUG", stream=stream)
        try:
            site = webhooks.site()
            path, failing = receiver.new_path(), receiver.new_path()
            receiver.answer(failing, 500)
            endpoint, first = await create(webhooks, site, receiver.url(path), VIEW)
            broken, third = await create(webhooks, site, receiver.url(failing), VIEW)
            rotated = await webhooks.stub.RotateWebhookSecret(
                ws.RotateWebhookSecretRequest(endpoint_id=endpoint.endpoint_id),
                metadata=site.key,
            )
            campaign_id, run_id = await record_run(webhooks, site)
            await record_events(webhooks, site, event(campaign_id, run_id, VIEWED, "sub_1"))
            await receiver.wait_for(path, 1)
            await until_failures(webhooks, site, broken.endpoint_id, 1)
        finally:
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for handler in saved_handlers:
                root.addHandler(handler)
            root.setLevel(saved_level)
            structlog.configure(**saved_structlog)

        written = stream.getvalue()
        assert "webhook endpoint created" in written
        assert "webhook secret rotated" in written
        for secret in (first, third, rotated.secret):
            assert secret not in written
            assert secret.removeprefix("whsec_") not in written

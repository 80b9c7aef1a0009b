"""The SDK's calls into the audience (identify, track) and engagement as segment events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.segment.v1 import (
    profile_pb2,
    segment_internal_service_pb2,
    segment_internal_service_pb2_grpc,
    segment_service_pb2,
)
from services.gateway.app import engagement_event_id
from services.gateway.server import create_gateway
from services.kit.db import create_engine_for
from services.kit.grpcserver import client_channel
from services.kit.tokens import unsubscribe_token
from tests.gateway.conftest import GatewaySite, Stack
from tests.gateway.test_gateway import (
    assert_error,
    campaign_report,
    event,
    post,
    sent_run,
    subscribe_body,
)
from tests.support.sites import bearer

TOKEN_HEADER = "X-Clarion-Unsubscribe-Token"


async def subscribed(stack: Stack, site: GatewaySite) -> tuple[str, str]:
    """A new subscriber of `site`: its id and the unsubscribe_token the browser keeps."""
    status, body, _ = await post(
        stack, f"/v1/sites/{site.site_id}/subscriptions", json=subscribe_body(profile_id=None)
    )
    assert status == 201, body
    return body["subscriber_id"], body["unsubscribe_token"]


def proof(token: str | None) -> dict[str, str]:
    return {} if token is None else {TOKEN_HEADER: token}


async def stored_events(stack: Stack, site: GatewaySite) -> list[dict[str, Any]]:
    """The site's stored events, read from segment's database, in event id order."""
    engine = create_engine_for(stack.settings.database_url_for("segment"))
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                sa.text(
                    "SELECT event_id, name, profile_id, subscriber_id, properties "
                    "FROM segment_events WHERE site_id = :site ORDER BY event_id"
                ),
                {"site": site.site_id},
            )
            events = [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()
    for stored in events:
        if isinstance(stored["properties"], str):  # SQLite gives the JSON text
            stored["properties"] = json.loads(stored["properties"])
    return events


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class TestIdentify:
    async def test_with_the_token_it_attaches_the_profile_and_its_anonymous_events(
        self, stack, site
    ):
        subscriber_id, token = await subscribed(stack, site)
        status, body, _ = await post(
            stack,
            f"/v1/sites/{site.site_id}/track",
            json={
                "subscriber_id": subscriber_id,
                "events": [{"event_id": "page-1", "name": "Page Viewed"}],
            },
            headers=proof(token),
        )
        assert status == 200, body
        profile_id = f"user-{uuid.uuid4().hex}"

        status, body, _ = await post(
            stack,
            f"/v1/sites/{site.site_id}/identify",
            json={"subscriber_id": subscriber_id, "profile_id": profile_id},
            headers=proof(token),
        )

        assert (status, body) == (200, {"subscriber_id": subscriber_id, "profile_id": profile_id})
        profile = await stack.segment.GetProfile(
            segment_service_pb2.GetProfileRequest(profile_id=profile_id),
            metadata=bearer(site.api_key),
        )
        assert list(profile.profile.subscriber_ids) == [subscriber_id]
        # Tracked after: segment attributes it to the subscriber's profile.
        status, body, _ = await post(
            stack,
            f"/v1/sites/{site.site_id}/track",
            json={
                "subscriber_id": subscriber_id,
                "events": [{"event_id": "page-2", "name": "Page Viewed"}],
            },
            headers=proof(token),
        )
        assert status == 200, body
        mine = [e for e in await stored_events(stack, site) if e["subscriber_id"] == subscriber_id]
        page_viewed = [e for e in mine if e["name"] == "Page Viewed"]
        assert [e["profile_id"] for e in page_viewed] == [profile_id, profile_id]

    @pytest.mark.parametrize("forge", ["missing", "junk", "another-subscribers", "another-sites"])
    async def test_without_a_valid_token_it_is_403_and_nothing_changes(
        self, stack, site, other_site, forge
    ):
        subscriber_id, _ = await subscribed(stack, site)
        _, other_token = await subscribed(stack, site)
        token = {
            "missing": None,
            "junk": "A" * 43,
            "another-subscribers": other_token,
            "another-sites": unsubscribe_token(
                other_site.engagement_secret, other_site.site_id, subscriber_id
            ),
        }[forge]
        profile_id = f"user-{uuid.uuid4().hex}"

        status, body, _ = await post(
            stack,
            f"/v1/sites/{site.site_id}/identify",
            json={"subscriber_id": subscriber_id, "profile_id": profile_id},
            headers=proof(token),
        )

        code = "UNSUBSCRIBE_TOKEN_REQUIRED" if token is None else "INVALID_UNSUBSCRIBE_TOKEN"
        assert_error(status, body, 403, code)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stack.segment.GetProfile(
                segment_service_pb2.GetProfileRequest(profile_id=profile_id),
                metadata=bearer(site.api_key),
            )
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        stored = await stack.segment.GetSubscriber(
            segment_service_pb2.GetSubscriberRequest(subscriber_id=subscriber_id),
            metadata=bearer(site.api_key),
        )
        assert stored.subscriber.profile_id == ""

    async def test_an_unknown_subscriber_or_site_is_404(self, stack, site):
        ghost = f"sub_{uuid.uuid4().hex}"
        token = unsubscribe_token(site.engagement_secret, site.site_id, ghost)
        status, body, _ = await post(
            stack,
            f"/v1/sites/{site.site_id}/identify",
            json={"subscriber_id": ghost, "profile_id": "user-1"},
            headers=proof(token),
        )
        assert_error(status, body, 404, "SUBSCRIBER_NOT_FOUND")

        status, body, _ = await post(
            stack,
            "/v1/sites/site_nobody/identify",
            json={"subscriber_id": ghost, "profile_id": "user-1"},
            headers=proof(token),
        )
        assert_error(status, body, 404, "SITE_NOT_FOUND")

    @pytest.mark.parametrize(
        ("profile_id", "code"),
        [
            ("", "MISSING_FIELD"),
            (None, "MISSING_FIELD"),
            (42, "INVALID_FIELD_TYPE"),
            ("u" * 129, "FIELD_TOO_LONG"),
            ("user\n1", "INVALID_CHARACTERS"),
        ],
    )
    async def test_a_bad_profile_id_is_400(self, stack, site, profile_id, code):
        subscriber_id, token = await subscribed(stack, site)
        status, body, _ = await post(
            stack,
            f"/v1/sites/{site.site_id}/identify",
            json={"subscriber_id": subscriber_id, "profile_id": profile_id},
            headers=proof(token),
        )
        assert_error(status, body, 400, code)


class TestTrack:
    async def test_good_events_are_stored_and_bad_ones_answered_at_their_index(
        self, stack, site
    ):
        subscriber_id, token = await subscribed(stack, site)
        soon = rfc3339(datetime.now(UTC) - timedelta(minutes=5))
        later = rfc3339(datetime.now(UTC) + timedelta(days=3))
        events = [
            {
                "event_id": "buy-1",
                "name": "Purchase",
                "occur_time": soon,
                "properties": {
                    "total": 42.5,
                    "gift": False,
                    "tags": ["a", "b"],
                    "when": "2026-01-31T12:00:00Z",
                },
            },
            {"event_id": "buy-2", "name": "Purchase", "properties": {"total": "lots"}},
            {"event_id": "buy-3", "name": "Purchase", "occur_time": later},
            {"event_id": "buy-4", "name": "Purchase", "properties": {"bad/name": 1}},
            {"event_id": "view-1", "name": "Page Viewed"},
        ]

        status, body, _ = await post(
            stack,
            f"/v1/sites/{site.site_id}/track",
            data=json.dumps({"subscriber_id": subscriber_id, "events": events}),
            headers={"Content-Type": "text/plain;charset=UTF-8", **proof(token)},
        )

        assert status == 200, body
        assert [(r["index"], r["ok"], r["code"]) for r in body["results"]] == [
            (0, True, ""),
            (1, False, "PROPERTY_TYPE_MISMATCH"),
            (2, False, "EVENT_IN_FUTURE"),
            (3, False, "INVALID_PROPERTY_NAME"),
            (4, True, ""),
        ]
        assert all(r["message"] for r in body["results"] if not r["ok"])
        mine = {
            e["event_id"]: e
            for e in await stored_events(stack, site)
            if e["subscriber_id"] == subscriber_id and not e["event_id"].startswith("clarion:")
        }
        assert sorted(mine) == ["buy-1", "view-1"]
        # A time as a string stays a string; nothing is guessed.
        assert mine["buy-1"]["properties"] == {
            "total": 42.5,
            "gift": False,
            "tags": ["a", "b"],
            "when": "2026-01-31T12:00:00Z",
        }
        # Stored once: the same ids again are duplicates.
        status, again, _ = await post(
            stack,
            f"/v1/sites/{site.site_id}/track",
            json={"subscriber_id": subscriber_id, "events": [events[0], events[4]]},
            headers=proof(token),
        )
        assert [(r["ok"], r["duplicate"]) for r in again["results"]] == [(True, True)] * 2

    @pytest.mark.parametrize("token", [None, "A" * 43])
    async def test_without_a_valid_token_it_is_403_and_stores_nothing(self, stack, site, token):
        subscriber_id, _ = await subscribed(stack, site)
        status, body, _ = await post(
            stack,
            f"/v1/sites/{site.site_id}/track",
            json={"subscriber_id": subscriber_id, "events": [{"event_id": "e", "name": "X"}]},
            headers=proof(token),
        )
        assert status == 403, body
        assert not [
            e for e in await stored_events(stack, site) if e["subscriber_id"] == subscriber_id
            and e["name"] == "X"
        ]

    @pytest.mark.parametrize(
        ("events", "code"),
        [
            ([], "MISSING_FIELD"),
            ([{"event_id": f"e{n}", "name": "X"} for n in range(101)], "FIELD_TOO_LONG"),
            ([{"event_id": "clarion id", "name": "X"}], "INVALID_ID"),
            ([{"event_id": "e", "name": "X", "occur_time": "yesterday"}], "INVALID_TIMESTAMP"),
            ([{"event_id": "e", "name": "X", "properties": {"p": {"nested": 1}}}],
             "INVALID_FIELD_TYPE"),
            ([{"event_id": "e", "name": "X", "properties": {"p": "x" * 1025}}], "FIELD_TOO_LONG"),
            ([{"event_id": "e", "name": "X", "properties": {"p": ["x"] * 101}}], "LIST_TOO_LONG"),
            ([{"event_id": "e", "name": "X", "properties": {"p": 1e400}}], "INVALID_JSON"),
            ([{"event_id": "e", "name": "X", "properties": {"p" * 65: 1}}], "FIELD_TOO_LONG"),
        ],
    )
    async def test_a_body_past_the_declared_limits_is_400_as_a_whole(
        self, stack, site, events, code
    ):
        subscriber_id, token = await subscribed(stack, site)
        status, body, _ = await post(
            stack,
            f"/v1/sites/{site.site_id}/track",
            data=json.dumps({"subscriber_id": subscriber_id, "events": events}),
            headers={"Content-Type": "application/json", **proof(token)},
        )
        assert_error(status, body, 400, code)

    async def test_a_site_cannot_write_clarions_event_ids(self, stack, site):
        subscriber_id, token = await subscribed(stack, site)
        status, body, _ = await post(
            stack,
            f"/v1/sites/{site.site_id}/track",
            json={
                "subscriber_id": subscriber_id,
                "events": [{"event_id": "clarion:engagement:clicked:x", "name": "X"}],
            },
            headers=proof(token),
        )
        assert status == 200, body
        assert body["results"][0]["code"] == "RESERVED_EVENT_ID"


class TestEngagementAsEvents:
    async def test_a_click_posted_twice_is_one_notification_clicked_event(self, stack, site):
        subscriber_id, _ = await subscribed(stack, site)
        campaign_id, run_id = await sent_run(stack, site)
        body = event(
            site, "clicked", run_id, campaign_id, subscriber_id, button="buy"
        )
        for _ in range(2):
            status, answer, _ = await post(stack, f"/v1/sites/{site.site_id}/events", json=body)
            assert status == 202, answer

        clicked = [
            e for e in await stored_events(stack, site)
            if e["subscriber_id"] == subscriber_id and e["name"] == "Notification Clicked"
        ]
        assert [(e["event_id"], e["properties"]) for e in clicked] == [
            (
                f"clarion:engagement:clicked:{run_id}:{subscriber_id}:buy",
                {"campaign_id": campaign_id, "run_id": run_id, "button": "buy"},
            )
        ]

    async def test_views_and_closes_are_events_too(self, stack, site):
        subscriber_id, _ = await subscribed(stack, site)
        campaign_id, run_id = await sent_run(stack, site)
        for kind in ("viewed", "closed"):
            status, answer, _ = await post(
                stack,
                f"/v1/sites/{site.site_id}/events",
                json=event(site, kind, run_id, campaign_id, subscriber_id),
            )
            assert status == 202, answer
        names = sorted(
            e["name"] for e in await stored_events(stack, site)
            if e["subscriber_id"] == subscriber_id and e["name"].startswith("Notification")
        )
        assert names == ["Notification Closed", "Notification Viewed"]

    async def test_when_segment_fails_the_engagement_is_still_recorded(self, stack, site):
        settings = stack.settings.model_copy(
            update={"segment_address": "127.0.0.1:1", "rpc_timeout_seconds": 2.0}
        )
        gateway = await create_gateway("127.0.0.1:0", settings)
        await gateway.start()
        try:
            campaign_id, run_id = await sent_run(stack, site)
            async with stack.http.post(
                f"{gateway.url}/v1/sites/{site.site_id}/events",
                json=event(site, "clicked", run_id, campaign_id, "sub_0"),
            ) as response:
                assert (response.status, await response.json()) == (202, {"recorded": True})
        finally:
            await gateway.stop()
        report = await campaign_report(stack, site, campaign_id)
        assert report.clicked == 1

    def test_an_over_long_event_id_becomes_a_stable_digest(self):
        first = engagement_event_id("clicked", "r" * 128, "s" * 128, "b" * 64)
        assert first == engagement_event_id("clicked", "r" * 128, "s" * 128, "b" * 64)
        assert first != engagement_event_id("clicked", "r" * 128, "s" * 128, "c" * 64)
        assert first.startswith("clarion:engagement:clicked:") and len(first) <= 128

    async def test_system_events_are_internal_only_and_must_have_clarion_ids(self, stack, site):
        channel = client_channel(stack.settings.segment_address)
        stub = segment_internal_service_pb2_grpc.SegmentInternalServiceStub(channel)
        try:
            request = segment_internal_service_pb2.TrackSystemEventsRequest(
                events=[
                    profile_pb2.Event(
                        event_id="clarion:engagement:test", name="X", subscriber_id="sub_1",
                        occur_time=datetime_stamp(),
                    ),
                    profile_pb2.Event(
                        event_id="site-id", name="X", subscriber_id="sub_1",
                        occur_time=datetime_stamp(),
                    ),
                ]
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.TrackSystemEvents(request, metadata=bearer(site.api_key))
            assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
            response = await stub.TrackSystemEvents(request, metadata=stack.internal(site.site_id))
            assert [(r.ok, r.reason) for r in response.results] == [
                (True, ""),
                (False, "RESERVED_EVENT_ID"),
            ]
        finally:
            await channel.close()


def datetime_stamp() -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp

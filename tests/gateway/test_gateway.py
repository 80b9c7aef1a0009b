"""The gateway over HTTP, against real campaign, segment and reporting servers."""

from __future__ import annotations

import json
import os
import urllib.parse
import uuid

import aiohttp
import grpc
import pytest
from yarl import URL

from clarion.campaign.v1 import site_internal_service_pb2
from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import (
    reporting_internal_service_pb2,
    reporting_pb2,
    reporting_service_pb2,
)
from clarion.segment.v1 import segment_service_pb2, subscriber_pb2
from services.campaign.domain.sites import engagement_secret as derive_engagement_secret
from services.campaign.domain.sites import new_vapid_key_pair
from services.gateway.app import ApiError, SiteDirectory
from services.gateway.server import create_gateway
from services.kit.peers import Peers
from services.kit.tokens import (
    engagement_token,
    unsubscribe_token,
    verify_unsubscribe_token,
)
from tests.gateway.conftest import GatewaySite, Stack, b64url, browser_subscription
from tests.support.sites import bearer


def subscribe_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "subscription": browser_subscription(uuid.uuid4().hex),
        "browser": "firefox",
        "timezone": "Europe/Berlin",
        "profile_id": "user-42",
    }
    body.update(overrides)
    return body


async def post(stack: Stack, path: str, **kwargs: object) -> tuple[int, dict, dict]:
    async with stack.http.post(stack.url(path), **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.json(), dict(response.headers)


def assert_error(status: int, body: dict, expected_status: int, code: str | None = None) -> None:
    assert status == expected_status, body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code


class TestHealth:
    async def test_healthz_answers_ok(self, stack):
        async with stack.http.get(stack.url("/healthz")) as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})


class TestSiteConfig:
    async def test_gives_the_sites_vapid_public_key_as_base64url(self, stack, site: GatewaySite):
        async with stack.http.get(stack.url(f"/v1/sites/{site.site_id}/config")) as response:
            body = await response.json()

        assert response.status == 200
        assert body == {"site_id": site.site_id, "vapid_public_key": b64url(site.vapid_public_key)}
        assert "=" not in body["vapid_public_key"]

    @pytest.mark.parametrize("site_id", ["site_doesnotexist", "bad%20id"])
    async def test_an_unknown_site_is_404(self, stack, site_id):
        async with stack.http.get(stack.url(f"/v1/sites/{site_id}/config")) as response:
            assert_error(response.status, await response.json(), 404, "SITE_NOT_FOUND")


class TestSubscribe:
    async def test_a_new_subscription_is_created(self, stack, site):
        status, body, _ = await post(
            stack, f"/v1/sites/{site.site_id}/subscriptions", json=subscribe_body()
        )

        assert status == 201
        assert body["created"] is True
        assert verify_unsubscribe_token(
            site.engagement_secret, body["unsubscribe_token"], site.site_id, body["subscriber_id"]
        )
        stored = await stack.segment.GetSubscriber(
            segment_service_pb2.GetSubscriberRequest(subscriber_id=body["subscriber_id"]),
            metadata=bearer(site.api_key),
        )
        assert stored.subscriber.browser == common_pb2.BROWSER_FIREFOX
        assert stored.subscriber.timezone == "Europe/Berlin"

    async def test_subscribing_again_updates_the_same_subscriber(self, stack, site):
        body = subscribe_body()
        first_status, first, _ = await post(
            stack, f"/v1/sites/{site.site_id}/subscriptions", json=body
        )
        again_status, again, _ = await post(
            stack, f"/v1/sites/{site.site_id}/subscriptions", json=body
        )

        assert (first_status, again_status) == (201, 200)
        assert again == {
            "subscriber_id": first["subscriber_id"],
            "created": False,
            "unsubscribe_token": first["unsubscribe_token"],
        }

    async def test_an_unknown_site_is_404_and_stores_nothing(self, stack):
        status, body, _ = await post(
            stack, "/v1/sites/site_made_up/subscriptions", json=subscribe_body()
        )

        assert_error(status, body, 404, "SITE_NOT_FOUND")

    async def test_invalid_json_is_400(self, stack, site):
        status, body, _ = await post(
            stack, f"/v1/sites/{site.site_id}/subscriptions", data=b'{"subscription": ',
            headers={"Content-Type": "application/json"},
        )

        assert_error(status, body, 400, "INVALID_JSON")

    async def test_a_body_that_is_not_an_object_is_400(self, stack, site):
        status, body, _ = await post(stack, f"/v1/sites/{site.site_id}/subscriptions", json=[1])

        assert_error(status, body, 400, "INVALID_BODY")

    async def test_a_missing_endpoint_is_400(self, stack, site):
        request = subscribe_body()
        del request["subscription"]["endpoint"]  # type: ignore[attr-defined]

        status, body, _ = await post(stack, f"/v1/sites/{site.site_id}/subscriptions", json=request)

        assert_error(status, body, 400, "MISSING_FIELD")
        assert "subscription.endpoint" in body["error"]["message"]

    async def test_an_endpoint_of_the_wrong_type_is_400(self, stack, site):
        request = subscribe_body()
        request["subscription"]["endpoint"] = 42  # type: ignore[index]

        status, body, _ = await post(stack, f"/v1/sites/{site.site_id}/subscriptions", json=request)

        assert_error(status, body, 400, "INVALID_FIELD_TYPE")

    async def test_a_p256dh_of_the_wrong_length_is_400_with_segments_reason(self, stack, site):
        request = subscribe_body()
        short_point = b64url(b"\x04" + bytes(31))
        request["subscription"]["keys"]["p256dh"] = short_point  # type: ignore[index]

        status, body, _ = await post(stack, f"/v1/sites/{site.site_id}/subscriptions", json=request)

        assert_error(status, body, 400, "INVALID_P256DH")

    async def test_an_auth_secret_that_is_not_base64url_is_400(self, stack, site):
        request = subscribe_body()
        request["subscription"]["keys"]["auth"] = "not/base64+url!"  # type: ignore[index]

        status, body, _ = await post(stack, f"/v1/sites/{site.site_id}/subscriptions", json=request)

        assert_error(status, body, 400, "INVALID_BASE64URL")
        assert "subscription.keys.auth" in body["error"]["message"]

    async def test_an_unknown_browser_is_400(self, stack, site):
        status, body, _ = await post(
            stack,
            f"/v1/sites/{site.site_id}/subscriptions",
            json=subscribe_body(browser="netscape"),
        )

        assert_error(status, body, 400, "INVALID_BROWSER")

    async def test_a_body_over_16_kib_is_413(self, stack, site):
        status, body, headers = await post(
            stack, f"/v1/sites/{site.site_id}/subscriptions",
            json=subscribe_body(profile_id="x" * 17_000),
        )

        assert_error(status, body, 413, "PAYLOAD_TOO_LARGE")
        assert headers["Access-Control-Allow-Origin"] == "*"


async def delete(stack: Stack, path: str, token: str | None = None) -> tuple[int, dict]:
    headers = {} if token is None else {"X-Clarion-Unsubscribe-Token": token}
    async with stack.http.delete(stack.url(path), headers=headers) as response:
        return response.status, await response.json()


async def subscriber_state(stack: Stack, site: GatewaySite, subscriber_id: str) -> int:
    stored = await stack.segment.GetSubscriber(
        segment_service_pb2.GetSubscriberRequest(subscriber_id=subscriber_id),
        metadata=bearer(site.api_key),
    )
    return stored.subscriber.state


class TestUnsubscribe:
    async def subscribe(self, stack: Stack, site: GatewaySite) -> dict:
        status, created, _ = await post(
            stack, f"/v1/sites/{site.site_id}/subscriptions", json=subscribe_body()
        )
        assert status == 201, created
        return created

    async def test_the_subscribe_answers_token_unsubscribes(self, stack, site):
        created = await self.subscribe(stack, site)
        subscriber_id = created["subscriber_id"]

        status, body = await delete(
            stack,
            f"/v1/sites/{site.site_id}/subscriptions/{subscriber_id}",
            created["unsubscribe_token"],
        )

        assert (status, body) == (200, {"subscriber_id": subscriber_id, "state": "unsubscribed"})
        stored = await stack.segment.GetSubscriber(
            segment_service_pb2.GetSubscriberRequest(subscriber_id=subscriber_id),
            metadata=bearer(site.api_key),
        )
        assert stored.subscriber.state == subscriber_pb2.SUBSCRIBER_STATE_UNSUBSCRIBED
        assert stored.subscriber.unsubscribe_reason == "user_unsubscribed"

    async def test_without_a_token_it_is_403_and_the_subscriber_stays(self, stack, site):
        created = await self.subscribe(stack, site)
        subscriber_id = created["subscriber_id"]

        status, body = await delete(
            stack, f"/v1/sites/{site.site_id}/subscriptions/{subscriber_id}"
        )

        assert_error(status, body, 403, "UNSUBSCRIBE_TOKEN_REQUIRED")
        assert "X-Clarion-Unsubscribe-Token" in body["error"]["message"]
        assert await subscriber_state(stack, site, subscriber_id) == (
            subscriber_pb2.SUBSCRIBER_STATE_ACTIVE
        )

    @pytest.mark.parametrize(
        "forge",
        [
            pytest.param(lambda site, sub, other: "not-a-token", id="junk"),
            pytest.param(
                lambda site, sub, other: unsubscribe_token(os.urandom(32), site.site_id, sub),
                id="wrong-secret",
            ),
            pytest.param(
                lambda site, sub, other: unsubscribe_token(
                    site.engagement_secret, site.site_id, other
                ),
                id="another-subscribers",
            ),
            pytest.param(
                lambda site, sub, other: unsubscribe_token(
                    site.engagement_secret, "site_other", sub
                ),
                id="another-sites",
            ),
            pytest.param(
                lambda site, sub, other: engagement_token(
                    site.engagement_secret, site.site_id, "", sub
                ),
                id="an-engagement-token",
            ),
        ],
    )
    async def test_a_wrong_token_is_403_and_the_subscriber_stays(self, stack, site, forge):
        created = await self.subscribe(stack, site)
        other = await self.subscribe(stack, site)
        subscriber_id = created["subscriber_id"]

        status, body = await delete(
            stack,
            f"/v1/sites/{site.site_id}/subscriptions/{subscriber_id}",
            forge(site, subscriber_id, other["subscriber_id"]),
        )

        assert_error(status, body, 403, "INVALID_UNSUBSCRIBE_TOKEN")
        assert await subscriber_state(stack, site, subscriber_id) == (
            subscriber_pb2.SUBSCRIBER_STATE_ACTIVE
        )

    async def test_another_subscribers_answered_token_does_not_unsubscribe(self, stack, site):
        mine, theirs = await self.subscribe(stack, site), await self.subscribe(stack, site)

        status, body = await delete(
            stack,
            f"/v1/sites/{site.site_id}/subscriptions/{theirs['subscriber_id']}",
            mine["unsubscribe_token"],
        )

        assert_error(status, body, 403, "INVALID_UNSUBSCRIBE_TOKEN")
        assert await subscriber_state(stack, site, theirs["subscriber_id"]) == (
            subscriber_pb2.SUBSCRIBER_STATE_ACTIVE
        )

    async def test_a_token_from_another_site_does_not_unsubscribe(self, stack, site, other_site):
        created = await self.subscribe(stack, site)
        subscriber_id = created["subscriber_id"]
        # The same subscriber id, signed by the other site: a token anyone with a site has.
        token = unsubscribe_token(other_site.engagement_secret, site.site_id, subscriber_id)

        status, body = await delete(
            stack, f"/v1/sites/{site.site_id}/subscriptions/{subscriber_id}", token
        )

        assert_error(status, body, 403, "INVALID_UNSUBSCRIBE_TOKEN")
        assert await subscriber_state(stack, site, subscriber_id) == (
            subscriber_pb2.SUBSCRIBER_STATE_ACTIVE
        )

    async def test_an_unknown_subscriber_with_a_valid_token_is_404(self, stack, site):
        token = unsubscribe_token(site.engagement_secret, site.site_id, "sub_missing")

        status, body = await delete(
            stack, f"/v1/sites/{site.site_id}/subscriptions/sub_missing", token
        )

        assert_error(status, body, 404)

    async def test_an_unknown_site_is_404(self, stack):
        status, body = await delete(stack, "/v1/sites/site_made_up/subscriptions/sub_1", "x")

        assert_error(status, body, 404, "SITE_NOT_FOUND")


def event(
    site: GatewaySite, kind: str, run_id: str, campaign_id: str, subscriber_id: str, **extra: str
) -> dict[str, str]:
    """An event as a service worker sends it: ids and token taken from its push."""
    token = engagement_token(site.engagement_secret, site.site_id, run_id, subscriber_id)
    return {
        "kind": kind,
        "run_id": run_id,
        "campaign_id": campaign_id,
        "subscriber_id": subscriber_id,
        "engagement_token": token,
        **extra,
    }


async def sent_run(stack: Stack, site: GatewaySite, recipients: int = 4) -> tuple[str, str]:
    """A run reporting knows of, with `recipients` sent to sub_0, sub_1, ..."""
    campaign_id, run_id = f"cmp_{uuid.uuid4().hex}", f"run_{uuid.uuid4().hex}"
    await stack.reporting_internal.RecordDeliveryOutcomes(
        reporting_internal_service_pb2.RecordDeliveryOutcomesRequest(
            outcomes=[
                reporting_pb2.DeliveryOutcome(
                    run_id=run_id, campaign_id=campaign_id, subscriber_id=f"sub_{n}",
                    status=common_pb2.DELIVERY_STATUS_SENT,
                )
                for n in range(recipients)
            ]
        ),
        metadata=stack.internal(site.site_id),
    )
    return campaign_id, run_id


async def campaign_report(
    stack: Stack, site: GatewaySite, campaign_id: str
) -> reporting_pb2.CampaignReport:
    response = await stack.reporting.GetCampaignReport(
        reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
        metadata=bearer(site.api_key),
    )
    return response.report


class TestEvents:
    async def test_events_are_recorded_once_and_show_in_the_report(self, stack, site):
        campaign_id, run_id = await sent_run(stack, site)
        path = f"/v1/sites/{site.site_id}/events"
        ids = {"run_id": run_id, "campaign_id": campaign_id}

        results = [
            await post(stack, path, json=event(site, "viewed", subscriber_id="sub_0", **ids)),
            await post(stack, path, json=event(site, "viewed", subscriber_id="sub_1", **ids)),
            await post(stack, path, json=event(site, "clicked", subscriber_id="sub_0", **ids)),
            await post(
                stack, path,
                json=event(site, "clicked", subscriber_id="sub_0", button="buy", **ids),
            ),
            await post(stack, path, json=event(site, "viewed", subscriber_id="sub_0", **ids)),
        ]

        assert [(status, body) for status, body, _ in results] == [
            (202, {"recorded": True}),
            (202, {"recorded": True}),
            (202, {"recorded": True}),
            (202, {"recorded": True}),
            (202, {"recorded": False}),  # a repeat
        ]
        report = await campaign_report(stack, site, campaign_id)
        assert (report.sent, report.viewed, report.clicked) == (4, 2, 1)
        assert report.click_through_rate == pytest.approx(0.25)

    @pytest.mark.parametrize(
        ("forge", "code"),
        [
            pytest.param(lambda site, other, run_id: None, "ENGAGEMENT_TOKEN_REQUIRED", id="none"),
            pytest.param(lambda site, other, run_id: "", "ENGAGEMENT_TOKEN_REQUIRED", id="empty"),
            pytest.param(
                lambda site, other, run_id: "A" * 43, "INVALID_ENGAGEMENT_TOKEN", id="junk"
            ),
            pytest.param(
                lambda site, other, run_id: engagement_token(
                    os.urandom(32), site.site_id, run_id, "sub_0"
                ),
                "INVALID_ENGAGEMENT_TOKEN",
                id="wrong-secret",
            ),
            pytest.param(
                lambda site, other, run_id: engagement_token(
                    site.engagement_secret, site.site_id, "run_another", "sub_0"
                ),
                "INVALID_ENGAGEMENT_TOKEN",
                id="another-runs",
            ),
            pytest.param(
                lambda site, other, run_id: engagement_token(
                    site.engagement_secret, site.site_id, run_id, "sub_1"
                ),
                "INVALID_ENGAGEMENT_TOKEN",
                id="another-subscribers",
            ),
            pytest.param(
                lambda site, other, run_id: engagement_token(
                    site.engagement_secret, other.site_id, run_id, "sub_0"
                ),
                "INVALID_ENGAGEMENT_TOKEN",
                id="made-for-another-site",
            ),
            pytest.param(
                lambda site, other, run_id: engagement_token(
                    other.engagement_secret, site.site_id, run_id, "sub_0"
                ),
                "INVALID_ENGAGEMENT_TOKEN",
                id="signed-by-another-site",
            ),
            pytest.param(
                lambda site, other, run_id: unsubscribe_token(
                    site.engagement_secret, site.site_id, "sub_0"
                ),
                "INVALID_ENGAGEMENT_TOKEN",
                id="an-unsubscribe-token",
            ),
        ],
    )
    async def test_a_forged_event_is_403_and_counted_nowhere(
        self, stack, site, other_site, forge, code
    ):
        campaign_id, run_id = await sent_run(stack, site)
        path = f"/v1/sites/{site.site_id}/events"
        forged = {"run_id": run_id, "campaign_id": campaign_id, "subscriber_id": "sub_0"}
        token = forge(site, other_site, run_id)
        if token is not None:
            forged["engagement_token"] = token

        results = [
            await post(stack, path, json={**forged, "kind": kind})
            for kind in ("viewed", "clicked", "closed")
        ]

        for status, body, _ in results:
            assert_error(status, body, 403, code)
        report = await campaign_report(stack, site, campaign_id)
        assert (report.viewed, report.clicked, report.closed) == (0, 0, 0)
        assert report.click_through_rate == 0
        # Nothing was stored either: the genuine event is new, not a repeat.
        status, body, _ = await post(
            stack, path, json=event(site, "viewed", run_id, campaign_id, "sub_0")
        )
        assert (status, body) == (202, {"recorded": True})

    async def test_a_site_api_key_cannot_skip_the_token_check_at_reporting(self, stack, site):
        # The gateway is the only way in for events: reporting takes them from Clarion's
        # own services only, so a site's key cannot record what no browser proved.
        campaign_id, run_id = await sent_run(stack, site)

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.reporting_internal.RecordEngagementEvents(
                reporting_internal_service_pb2.RecordEngagementEventsRequest(
                    events=[
                        reporting_pb2.EngagementEvent(
                            run_id=run_id, campaign_id=campaign_id, subscriber_id="sub_0",
                            kind=common_pb2.ENGAGEMENT_KIND_CLICKED,
                        )
                    ]
                ),
                metadata=bearer(site.api_key),
            )

        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        report = await campaign_report(stack, site, campaign_id)
        assert (report.viewed, report.clicked, report.closed) == (0, 0, 0)

    async def test_a_genuine_event_posted_to_another_site_is_403(self, stack, site, other_site):
        campaign_id, run_id = await sent_run(stack, site)
        await sent_run(stack, other_site)

        status, body, _ = await post(
            stack, f"/v1/sites/{other_site.site_id}/events",
            json=event(site, "viewed", run_id, campaign_id, "sub_0"),
        )

        assert_error(status, body, 403, "INVALID_ENGAGEMENT_TOKEN")
        report = await campaign_report(stack, site, campaign_id)
        assert report.viewed == 0

    async def test_the_403_says_what_to_send(self, stack, site):
        status, body, _ = await post(
            stack, f"/v1/sites/{site.site_id}/events",
            json={"kind": "viewed", "run_id": "r", "campaign_id": "c", "subscriber_id": "s",
                  "engagement_token": "forged"},
        )

        assert_error(status, body, 403, "INVALID_ENGAGEMENT_TOKEN")
        assert "engagement_token" in body["error"]["message"]

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({"kind": "hovered", "run_id": "r", "campaign_id": "c", "subscriber_id": "s"},
             "INVALID_KIND"),
            ({"kind": "viewed", "campaign_id": "c", "subscriber_id": "s"}, "MISSING_FIELD"),
            ({"kind": "viewed", "run_id": 7, "campaign_id": "c", "subscriber_id": "s"},
             "INVALID_FIELD_TYPE"),
            ({"kind": "viewed", "run_id": "r", "campaign_id": "c", "subscriber_id": "s",
              "engagement_token": 7}, "INVALID_FIELD_TYPE"),
        ],
    )
    async def test_a_bad_event_is_400(self, stack, site, body, code):
        status, answer, _ = await post(stack, f"/v1/sites/{site.site_id}/events", json=body)

        assert_error(status, answer, 400, code)

    async def test_reportings_own_validation_comes_back_as_400(self, stack, site):
        status, body, _ = await post(
            stack, f"/v1/sites/{site.site_id}/events",
            json=event(site, "viewed", "r" * 200, "c", "s"),
        )

        assert_error(status, body, 400, "FIELD_TOO_LONG")

    async def test_an_unknown_site_is_404(self, stack, site):
        status, body, _ = await post(
            stack, "/v1/sites/site_made_up/events", json=event(site, "viewed", "r", "c", "s")
        )

        assert_error(status, body, 404, "SITE_NOT_FOUND")


class TestEngagementSecret:
    async def test_is_32_bytes_stable_and_differs_between_sites(self, stack, site, other_site):
        again = await stack.engagement_secret(site.site_id)

        assert len(site.engagement_secret) == 32
        assert again == site.engagement_secret
        assert other_site.engagement_secret != site.engagement_secret

    async def test_is_not_the_vapid_private_key(self, stack, site):
        credentials = await stack.sites.GetSiteCredentials(
            site_internal_service_pb2.GetSiteCredentialsRequest(), metadata=stack.internal(site.site_id)
        )

        assert credentials.engagement_secret not in credentials.vapid_private_key

    def test_rotating_the_vapid_key_rotates_it(self):
        first, _ = new_vapid_key_pair()
        second, _ = new_vapid_key_pair()

        assert derive_engagement_secret(first) == derive_engagement_secret(first)
        assert derive_engagement_secret(first) != derive_engagement_secret(second)

    async def test_only_the_internal_token_gets_it(self, stack, site):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.sites.GetSiteCredentials(
                site_internal_service_pb2.GetSiteCredentialsRequest(), metadata=bearer(site.api_key)
            )

        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


class TestSiteCache:
    async def test_caches_stay_bounded_under_a_flood_of_site_ids(self, stack, site, other_site):
        peers = Peers(stack.settings)
        directory = SiteDirectory(peers, ttl_seconds=60, max_sites=1)
        try:
            for site_id in [f"site_flood_{n}" for n in range(20)]:
                with pytest.raises(ApiError):
                    await directory.engagement_secret(site_id)
            for known in (site, other_site, site, other_site):
                assert await directory.engagement_secret(known.site_id) == known.engagement_secret
                assert (await directory.get(known.site_id)).site_id == known.site_id

            assert len(directory._secrets) <= 1
            assert len(directory._sites) <= 1
        finally:
            await peers.close()


class TestCors:
    async def test_a_preflight_is_answered(self, stack, site):
        async with stack.http.options(
            stack.url(f"/v1/sites/{site.site_id}/subscriptions"),
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        ) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
            assert "DELETE" in response.headers["Access-Control-Allow-Methods"]
            assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
            assert "X-Clarion-Unsubscribe-Token" in response.headers[
                "Access-Control-Allow-Headers"
            ]

    async def test_errors_carry_the_cors_header_too(self, stack, site):
        status, body, headers = await post(
            stack, f"/v1/sites/{site.site_id}/events", json={"kind": "nope"},
            headers={"Origin": "https://shop.example"},
        )

        assert status == 400
        assert headers["Access-Control-Allow-Origin"] == "*"

    async def test_an_unknown_path_is_a_json_404(self, stack):
        async with stack.http.get(stack.url("/v1/nothing-here")) as response:
            assert_error(response.status, await response.json(), 404)
            assert response.headers["Access-Control-Allow-Origin"] == "*"


class TestUnavailableServices:
    async def test_an_unreachable_service_is_503(self, settings_factory):
        settings = settings_factory(campaign_address="127.0.0.1:1", rpc_timeout_seconds=2.0)
        gateway = await create_gateway("127.0.0.1:0", settings)
        await gateway.start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{gateway.url}/v1/sites/site_any/config") as response:
                    assert_error(response.status, await response.json(), 503, "SERVICE_UNAVAILABLE")
        finally:
            await gateway.stop()


async def stored_subscribers(stack: Stack, site: GatewaySite) -> int:
    listed = await stack.segment.ListSubscribers(
        segment_service_pb2.ListSubscribersRequest(page_size=1000),
        metadata=bearer(site.api_key),
    )
    return len(listed.subscribers)


class TestHostileInput:
    """Each input that once broke the gateway (500 or 502) is a 400 naming the field."""

    @pytest.mark.parametrize("depth", [33, 2_000, 5_000])
    @pytest.mark.parametrize("route", ["subscriptions", "events"])
    async def test_json_nested_too_deep_is_400(self, stack, site, route, depth):
        nested = '{"subscription": ' + "[" * depth + "]" * depth + "}"

        status, body, _ = await post(
            stack, f"/v1/sites/{site.site_id}/{route}", data=nested.encode(),
            headers={"Content-Type": "application/json"},
        )

        assert_error(status, body, 400, "JSON_TOO_DEEP")
        assert "at most 32" in body["error"]["message"]

    async def test_brackets_inside_strings_are_not_nesting(self, stack, site):
        status, body, _ = await post(
            stack, f"/v1/sites/{site.site_id}/subscriptions",
            json=subscribe_body(profile_id="[{" * 60),
        )

        assert status == 201, body

    @pytest.mark.parametrize(
        "path",
        [
            ("subscription", "endpoint"),
            ("subscription", "keys", "p256dh"),
            ("subscription", "keys", "auth"),
            ("browser",),
            ("timezone",),
            ("profile_id",),
        ],
        ids=".".join,
    )
    @pytest.mark.parametrize("hostile", ["\ud800", "x\x00", "\x1b[31m"], ids=["surrogate", "nul", "esc"])
    async def test_surrogates_and_controls_in_a_subscription_are_400_storing_nothing(
        self, stack, site, path, hostile
    ):
        request = subscribe_body()
        container = request
        for key in path[:-1]:
            container = container[key]  # type: ignore[assignment]
        container[path[-1]] = hostile  # json= sends "\ud800" as the JSON escape

        status, body, _ = await post(stack, f"/v1/sites/{site.site_id}/subscriptions", json=request)

        assert_error(status, body, 400, "INVALID_CHARACTERS")
        assert body["error"]["message"].startswith(".".join(path) + " ")
        assert await stored_subscribers(stack, site) == 0

    @pytest.mark.parametrize(
        "field", ["kind", "run_id", "campaign_id", "subscriber_id", "button", "engagement_token"]
    )
    @pytest.mark.parametrize("hostile", ["\ud800", "\x00"], ids=["surrogate", "nul"])
    async def test_surrogates_and_nul_in_an_event_are_400_recording_nothing(
        self, stack, site, field, hostile
    ):
        campaign_id, run_id = await sent_run(stack, site)
        forged = event(site, "clicked", run_id, campaign_id, "sub_0", button="buy")
        forged[field] = forged[field] + hostile
        # A token that verifies for the changed ids: only validation may stop the event.
        if field != "engagement_token":
            forged["engagement_token"] = engagement_token(
                site.engagement_secret, site.site_id, forged["run_id"], forged["subscriber_id"]
            )

        status, body, _ = await post(stack, f"/v1/sites/{site.site_id}/events", json=forged)

        assert_error(status, body, 400, "INVALID_CHARACTERS")
        assert body["error"]["message"].startswith(f"{field} must not contain NUL")
        report = await campaign_report(stack, site, campaign_id)
        assert (report.viewed, report.clicked) == (0, 0)

    @pytest.mark.parametrize("suffix", ["%00x", "%00", "%0A", "%ED%A0%80", "%2Fx", "~"])
    async def test_unsubscribing_a_hostile_subscriber_id_is_400_and_changes_nothing(
        self, stack, site, suffix
    ):
        created = await TestUnsubscribe().subscribe(stack, site)
        raw = created["subscriber_id"] + suffix
        decoded = urllib.parse.unquote(raw, errors="surrogatepass")
        token = unsubscribe_token(site.engagement_secret, site.site_id, decoded)

        async with stack.http.delete(
            URL(stack.url(f"/v1/sites/{site.site_id}/subscriptions/{raw}"), encoded=True),
            headers={"X-Clarion-Unsubscribe-Token": token},
        ) as response:
            assert_error(response.status, await response.json(), 400)

        assert await subscriber_state(stack, site, created["subscriber_id"]) == (
            subscriber_pb2.SUBSCRIBER_STATE_ACTIVE
        )

    async def test_sub_nul_x_is_400_naming_the_subscriber_id(self, stack, site):
        token = unsubscribe_token(site.engagement_secret, site.site_id, "sub\x00x")

        status, body = await delete(
            stack, f"/v1/sites/{site.site_id}/subscriptions/sub%00x", token
        )

        assert_error(status, body, 400, "INVALID_CHARACTERS")
        assert body["error"]["message"].startswith("subscriber_id ")

    @pytest.mark.parametrize(
        ("data", "code"),
        [
            pytest.param(b"", "INVALID_JSON", id="empty"),
            pytest.param(b'{"profile_id": "\xff"}', "INVALID_ENCODING", id="latin-1"),
            pytest.param(b'{"a": "\xed\xa0\x80"}', "INVALID_ENCODING", id="utf-8-surrogate"),
            pytest.param('{"a": 1}'.encode("utf-16"), "INVALID_ENCODING", id="utf-16"),
            pytest.param(b'{"subscription": NaN}', "INVALID_JSON", id="nan"),
            pytest.param(b'{"subscription": -Infinity}', "INVALID_JSON", id="infinity"),
            pytest.param(b'{"subscription": ' + b"9" * 5000 + b"}", "INVALID_JSON", id="huge-int"),
            pytest.param(b"[" * 16_000, "JSON_TOO_DEEP", id="16k-brackets"),
        ],
    )
    async def test_bodies_that_are_not_json_text_are_400(self, stack, site, data, code):
        status, body, _ = await post(
            stack, f"/v1/sites/{site.site_id}/subscriptions", data=data,
            headers={"Content-Type": "application/json"},
        )

        assert_error(status, body, code=code, expected_status=400)

    @pytest.mark.parametrize(
        ("value", "code"),
        [
            (1e308, "INVALID_FIELD_TYPE"),
            (2**80, "INVALID_FIELD_TYPE"),
            (True, "INVALID_FIELD_TYPE"),
            (["https://push.example.test/x"], "INVALID_FIELD_TYPE"),
            ({"url": "https://push.example.test/x"}, "INVALID_FIELD_TYPE"),
            (None, "MISSING_FIELD"),
            ("", "MISSING_FIELD"),
            ("https://push.example.test/" + "a" * 5000, "FIELD_TOO_LONG"),
        ],
        ids=["float", "huge-int", "bool", "array", "object", "null", "empty", "too-long"],
    )
    async def test_a_wrong_endpoint_is_400_naming_it(self, stack, site, value, code):
        request = subscribe_body()
        request["subscription"]["endpoint"] = value  # type: ignore[index]

        status, body, _ = await post(stack, f"/v1/sites/{site.site_id}/subscriptions", json=request)

        assert_error(status, body, 400, code)
        assert body["error"]["message"].startswith("subscription.endpoint ")
        assert "a" * 101 not in body["error"]["message"]
        assert await stored_subscribers(stack, site) == 0

    async def test_an_over_long_choice_is_quoted_short(self, stack, site):
        status, body, _ = await post(
            stack, f"/v1/sites/{site.site_id}/subscriptions",
            json=subscribe_body(browser="n" * 100),
        )

        assert_error(status, body, 400, "INVALID_BROWSER")
        assert "n" * 41 not in body["error"]["message"]

    @pytest.mark.parametrize(
        "content_type",
        ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/html",
         "application/json; charset=utf-16"],
    )
    async def test_a_body_that_is_not_sent_as_json_is_415(self, stack, site, content_type):
        status, body, _ = await post(
            stack, f"/v1/sites/{site.site_id}/subscriptions",
            data=json.dumps(subscribe_body()).encode(), headers={"Content-Type": content_type},
        )

        assert_error(status, body, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert await stored_subscribers(stack, site) == 0

    async def test_json_sent_as_text_plain_like_send_beacon_is_accepted(self, stack, site):
        status, body, _ = await post(
            stack, f"/v1/sites/{site.site_id}/subscriptions",
            data=json.dumps(subscribe_body()).encode(),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )

        assert status == 201, body

"""The gateway over HTTP, against real campaign, segment and reporting servers."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import reporting_pb2, reporting_service_pb2
from clarion.segment.v1 import segment_service_pb2, subscriber_pb2
from services.gateway.server import create_gateway
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
        assert again == {"subscriber_id": first["subscriber_id"], "created": False}

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


class TestUnsubscribe:
    async def test_a_subscriber_is_unsubscribed(self, stack, site):
        _, created, _ = await post(
            stack, f"/v1/sites/{site.site_id}/subscriptions", json=subscribe_body()
        )
        subscriber_id = created["subscriber_id"]

        path = f"/v1/sites/{site.site_id}/subscriptions/{subscriber_id}"
        async with stack.http.delete(stack.url(path)) as response:
            body = await response.json()

        assert (response.status, body) == (
            200, {"subscriber_id": subscriber_id, "state": "unsubscribed"}
        )
        stored = await stack.segment.GetSubscriber(
            segment_service_pb2.GetSubscriberRequest(subscriber_id=subscriber_id),
            metadata=bearer(site.api_key),
        )
        assert stored.subscriber.state == subscriber_pb2.SUBSCRIBER_STATE_UNSUBSCRIBED
        assert stored.subscriber.unsubscribe_reason == "user_unsubscribed"

    async def test_an_unknown_subscriber_is_404(self, stack, site):
        path = f"/v1/sites/{site.site_id}/subscriptions/sub_missing"
        async with stack.http.delete(stack.url(path)) as response:
            assert_error(response.status, await response.json(), 404)


class TestEvents:
    async def test_events_are_recorded_once_and_show_in_the_report(self, stack, site):
        campaign_id, run_id = f"cmp_{uuid.uuid4().hex}", f"run_{uuid.uuid4().hex}"
        await stack.reporting.RecordDeliveryOutcomes(
            reporting_service_pb2.RecordDeliveryOutcomesRequest(
                outcomes=[
                    reporting_pb2.DeliveryOutcome(
                        run_id=run_id, campaign_id=campaign_id, subscriber_id=f"sub_{n}",
                        status=common_pb2.DELIVERY_STATUS_SENT,
                    )
                    for n in range(4)
                ]
            ),
            metadata=stack.internal(site.site_id),
        )
        path = f"/v1/sites/{site.site_id}/events"
        ids = {"run_id": run_id, "campaign_id": campaign_id}

        results = [
            await post(stack, path, json={"kind": "viewed", "subscriber_id": "sub_0", **ids}),
            await post(stack, path, json={"kind": "viewed", "subscriber_id": "sub_1", **ids}),
            await post(stack, path, json={"kind": "clicked", "subscriber_id": "sub_0", **ids}),
            await post(
                stack, path,
                json={"kind": "clicked", "subscriber_id": "sub_0", "button": "buy", **ids},
            ),
            await post(stack, path, json={"kind": "viewed", "subscriber_id": "sub_0", **ids}),
        ]

        assert [(status, body) for status, body, _ in results] == [
            (202, {"recorded": True}),
            (202, {"recorded": True}),
            (202, {"recorded": True}),
            (202, {"recorded": True}),
            (202, {"recorded": False}),  # a repeat
        ]
        report = (
            await stack.reporting.GetCampaignReport(
                reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
                metadata=bearer(site.api_key),
            )
        ).report
        assert (report.sent, report.viewed, report.clicked) == (4, 2, 1)
        assert report.click_through_rate == pytest.approx(0.25)

    @pytest.mark.parametrize(
        ("event", "code"),
        [
            ({"kind": "hovered", "run_id": "r", "campaign_id": "c", "subscriber_id": "s"},
             "INVALID_KIND"),
            ({"kind": "viewed", "campaign_id": "c", "subscriber_id": "s"}, "MISSING_FIELD"),
            ({"kind": "viewed", "run_id": 7, "campaign_id": "c", "subscriber_id": "s"},
             "INVALID_FIELD_TYPE"),
        ],
    )
    async def test_a_bad_event_is_400(self, stack, site, event, code):
        status, body, _ = await post(stack, f"/v1/sites/{site.site_id}/events", json=event)

        assert_error(status, body, 400, code)

    async def test_reportings_own_validation_comes_back_as_400(self, stack, site):
        status, body, _ = await post(
            stack, f"/v1/sites/{site.site_id}/events",
            json={"kind": "viewed", "run_id": "r" * 200, "campaign_id": "c", "subscriber_id": "s"},
        )

        assert_error(status, body, 400, "FIELD_TOO_LONG")

    async def test_an_unknown_site_is_404(self, stack):
        status, body, _ = await post(
            stack, "/v1/sites/site_made_up/events",
            json={"kind": "viewed", "run_id": "r", "campaign_id": "c", "subscriber_id": "s"},
        )

        assert_error(status, body, 404, "SITE_NOT_FOUND")


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

"""identify with profile properties: set on the profile through segment, then visible in
GetProfile; refused properties leave the subscriber unattached."""

from __future__ import annotations

import uuid

import grpc
import pytest

from clarion.segment.v1 import segment_service_pb2
from tests.gateway.conftest import GatewaySite, Stack
from tests.gateway.test_audience import proof, subscribed
from tests.gateway.test_gateway import assert_error, post
from tests.support.sites import bearer


async def identify(
    stack: Stack, site: GatewaySite, subscriber_id: str, token: str, profile_id: str, **extra
) -> tuple[int, dict]:
    status, body, _ = await post(
        stack,
        f"/v1/sites/{site.site_id}/identify",
        json={"subscriber_id": subscriber_id, "profile_id": profile_id, **extra},
        headers=proof(token),
    )
    return status, body


async def profile_of(stack: Stack, site: GatewaySite, profile_id: str):  # type: ignore[no-untyped-def]
    response = await stack.segment.GetProfile(
        segment_service_pb2.GetProfileRequest(profile_id=profile_id),
        metadata=bearer(site.api_key),
    )
    return response.profile


def values(profile) -> dict[str, object]:  # type: ignore[no-untyped-def]
    shown: dict[str, object] = {}
    for prop in profile.properties:
        kind = prop.value.WhichOneof("kind")
        value = getattr(prop.value, kind)
        shown[prop.name] = list(value.values) if kind == "string_list_value" else value
    return shown


class TestIdentifyWithProperties:
    async def test_the_properties_are_set_on_the_profile_and_the_subscriber_attached(
        self, stack, site
    ):
        subscriber_id, token = await subscribed(stack, site)
        profile_id = f"user-{uuid.uuid4().hex}"
        properties = {"plan": "gold", "age": 41, "vip": True, "tags": ["a", "b"]}

        status, body = await identify(
            stack, site, subscriber_id, token, profile_id, properties=properties
        )

        assert (status, body) == (200, {"subscriber_id": subscriber_id, "profile_id": profile_id})
        profile = await profile_of(stack, site, profile_id)
        assert values(profile) == {"age": 41.0, "plan": "gold", "tags": ["a", "b"], "vip": True}
        assert list(profile.subscriber_ids) == [subscriber_id]

    async def test_set_replaces_a_value_and_keeps_the_others(self, stack, site):
        subscriber_id, token = await subscribed(stack, site)
        profile_id = f"user-{uuid.uuid4().hex}"
        await identify(
            stack, site, subscriber_id, token, profile_id, properties={"plan": "free", "age": 3}
        )

        status, _ = await identify(
            stack, site, subscriber_id, token, profile_id, properties={"plan": "gold"}
        )

        assert status == 200
        assert values(await profile_of(stack, site, profile_id)) == {"age": 3.0, "plan": "gold"}

    async def test_a_type_conflict_is_400_naming_the_property_and_attaches_nothing(
        self, stack, site
    ):
        # "plan" is a string in this site (fixed by its first use, on another profile).
        first_id, first_token = await subscribed(stack, site)
        await identify(
            stack, site, first_id, first_token, f"user-{uuid.uuid4().hex}", properties={"plan": "x"}
        )
        subscriber_id, token = await subscribed(stack, site)
        profile_id = f"user-{uuid.uuid4().hex}"

        status, body = await identify(
            stack, site, subscriber_id, token, profile_id, properties={"age": 5, "plan": 7}
        )

        assert_error(status, body, 400, "PROPERTY_TYPE_MISMATCH")
        assert "properties.plan" in body["error"]["message"]
        assert "operations" not in body["error"]["message"]
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await profile_of(stack, site, profile_id)  # not created, "age" not set
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        stored = await stack.segment.GetSubscriber(
            segment_service_pb2.GetSubscriberRequest(subscriber_id=subscriber_id),
            metadata=bearer(site.api_key),
        )
        assert stored.subscriber.profile_id == ""

    @pytest.mark.parametrize(
        ("properties", "code"),
        [
            ({"p": None}, "INVALID_FIELD_TYPE"),
            ({"p": {"nested": 1}}, "INVALID_FIELD_TYPE"),
            ({"p": [1, 2]}, "INVALID_FIELD_TYPE"),
            ({"p": "x" * 1025}, "FIELD_TOO_LONG"),
            ({"n" * 65: 1}, "FIELD_TOO_LONG"),
            ({f"p{i}": i for i in range(101)}, "TOO_MANY_PROPERTIES"),
            ("gold", "INVALID_FIELD_TYPE"),
        ],
    )
    async def test_what_track_refuses_as_a_property_is_400_before_anything_changes(
        self, stack, site, properties, code
    ):
        subscriber_id, token = await subscribed(stack, site)
        profile_id = f"user-{uuid.uuid4().hex}"

        status, body = await identify(
            stack, site, subscriber_id, token, profile_id, properties=properties
        )

        assert_error(status, body, 400, code)
        assert "properties" in body["error"]["message"]
        with pytest.raises(grpc.aio.AioRpcError):
            await profile_of(stack, site, profile_id)

    async def test_without_the_token_nothing_is_set(self, stack, site):
        subscriber_id, _ = await subscribed(stack, site)
        profile_id = f"user-{uuid.uuid4().hex}"

        status, body = await identify(
            stack, site, subscriber_id, "A" * 43, profile_id, properties={"plan": "gold"}
        )

        assert_error(status, body, 403, "INVALID_UNSUBSCRIBE_TOKEN")
        with pytest.raises(grpc.aio.AioRpcError):
            await profile_of(stack, site, profile_id)

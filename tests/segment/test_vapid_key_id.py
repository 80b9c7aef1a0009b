"""A subscriber remembers the site's VAPID key it subscribed under (vapid_key_id): stored
at registration (single and batch), answered in Subscriber, carried to delivery in every
AudienceMember; only its form is checked (campaign knows which keys a site has)."""

from __future__ import annotations

import uuid

import grpc
import pytest

from clarion.segment.v1 import segment_internal_service_pb2 as internal_pb
from clarion.segment.v1 import segment_internal_service_pb2_grpc as internal_pb_grpc
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from tests.segment.helpers import (
    Site,
    audience,
    error_field,
    expect_error,
    internal,
    push_subscription,
    register,
    register_request,
)
from tests.segment.test_audience import timestamp
from tests.segment.test_profiles import set_, update, upsert
from tests.segment.test_reach import adhoc, city_in

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def key_id() -> str:
    return f"vk_{uuid.uuid4().hex}"


async def get(stub: pb_grpc.SegmentServiceStub, site: Site, subscriber_id: str) -> object:
    response = await stub.GetSubscriber(
        pb.GetSubscriberRequest(subscriber_id=subscriber_id), metadata=site.metadata
    )
    return response.subscriber


class TestRegisterWithVapidKeyId:
    async def test_it_is_stored_and_answered(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        imported = key_id()

        subscriber = await register(stub, site, vapid_key_id=imported)

        assert subscriber.vapid_key_id == imported
        assert (await get(stub, site, subscriber.subscriber_id)).vapid_key_id == imported  # type: ignore[attr-defined]

    async def test_none_given_is_the_sites_current_key(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        subscriber = await register(stub, site)

        assert subscriber.vapid_key_id == ""

    async def test_registering_the_endpoint_again_under_another_key_updates_it(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        subscription = push_subscription()
        first = await register(stub, site, push_subscription=subscription, vapid_key_id=key_id())
        other = key_id()

        again = await register(stub, site, push_subscription=subscription, vapid_key_id=other)
        current = await register(stub, site, push_subscription=subscription)

        assert again.subscriber_id == first.subscriber_id
        assert again.vapid_key_id == other
        # Subscribed again with the site's current key: signed with that from now on.
        assert current.vapid_key_id == ""
        assert (await get(stub, site, first.subscriber_id)).vapid_key_id == ""  # type: ignore[attr-defined]

    async def test_a_batch_stores_each_entrys_key(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        keys = [key_id(), "", key_id()]

        response = await stub.BatchRegisterSubscribers(
            pb.BatchRegisterSubscribersRequest(
                requests=[register_request(vapid_key_id=k) for k in keys]
            ),
            metadata=site.metadata,
        )

        assert [r.subscriber.vapid_key_id for r in response.responses] == keys


class TestABadVapidKeyIdIsRefused:
    @pytest.mark.parametrize(
        "bad",
        [
            "vk_123",
            "VK_" + "a" * 32,
            "vk_" + "A" * 32,
            "vk_" + "g" * 32,
            "vk_" + "a" * 33,
            "sub_" + "a" * 32,
            "site-key",
        ],
    )
    async def test_register_names_the_field(
        self, stub: pb_grpc.SegmentServiceStub, site: Site, bad: str
    ) -> None:
        error = await expect_error(
            stub.RegisterSubscriber(register_request(vapid_key_id=bad), metadata=site.metadata),
            INVALID,
            "INVALID_VAPID_KEY_ID",
        )

        assert error_field(error) == "vapid_key_id"
        assert "vk_" in (error.details() or "")

    async def test_a_batch_names_the_entry_and_stores_nothing(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        good = register_request(vapid_key_id=key_id())
        error = await expect_error(
            stub.BatchRegisterSubscribers(
                pb.BatchRegisterSubscribersRequest(
                    requests=[good, register_request(vapid_key_id="vk_nope")]
                ),
                metadata=site.metadata,
            ),
            INVALID,
            "INVALID_VAPID_KEY_ID",
        )

        assert error_field(error) == "requests[1].vapid_key_id"
        listed = await stub.ListSubscribers(pb.ListSubscribersRequest(), metadata=site.metadata)
        assert list(listed.subscribers) == []

    async def test_characters_no_id_has_are_refused_at_the_edge(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        error = await expect_error(
            stub.RegisterSubscriber(
                register_request(vapid_key_id="vk_\n" + "a" * 32), metadata=site.metadata
            ),
            INVALID,
            "INVALID_VAPID_KEY_ID",
        )

        assert error_field(error) == "vapid_key_id"


class TestAudienceMembersCarryTheKey:
    async def test_every_member_has_its_subscribers_key(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        imported = key_id()
        moved = await register(stub, site, vapid_key_id=imported)
        own = await register(stub, site)

        members = await audience(internal_stub, settings, site, clock.now())

        by_id = {m.subscriber_id: m.vapid_key_id for m in members}
        assert by_id == {moved.subscriber_id: imported, own.subscriber_id: ""}

    async def test_a_segment_audience_carries_it_too(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        imported = key_id()
        await upsert(stub, site, update("ann", set_("city", "Paris")))
        moved = await register(stub, site, profile_id="ann", vapid_key_id=imported)
        await register(stub, site, profile_id="bob")

        response = await internal_stub.ListAudienceMembers(
            internal_pb.ListAudienceMembersRequest(
                snapshot_time=timestamp(clock.now()),
                audience=adhoc(city_in("Paris")),
                audience_key=f"run_{uuid.uuid4().hex}",
            ),
            metadata=internal(settings, site),
        )

        assert [(m.subscriber_id, m.vapid_key_id) for m in response.members] == [
            (moved.subscriber_id, imported)
        ]

"""The internal calls delivery makes: ListAudienceMembers, CheckSubscribers and
BatchUnsubscribeSubscribers."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.common.v1 import common_pb2
from clarion.segment.v1 import segment_internal_service_pb2 as internal_pb
from clarion.segment.v1 import segment_internal_service_pb2_grpc as internal_pb_grpc
from clarion.segment.v1 import segment_pb2, subscriber_pb2
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.auth import SITE_HEADER
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.segment.server import INTERNAL_SERVICE_FULL_NAME, create_server
from tests.segment.helpers import (
    Site,
    audience,
    audience_ids,
    browser_public_key,
    error_field,
    expect_error,
    internal,
    push_subscription,
    register,
    register_request,
)
from tests.support.services import assert_internal_only
from tests.support.sites import StaticSiteResolver

INVALID = grpc.StatusCode.INVALID_ARGUMENT
UNSUBSCRIBED = subscriber_pb2.SUBSCRIBER_STATE_UNSUBSCRIBED
ACTIVE = subscriber_pb2.SUBSCRIBER_STATE_ACTIVE
GONE_410 = common_pb2.DELIVERY_REASON_PUSH_SERVICE_410


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def unsubscribe(stub: pb_grpc.SegmentServiceStub, site: Site, subscriber_id: str) -> None:
    await stub.UnsubscribeSubscriber(
        pb.UnsubscribeSubscriberRequest(subscriber_id=subscriber_id), metadata=site.metadata
    )


async def get(
    stub: pb_grpc.SegmentServiceStub, site: Site, subscriber_id: str
) -> subscriber_pb2.Subscriber:
    response = await stub.GetSubscriber(
        pb.GetSubscriberRequest(subscriber_id=subscriber_id), metadata=site.metadata
    )
    return response.subscriber


async def batch_unsubscribe(
    stub: internal_pb_grpc.SegmentInternalServiceStub,
    settings: Settings,
    site: Site,
    *entries: tuple[str, int],
) -> int:
    response = await stub.BatchUnsubscribeSubscribers(
        internal_pb.BatchUnsubscribeSubscribersRequest(
            unsubscriptions=[
                subscriber_pb2.Unsubscription(subscriber_id=subscriber_id, reason=reason)
                for subscriber_id, reason in entries
            ]
        ),
        metadata=internal(settings, site),
    )
    return response.unsubscribed


async def check(
    stub: internal_pb_grpc.SegmentInternalServiceStub,
    settings: Settings,
    site: Site,
    *subscriber_ids: str,
) -> list[str]:
    response = await stub.CheckSubscribers(
        internal_pb.CheckSubscribersRequest(subscriber_ids=subscriber_ids),
        metadata=internal(settings, site),
    )
    return list(response.inactive_subscriber_ids)


async def register_many(stub: pb_grpc.SegmentServiceStub, site: Site, count: int) -> list[str]:
    key = browser_public_key()
    response = await stub.BatchRegisterSubscribers(
        pb.BatchRegisterSubscribersRequest(
            requests=[
                register_request(push_subscription=push_subscription(p256dh=key))
                for _ in range(count)
            ]
        ),
        metadata=site.metadata,
    )
    return [r.subscriber.subscriber_id for r in response.responses]


class TestListAudienceMembers:
    async def test_the_audience_as_it_stood_at_the_snapshot(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        stays = await register(stub, site, profile_id="user-1", timezone="Asia/Tokyo")
        leaves_later = await register(stub, site, browser=common_pb2.BROWSER_FIREFOX)
        left_before = await register(stub, site)
        clock.advance(minutes=1)
        await unsubscribe(stub, site, left_before.subscriber_id)
        clock.advance(minutes=1)
        snapshot = clock.now()
        clock.advance(minutes=1)
        await register(stub, site)  # joined after the snapshot
        await batch_unsubscribe(
            internal_stub, settings, site, (leaves_later.subscriber_id, GONE_410)
        )

        members = await audience(internal_stub, settings, site, snapshot)

        assert [m.subscriber_id for m in members] == sorted(
            [stays.subscriber_id, leaves_later.subscriber_id]
        )
        by_id = {m.subscriber_id: m for m in members}
        assert by_id[stays.subscriber_id] == subscriber_pb2.AudienceMember(
            subscriber_id=stays.subscriber_id,
            profile_id="user-1",
            timezone="Asia/Tokyo",
            browser=common_pb2.BROWSER_CHROME,
            target=common_pb2.PushTarget(web_push=stays.push_subscription),
            unsubscribed=False,
        )
        assert by_id[leaves_later.subscriber_id].unsubscribed
        assert by_id[leaves_later.subscriber_id].browser == common_pb2.BROWSER_FIREFOX
        # A snapshot taken now no longer holds the one that left.
        assert leaves_later.subscriber_id not in await audience_ids(
            internal_stub, settings, site, clock.now()
        )

    async def test_the_snapshot_moment_itself_counts(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        clock.advance(minutes=1)
        created_at_snapshot = await register(stub, site)
        unsubscribed_at_snapshot = await register(stub, site)
        await unsubscribe(stub, site, unsubscribed_at_snapshot.subscriber_id)

        members = await audience(internal_stub, settings, site, clock.now())

        assert [m.subscriber_id for m in members] == [created_at_snapshot.subscriber_id]
        just_before = clock.now() - timedelta(microseconds=1)
        assert await audience(internal_stub, settings, site, just_before) == []

    async def test_walks_every_page_in_id_order(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        registered = await register_many(stub, site, 7)
        snapshot = timestamp(clock.now())
        pages: list[list[str]] = []
        token = ""
        while True:
            response = await internal_stub.ListAudienceMembers(
                internal_pb.ListAudienceMembersRequest(
                    snapshot_time=snapshot, page_size=3, page_token=token
                ),
                metadata=internal(settings, site),
            )
            pages.append([m.subscriber_id for m in response.members])
            token = response.next_page_token
            if not token:
                break

        assert [len(page) for page in pages] == [3, 3, 1]
        assert [i for page in pages for i in page] == sorted(registered)

    async def test_page_size_zero_means_a_thousand(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        await register_many(stub, site, 1000)
        await register(stub, site)

        first = await internal_stub.ListAudienceMembers(
            internal_pb.ListAudienceMembersRequest(snapshot_time=timestamp(clock.now())),
            metadata=internal(settings, site),
        )
        second = await internal_stub.ListAudienceMembers(
            internal_pb.ListAudienceMembersRequest(
                snapshot_time=timestamp(clock.now()), page_token=first.next_page_token
            ),
            metadata=internal(settings, site),
        )

        assert len(first.members) == 1000 and first.next_page_token
        assert len(second.members) == 1 and second.next_page_token == ""

    async def test_page_size_above_the_maximum_is_coerced(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        await register_many(stub, site, 3)

        response = await internal_stub.ListAudienceMembers(
            internal_pb.ListAudienceMembersRequest(
                snapshot_time=timestamp(clock.now()), page_size=1_000_000
            ),
            metadata=internal(settings, site),
        )

        assert len(response.members) == 3 and response.next_page_token == ""

    async def test_a_page_token_survives_a_restart(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
        resolver: StaticSiteResolver,
    ) -> None:
        registered = await register_many(stub, site, 4)
        snapshot = timestamp(clock.now())
        first = await internal_stub.ListAudienceMembers(
            internal_pb.ListAudienceMembersRequest(snapshot_time=snapshot, page_size=2),
            metadata=internal(settings, site),
        )
        restarted = await create_server(
            "127.0.0.1:0", settings, clock=clock, site_resolver=resolver
        )
        await restarted.start()
        try:
            async with grpc.aio.insecure_channel(restarted.address) as channel:
                restarted_stub = internal_pb_grpc.SegmentInternalServiceStub(channel)
                rest = await restarted_stub.ListAudienceMembers(
                    internal_pb.ListAudienceMembersRequest(
                        snapshot_time=snapshot, page_size=2, page_token=first.next_page_token
                    ),
                    metadata=internal(settings, site),
                )
        finally:
            await restarted.stop()

        listed = [m.subscriber_id for m in [*first.members, *rest.members]]
        assert listed == sorted(registered) and rest.next_page_token == ""

    async def test_only_the_given_subscribers_for_a_test_send(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        other_site: Site,
        clock: FrozenClock,
    ) -> None:
        registered = await register_many(stub, site, 5)
        theirs = await register(stub, other_site)
        clock.advance(seconds=1)
        gone = registered[4]
        await unsubscribe(stub, site, gone)
        wanted = [registered[3], registered[0], gone, theirs.subscriber_id, "sub_unknown"]

        members = await audience(
            internal_stub, settings, site, clock.now(), page_size=1, subscriber_ids=wanted
        )

        assert [m.subscriber_id for m in members] == sorted([registered[0], registered[3]])

    async def test_another_sites_subscribers_are_not_in_the_audience(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        other_site: Site,
        clock: FrozenClock,
    ) -> None:
        await register_many(stub, other_site, 3)

        assert await audience(internal_stub, settings, site, clock.now()) == []

    @pytest.mark.parametrize(
        ("request_fields", "reason", "field"),
        [
            ({}, "MISSING_SNAPSHOT_TIME", "snapshot_time"),
            ({"page_size": -1, "snapshot": True}, "INVALID_PAGE_SIZE", "page_size"),
            ({"page_token": "not a token!", "snapshot": True}, "INVALID_PAGE_TOKEN", "page_token"),
            (
                {
                    "page_token": base64.urlsafe_b64encode(b'{"after": 7}').decode(),
                    "snapshot": True,
                },
                "INVALID_PAGE_TOKEN",
                "page_token",
            ),
            (
                {"subscriber_ids": ["sub_x"] * 5001, "snapshot": True},
                "BATCH_TOO_LARGE",
                "subscriber_ids",
            ),
        ],
    )
    async def test_bad_requests_are_invalid(
        self,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
        request_fields: dict[str, object],
        reason: str,
        field: str,
    ) -> None:
        fields = dict(request_fields)
        if fields.pop("snapshot", False):
            fields["snapshot_time"] = timestamp(clock.now())

        error = await expect_error(
            internal_stub.ListAudienceMembers(
                internal_pb.ListAudienceMembersRequest(**fields),  # type: ignore[arg-type]
                metadata=internal(settings, site),
            ),
            INVALID,
            reason,
        )

        assert error_field(error) == field


class TestListedAudience:
    """profile_ids (with or without subscriber_ids): a transactional send's recipients."""

    async def test_every_subscriber_of_the_listed_profiles(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        other_site: Site,
        clock: FrozenClock,
    ) -> None:
        phone = await register(stub, site, profile_id="user-1")
        laptop = await register(stub, site, profile_id="user-1")
        other = await register(stub, site, profile_id="user 2 (ünïcode)")
        await register(stub, site, profile_id="user-3")  # not listed
        await register(stub, site)  # anonymous
        await register(stub, other_site, profile_id="user-1")  # same id, another site

        members = await audience(
            internal_stub,
            settings,
            site,
            clock.now(),
            profile_ids=["user-1", "user 2 (ünïcode)", "user-unknown"],
        )

        assert [m.subscriber_id for m in members] == sorted(
            [phone.subscriber_id, laptop.subscriber_id, other.subscriber_id]
        )
        assert {m.profile_id for m in members} == {"user-1", "user 2 (ünïcode)"}
        assert all(m.target.web_push.endpoint for m in members)

    async def test_a_subscriber_listed_and_reached_through_its_profile_is_there_once(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        phone = await register(stub, site, profile_id="user-1")
        laptop = await register(stub, site, profile_id="user-1")
        anonymous = await register(stub, site)

        members = await audience(
            internal_stub,
            settings,
            site,
            clock.now(),
            page_size=1,
            subscriber_ids=[phone.subscriber_id, anonymous.subscriber_id, phone.subscriber_id],
            profile_ids=["user-1", "user-1"],
        )

        assert [m.subscriber_id for m in members] == sorted(
            [phone.subscriber_id, laptop.subscriber_id, anonymous.subscriber_id]
        )

    async def test_unknown_profiles_reach_nobody(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        await register_many(stub, site, 3)

        members = await audience(
            internal_stub, settings, site, clock.now(), profile_ids=["nobody", "nobody-else"]
        )

        assert members == []

    async def test_the_snapshot_rules_of_a_test_send(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        stays = await register(stub, site, profile_id="user-1")
        left_before = await register(stub, site, profile_id="user-1")
        leaves_later = await register(stub, site, profile_id="user-1")
        clock.advance(minutes=1)
        await unsubscribe(stub, site, left_before.subscriber_id)
        clock.advance(minutes=1)
        snapshot = clock.now()
        clock.advance(minutes=1)
        await register(stub, site, profile_id="user-1")  # joined after the snapshot
        await unsubscribe(stub, site, leaves_later.subscriber_id)

        listed = [stays, left_before, leaves_later]
        by_profile = await audience(
            internal_stub, settings, site, snapshot, profile_ids=["user-1"]
        )
        by_id = await audience(
            internal_stub,
            settings,
            site,
            snapshot,
            subscriber_ids=[subscriber.subscriber_id for subscriber in listed],
        )

        expected = sorted([stays.subscriber_id, leaves_later.subscriber_id])
        assert [m.subscriber_id for m in by_profile] == expected
        assert by_profile == by_id
        assert {m.subscriber_id: m.unsubscribed for m in by_profile} == {
            stays.subscriber_id: False,
            leaves_later.subscriber_id: True,
        }

    async def test_the_audience_selector_is_ignored(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        listed = await register(stub, site, profile_id="user-1")
        await register(stub, site)

        response = await internal_stub.ListAudienceMembers(
            internal_pb.ListAudienceMembersRequest(
                snapshot_time=timestamp(clock.now()),
                profile_ids=["user-1"],
                # No such segment, and no audience_key: neither is looked at.
                audience=segment_pb2.AudienceSelector(segment_id="seg_" + "0" * 32),
            ),
            metadata=internal(settings, site),
        )

        assert [m.subscriber_id for m in response.members] == [listed.subscriber_id]

    async def test_pages_of_many_profiles_list_each_subscriber_once(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        key = browser_public_key()
        response = await stub.BatchRegisterSubscribers(
            pb.BatchRegisterSubscribersRequest(
                requests=[
                    register_request(
                        push_subscription=push_subscription(p256dh=key),
                        profile_id=f"user-{i % 40}",
                    )
                    for i in range(120)
                ]
            ),
            metadata=site.metadata,
        )
        registered = [r.subscriber.subscriber_id for r in response.responses]
        profiles = [f"user-{i}" for i in range(0, 40, 2)] + [f"absent-{i}" for i in range(4980)]

        members = await audience(
            internal_stub, settings, site, clock.now(), page_size=7, profile_ids=profiles
        )

        expected = sorted(s for i, s in enumerate(registered) if i % 40 % 2 == 0)
        assert [m.subscriber_id for m in members] == expected

    @pytest.mark.parametrize(
        ("profile_ids", "reason", "field"),
        [
            (["user-1"] * 5001, "BATCH_TOO_LARGE", "profile_ids"),
            (["user-1", "x" * 129], "INVALID_PROFILE_ID", "profile_ids[1]"),
            (["user-1", "line\nbreak"], "INVALID_PROFILE_ID", "profile_ids[1]"),
            (["nul\x00"], "INVALID_PROFILE_ID", "profile_ids[0]"),
            (["user-1", "user-2", ""], "INVALID_PROFILE_ID", "profile_ids[2]"),
        ],
    )
    async def test_bad_profile_ids_are_invalid(
        self,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
        profile_ids: list[str],
        reason: str,
        field: str,
    ) -> None:
        error = await expect_error(
            internal_stub.ListAudienceMembers(
                internal_pb.ListAudienceMembersRequest(
                    snapshot_time=timestamp(clock.now()), profile_ids=profile_ids
                ),
                metadata=internal(settings, site),
            ),
            INVALID,
            reason,
        )

        assert error_field(error) == field


class TestInternalOnly:
    async def test_a_site_api_key_is_refused_on_every_internal_method(
        self, channel: grpc.aio.Channel, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        stored = await register(stub, site)

        tried = await assert_internal_only(channel, INTERNAL_SERVICE_FULL_NAME, site.metadata)

        assert sorted(tried) == [
            "BatchUnsubscribeSubscribers", "CheckEventNames", "CheckSubscribers",
            "ListAudienceMembers", "ListEventFeed", "TrackSystemEvents", "ValidateAudience",
        ]
        assert (await get(stub, site, stored.subscriber_id)).state == ACTIVE

    async def test_the_public_service_offers_none_of_them(self) -> None:
        public = pb.DESCRIPTOR.services_by_name["SegmentService"].methods_by_name
        internal = internal_pb.DESCRIPTOR.services_by_name["SegmentInternalService"]

        assert not set(public) & set(internal.methods_by_name)

    @pytest.mark.parametrize(
        ("method", "request_message"),
        [
            (
                "ListAudienceMembers",
                internal_pb.ListAudienceMembersRequest(snapshot_time=Timestamp()),
            ),
            ("CheckSubscribers", internal_pb.CheckSubscribersRequest(subscriber_ids=["sub_x"])),
            (
                "BatchUnsubscribeSubscribers",
                internal_pb.BatchUnsubscribeSubscribersRequest(
                    unsubscriptions=[
                        subscriber_pb2.Unsubscription(subscriber_id="sub_x", reason=GONE_410)
                    ]
                ),
            ),
        ],
    )
    async def test_the_internal_token_must_name_a_site(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        method: str,
        request_message: object,
    ) -> None:
        stored = await register(stub, site)

        await expect_error(
            getattr(internal_stub, method)(
                request_message,
                metadata=(("authorization", f"Bearer {settings.internal_token_value}"),),
            ),
            grpc.StatusCode.UNAUTHENTICATED,
            "MISSING_SITE",
        )
        assert (await get(stub, site, stored.subscriber_id)).state == ACTIVE

    async def test_register_and_unsubscribe_stay_open_to_api_keys(
        self, stub: pb_grpc.SegmentServiceStub, settings: Settings, site: Site
    ) -> None:
        stored = await register(stub, site)
        await unsubscribe(stub, site, stored.subscriber_id)

        assert (await get(stub, site, stored.subscriber_id)).state == UNSUBSCRIBED
        # And the internal token acts for the site it names.
        response = await stub.GetSubscriber(
            pb.GetSubscriberRequest(subscriber_id=stored.subscriber_id),
            metadata=(
                ("authorization", f"Bearer {settings.internal_token_value}"),
                (SITE_HEADER, site.site_id),
            ),
        )
        assert response.subscriber.subscriber_id == stored.subscriber_id


class TestCheckSubscribers:
    async def test_names_the_unsubscribed_and_unknown_ones_in_the_given_order(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        other_site: Site,
    ) -> None:
        active, gone = await register_many(stub, site, 2)
        await unsubscribe(stub, site, gone)
        theirs = (await register(stub, other_site)).subscriber_id

        inactive = await check(
            internal_stub, settings, site, theirs, active, gone, "sub_unknown", gone
        )

        assert inactive == [theirs, gone, "sub_unknown"]

    async def test_all_active_gives_an_empty_answer(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
    ) -> None:
        registered = await register_many(stub, site, 3)

        assert await check(internal_stub, settings, site, *registered) == []
        assert await check(internal_stub, settings, site) == []

    async def test_more_than_five_thousand_ids_are_refused(
        self,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
    ) -> None:
        error = await expect_error(
            check(internal_stub, settings, site, *(f"sub_{n}" for n in range(5001))),
            INVALID,
            "BATCH_TOO_LARGE",
        )
        assert error_field(error) == "subscriber_ids"


class TestBatchUnsubscribeSubscribers:
    async def test_unsubscribes_with_the_reasons_word_and_counts_only_new_ones(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        first, second, already = await register_many(stub, site, 3)
        await stub.UnsubscribeSubscriber(
            pb.UnsubscribeSubscriberRequest(subscriber_id=already, reason="user_unsubscribed"),
            metadata=site.metadata,
        )
        clock.advance(minutes=1)

        unsubscribed = await batch_unsubscribe(
            internal_stub, settings, site,
            (first, GONE_410),
            (second, common_pb2.DELIVERY_REASON_APNS_UNREGISTERED),
            (first, common_pb2.DELIVERY_REASON_PUSH_SERVICE_404),
            (already, GONE_410),
            ("sub_0000000000000000000000000000dead", GONE_410),
        )

        assert unsubscribed == 2
        states = {i: await get(stub, site, i) for i in (first, second, already)}
        assert {i: (s.state, s.unsubscribe_reason) for i, s in states.items()} == {
            first: (UNSUBSCRIBED, "push_service_410"),
            second: (UNSUBSCRIBED, "apns_unregistered"),
            already: (UNSUBSCRIBED, "user_unsubscribed"),
        }
        assert states[first].update_time == timestamp(clock.now())
        assert await check(internal_stub, settings, site, first, second) == [first, second]
        assert await batch_unsubscribe(internal_stub, settings, site, (first, GONE_410)) == 0

    async def test_leaves_another_sites_subscribers_alone(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        other_site: Site,
    ) -> None:
        theirs = await register(stub, other_site)

        unsubscribed = await batch_unsubscribe(
            internal_stub, settings, site, (theirs.subscriber_id, GONE_410)
        )
        assert unsubscribed == 0
        assert (await get(stub, other_site, theirs.subscriber_id)).state == ACTIVE

    @pytest.mark.parametrize(
        ("bad", "reason", "field"),
        [
            (("", GONE_410), "MISSING_SUBSCRIBER_ID", "unsubscriptions[1].subscriber_id"),
            (
                ("sub_x", common_pb2.DELIVERY_REASON_UNSPECIFIED),
                "MISSING_REASON",
                "unsubscriptions[1].reason",
            ),
            (("sub_x", 999), "INVALID_REASON", "unsubscriptions[1].reason"),
        ],
    )
    async def test_one_bad_entry_refuses_the_batch(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
        bad: tuple[str, int],
        reason: str,
        field: str,
    ) -> None:
        stored = await register(stub, site)

        error = await expect_error(
            batch_unsubscribe(internal_stub, settings, site, (stored.subscriber_id, GONE_410), bad),
            INVALID,
            reason,
        )

        assert error_field(error) == field
        assert (await get(stub, site, stored.subscriber_id)).state == ACTIVE

    async def test_more_than_a_thousand_are_refused(
        self,
        stub: pb_grpc.SegmentServiceStub,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
        settings: Settings,
        site: Site,
    ) -> None:
        stored = await register(stub, site)
        entries = [(stored.subscriber_id, GONE_410)] * 1001

        error = await expect_error(
            batch_unsubscribe(internal_stub, settings, site, *entries), INVALID, "BATCH_TOO_LARGE"
        )

        assert error_field(error) == "unsubscriptions"
        assert (await get(stub, site, stored.subscriber_id)).state == ACTIVE

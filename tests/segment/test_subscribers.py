"""Unsubscribe, Get and List, each scoped to the caller's site."""

from __future__ import annotations

import base64

import grpc
import pytest

from clarion.segment.v1 import segment_internal_service_pb2_grpc as internal_pb_grpc
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from clarion.segment.v1 import subscriber_pb2
from services.kit.auth import SITE_HEADER
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from tests.segment.helpers import (
    Site,
    audience_ids,
    error_field,
    expect_error,
    list_all,
    register,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
UNSUBSCRIBED = subscriber_pb2.SUBSCRIBER_STATE_UNSUBSCRIBED
ACTIVE = subscriber_pb2.SUBSCRIBER_STATE_ACTIVE


async def unsubscribe(
    stub: pb_grpc.SegmentServiceStub, site: Site, subscriber_id: str, reason: str = ""
) -> subscriber_pb2.Subscriber:
    response = await stub.UnsubscribeSubscriber(
        pb.UnsubscribeSubscriberRequest(subscriber_id=subscriber_id, reason=reason),
        metadata=site.metadata,
    )
    return response.subscriber


async def get(
    stub: pb_grpc.SegmentServiceStub, site: Site, subscriber_id: str
) -> subscriber_pb2.Subscriber:
    response = await stub.GetSubscriber(
        pb.GetSubscriberRequest(subscriber_id=subscriber_id), metadata=site.metadata
    )
    return response.subscriber


class TestUnsubscribeSubscriber:
    async def test_marks_unsubscribed_with_the_default_reason(
        self, stub: pb_grpc.SegmentServiceStub, site: Site, clock: FrozenClock
    ) -> None:
        stored = await register(stub, site)
        clock.advance(hours=1)

        gone = await unsubscribe(stub, site, stored.subscriber_id)

        assert gone.state == UNSUBSCRIBED
        assert gone.unsubscribe_reason == "user_unsubscribed"
        assert gone.update_time.ToDatetime() > stored.update_time.ToDatetime()
        assert await get(stub, site, stored.subscriber_id) == gone

    async def test_is_idempotent_and_keeps_the_first_reason(
        self, stub: pb_grpc.SegmentServiceStub, site: Site, clock: FrozenClock
    ) -> None:
        stored = await register(stub, site)
        first = await unsubscribe(stub, site, stored.subscriber_id, "push_service_410")
        clock.advance(minutes=1)

        second = await unsubscribe(stub, site, stored.subscriber_id, "user_unsubscribed")

        assert second == first
        assert second.unsubscribe_reason == "push_service_410"

    async def test_other_services_unsubscribe_with_the_internal_token(
        self, stub: pb_grpc.SegmentServiceStub, site: Site, settings: Settings
    ) -> None:
        stored = await register(stub, site)

        response = await stub.UnsubscribeSubscriber(
            pb.UnsubscribeSubscriberRequest(
                subscriber_id=stored.subscriber_id, reason="push_service_404"
            ),
            metadata=(
                ("authorization", f"Bearer {settings.internal_token_value}"),
                (SITE_HEADER, site.site_id),
            ),
        )

        assert response.subscriber.unsubscribe_reason == "push_service_404"

    async def test_unknown_subscriber_is_not_found(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        error = await expect_error(
            unsubscribe(stub, site, "sub_0000000000000000000000000000dead"),
            NOT_FOUND,
            "SUBSCRIBER_NOT_FOUND",
        )
        assert error_field(error) == "subscriber_id"

    @pytest.mark.parametrize(
        ("subscriber_id", "reason", "expected"),
        [("", "", "MISSING_SUBSCRIBER_ID"), (None, "x" * 129, "INVALID_REASON")],
    )
    async def test_refuses_bad_input_and_changes_nothing(
        self,
        stub: pb_grpc.SegmentServiceStub,
        site: Site,
        subscriber_id: str | None,
        reason: str,
        expected: str,
    ) -> None:
        stored = await register(stub, site)

        await expect_error(
            unsubscribe(stub, site, stored.subscriber_id if subscriber_id is None else "", reason),
            INVALID,
            expected,
        )

        assert (await get(stub, site, stored.subscriber_id)).state == ACTIVE


class TestGetSubscriber:
    async def test_unknown_subscriber_is_not_found(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        await expect_error(get(stub, site, "sub_unknown"), NOT_FOUND, "SUBSCRIBER_NOT_FOUND")

    async def test_empty_id_is_invalid(self, stub: pb_grpc.SegmentServiceStub, site: Site) -> None:
        await expect_error(get(stub, site, ""), INVALID, "MISSING_SUBSCRIBER_ID")


class TestListSubscribers:
    async def test_walks_every_page_without_duplicates_or_gaps(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        registered = {(await register(stub, site)).subscriber_id for _ in range(8)}
        pages: list[list[str]] = []
        token = ""
        while True:
            response = await stub.ListSubscribers(
                pb.ListSubscribersRequest(page_size=3, page_token=token), metadata=site.metadata
            )
            pages.append([s.subscriber_id for s in response.subscribers])
            token = response.next_page_token
            if not token:
                break

        assert [len(page) for page in pages] == [3, 3, 2]
        listed = [subscriber_id for page in pages for subscriber_id in page]
        assert listed == sorted(listed)
        assert len(listed) == len(set(listed))
        assert set(listed) == registered

    async def test_a_full_last_page_already_carries_an_empty_token(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        for _ in range(4):
            await register(stub, site)

        first = await stub.ListSubscribers(
            pb.ListSubscribersRequest(page_size=2), metadata=site.metadata
        )
        second = await stub.ListSubscribers(
            pb.ListSubscribersRequest(page_size=2, page_token=first.next_page_token),
            metadata=site.metadata,
        )

        assert first.next_page_token and len(first.subscribers) == 2
        assert second.next_page_token == "" and len(second.subscribers) == 2

    async def test_lists_unsubscribed_ones_too(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        stored = await register(stub, site)
        await unsubscribe(stub, site, stored.subscriber_id)

        assert [s.state for s in await list_all(stub, site)] == [UNSUBSCRIBED]

    async def test_page_size_above_the_maximum_is_coerced(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        await register(stub, site)

        response = await stub.ListSubscribers(
            pb.ListSubscribersRequest(page_size=1_000_000), metadata=site.metadata
        )

        assert len(response.subscribers) == 1 and response.next_page_token == ""

    async def test_negative_page_size_is_invalid(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        error = await expect_error(
            stub.ListSubscribers(pb.ListSubscribersRequest(page_size=-1), metadata=site.metadata),
            INVALID,
            "INVALID_PAGE_SIZE",
        )
        assert error_field(error) == "page_size"

    @pytest.mark.parametrize(
        "page_token",
        [
            "not a token!",
            base64.urlsafe_b64encode(b"[1, 2]").decode(),
            base64.urlsafe_b64encode(b'{"after": "x\' OR 1=1 --"}').decode(),
        ],
    )
    async def test_malformed_page_token_is_invalid(
        self, stub: pb_grpc.SegmentServiceStub, site: Site, page_token: str
    ) -> None:
        error = await expect_error(
            stub.ListSubscribers(
                pb.ListSubscribersRequest(page_token=page_token), metadata=site.metadata
            ),
            INVALID,
            "INVALID_PAGE_TOKEN",
        )
        assert error_field(error) == "page_token"


class TestSiteIsolation:
    async def test_another_site_cannot_see_or_change_a_subscriber(
        self,
        stub: pb_grpc.SegmentServiceStub,
        site: Site,
        other_site: Site,
        settings: Settings,
        clock: FrozenClock,
        internal_stub: internal_pb_grpc.SegmentInternalServiceStub,
    ) -> None:
        mine = await register(stub, site)

        await expect_error(get(stub, other_site, mine.subscriber_id), NOT_FOUND, "SUBSCRIBER_NOT_FOUND")
        await expect_error(
            unsubscribe(stub, other_site, mine.subscriber_id), NOT_FOUND, "SUBSCRIBER_NOT_FOUND"
        )
        assert await list_all(stub, other_site) == []
        assert await audience_ids(internal_stub, settings, other_site, clock.now()) == []
        assert (await get(stub, site, mine.subscriber_id)).state == ACTIVE

    async def test_a_page_token_from_another_site_reveals_nothing(
        self, stub: pb_grpc.SegmentServiceStub, site: Site, other_site: Site
    ) -> None:
        for _ in range(3):
            await register(stub, site)
        first = await stub.ListSubscribers(
            pb.ListSubscribersRequest(page_size=1), metadata=site.metadata
        )

        theirs = await stub.ListSubscribers(
            pb.ListSubscribersRequest(page_token=first.next_page_token),
            metadata=other_site.metadata,
        )

        assert list(theirs.subscribers) == [] and theirs.next_page_token == ""

"""BatchRegisterSubscribers: many registrations in one call, all validated first, stored at once."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from clarion.common.v1 import common_pb2
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from clarion.segment.v1 import subscriber_pb2
from services.kit.clock import FrozenClock
from services.segment import subscription_writes
from tests.segment.helpers import (
    Site,
    browser_public_key,
    error_field,
    expect_error,
    list_all,
    push_subscription,
    register,
    register_request,
)
from tests.support.sites import bearer

INVALID = grpc.StatusCode.INVALID_ARGUMENT
ACTIVE = subscriber_pb2.SUBSCRIBER_STATE_ACTIVE


async def batch_register(
    stub: pb_grpc.SegmentServiceStub, site: Site, requests: list[pb.RegisterSubscriberRequest]
) -> list[pb.RegisterSubscriberResponse]:
    response = await stub.BatchRegisterSubscribers(
        pb.BatchRegisterSubscribersRequest(requests=requests), metadata=site.metadata
    )
    return list(response.responses)


class TestBatchRegisterSubscribers:
    async def test_stores_every_entry_and_answers_in_request_order(
        self, stub: pb_grpc.SegmentServiceStub, site: Site, clock: FrozenClock
    ) -> None:
        known = await register(stub, site)
        clock.advance(minutes=1)
        requests = [
            register_request(profile_id="first", timezone="Asia/Tokyo"),
            register_request(
                push_subscription=push_subscription(endpoint=known.push_subscription.endpoint),
                browser=common_pb2.BROWSER_FIREFOX,
            ),
            register_request(browser=common_pb2.BROWSER_UNSPECIFIED, timezone=""),
        ]

        responses = await batch_register(stub, site, requests)

        assert [r.subscriber.push_subscription for r in responses] == [
            r.push_subscription for r in requests
        ]
        assert [r.created for r in responses] == [True, False, True]
        assert responses[1].subscriber.subscriber_id == known.subscriber_id
        assert responses[1].subscriber.create_time == known.create_time
        assert responses[1].subscriber.browser == common_pb2.BROWSER_FIREFOX
        assert (responses[0].subscriber.profile_id, responses[0].subscriber.timezone) == (
            "first",
            "Asia/Tokyo",
        )
        # Defaults as for RegisterSubscriber.
        assert (responses[2].subscriber.browser, responses[2].subscriber.timezone) == (
            common_pb2.BROWSER_OTHER,
            "",
        )
        stored = {s.subscriber_id: s for s in await list_all(stub, site)}
        assert len(stored) == 3
        for response in responses:
            assert stored[response.subscriber.subscriber_id] == response.subscriber
            assert response.subscriber.state == ACTIVE

    async def test_reactivates_an_unsubscribed_endpoint(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        gone = await register(stub, site)
        await stub.UnsubscribeSubscriber(
            pb.UnsubscribeSubscriberRequest(subscriber_id=gone.subscriber_id),
            metadata=site.metadata,
        )

        (response,) = await batch_register(
            stub,
            site,
            [register_request(push_subscription=push_subscription(
                endpoint=gone.push_subscription.endpoint
            ))],
        )

        assert not response.created
        assert response.subscriber.subscriber_id == gone.subscriber_id
        assert response.subscriber.state == ACTIVE
        assert response.subscriber.unsubscribe_reason == ""

    async def test_an_endpoint_given_twice_ends_as_if_registered_twice(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        endpoint = push_subscription().endpoint
        first = register_request(push_subscription=push_subscription(endpoint=endpoint))
        second = register_request(
            push_subscription=push_subscription(endpoint=endpoint), timezone="America/Chicago"
        )

        responses = await batch_register(stub, site, [first, second])

        assert [r.created for r in responses] == [True, False]
        assert responses[0].subscriber.subscriber_id == responses[1].subscriber.subscriber_id
        (stored,) = await list_all(stub, site)
        assert stored.push_subscription == second.push_subscription
        assert stored.timezone == "America/Chicago"

    async def test_the_same_endpoint_in_another_site_is_another_subscriber(
        self, stub: pb_grpc.SegmentServiceStub, site: Site, other_site: Site
    ) -> None:
        request = register_request()

        (mine,) = await batch_register(stub, site, [request])
        (theirs,) = await batch_register(stub, other_site, [request])

        assert mine.created and theirs.created
        assert mine.subscriber.subscriber_id != theirs.subscriber.subscriber_id

    async def test_an_empty_batch_stores_nothing(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        assert await batch_register(stub, site, []) == []
        assert await list_all(stub, site) == []

    async def test_a_thousand_entries_are_one_call(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        key = browser_public_key()
        requests = [
            register_request(push_subscription=push_subscription(p256dh=key))
            for _ in range(1000)
        ]

        responses = await batch_register(stub, site, requests)

        assert len(responses) == 1000 and all(r.created for r in responses)
        assert len(await list_all(stub, site, page_size=1000)) == 1000


def _entry(**overrides: Any) -> Any:
    return overrides


class TestBatchRegisterRefusesBadInput:
    @pytest.mark.parametrize(
        ("index", "overrides", "field", "reason"),
        [
            (3, _entry(push_subscription=push_subscription(p256dh=b"\x04" * 10)),
             "requests[3].push_subscription.p256dh", "INVALID_P256DH"),
            (0, _entry(push_subscription=push_subscription(endpoint="")),
             "requests[0].push_subscription.endpoint", "INVALID_ENDPOINT"),
            (1, _entry(push_subscription=push_subscription(auth=b"short")),
             "requests[1].push_subscription.auth", "INVALID_AUTH"),
            (2, _entry(browser=99), "requests[2].browser", "INVALID_BROWSER"),
            (4, _entry(timezone="Mars/Olympus_Mons"), "requests[4].timezone", "INVALID_TIMEZONE"),
            (4, _entry(profile_id="p" * 129), "requests[4].profile_id", "INVALID_PROFILE_ID"),
        ],
    )
    async def test_one_bad_entry_refuses_the_batch_naming_it(
        self,
        stub: pb_grpc.SegmentServiceStub,
        site: Site,
        index: int,
        overrides: dict[str, Any],
        field: str,
        reason: str,
    ) -> None:
        known = await register(stub, site)
        requests = [register_request() for _ in range(5)]
        # A good update of a known subscriber in the same batch must not happen either.
        requests[index - 1 if index else 1] = register_request(
            push_subscription=push_subscription(endpoint=known.push_subscription.endpoint),
            timezone="Asia/Tokyo",
        )
        requests[index] = register_request(**overrides)

        error = await expect_error(
            stub.BatchRegisterSubscribers(
                pb.BatchRegisterSubscribersRequest(requests=requests), metadata=site.metadata
            ),
            INVALID,
            reason,
        )

        assert error_field(error) == field
        assert f"requests[{index}]" in (error.details() or "")
        assert await list_all(stub, site) == [known]

    async def test_more_than_a_thousand_entries_are_refused(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        key = browser_public_key()
        requests = [
            register_request(push_subscription=push_subscription(p256dh=key))
            for _ in range(1001)
        ]

        error = await expect_error(
            stub.BatchRegisterSubscribers(
                pb.BatchRegisterSubscribersRequest(requests=requests), metadata=site.metadata
            ),
            INVALID,
            "BATCH_TOO_LARGE",
        )

        assert error_field(error) == "requests"
        assert await list_all(stub, site) == []

    async def test_needs_a_valid_api_key(
        self, stub: pb_grpc.SegmentServiceStub, site: Site
    ) -> None:
        await expect_error(
            stub.BatchRegisterSubscribers(
                pb.BatchRegisterSubscribersRequest(requests=[register_request()]),
                metadata=bearer("ck_not-a-key"),
            ),
            grpc.StatusCode.UNAUTHENTICATED,
        )
        assert await list_all(stub, site) == []


class TestBatchRegisterSubscribersStaged(TestBatchRegisterSubscribers):
    """The same cases with every batch written through PostgreSQL's staging table (which
    batches of STAGED_BATCH registrations or more take when the gateway is busy)."""

    @pytest.fixture(autouse=True)
    def every_batch_staged(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(subscription_writes, "STAGED_BATCH", 1)

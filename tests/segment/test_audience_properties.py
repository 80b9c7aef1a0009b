"""ListAudienceMembers with profile_properties: each member carries the named properties
of its profile, typed as GetProfile gives them, as they are when the page is read (what
delivery renders a run's templates with). Through the real segment server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from clarion.common.v1 import common_pb2
from clarion.segment.v1 import profile_pb2, segment_pb2, subscriber_pb2
from clarion.segment.v1 import segment_internal_service_pb2 as internal_pb
from clarion.segment.v1 import segment_internal_service_pb2_grpc as internal_pb_grpc
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from tests.segment.helpers import Site, error_field, expect_error, internal, register
from tests.segment.test_audience import timestamp
from tests.segment.test_profiles import get_profile, set_, update, upsert

Stub = pb_grpc.SegmentServiceStub
Internal = internal_pb_grpc.SegmentInternalServiceStub
Member = subscriber_pb2.AudienceMember

SIGNUP = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
NAMES = ["first_name", "orders", "vip", "signup", "tags"]


def values_of(member: Member) -> list[tuple[str, Any]]:
    """The member's properties as (name, Python value), in the order they came."""
    out: list[tuple[str, Any]] = []
    for prop in member.profile_properties:
        kind = prop.value.WhichOneof("kind")
        if kind == "string_list_value":
            out.append((prop.name, list(prop.value.string_list_value.values)))
        elif kind == "timestamp_value":
            out.append((prop.name, prop.value.timestamp_value.ToDatetime(tzinfo=UTC)))
        else:
            out.append((prop.name, getattr(prop.value, kind)))
    return out


async def page(
    internal_stub: Internal,
    settings: Settings,
    site: Site,
    clock: FrozenClock,
    names: list[str],
    **fields: Any,
) -> internal_pb.ListAudienceMembersResponse:
    return await internal_stub.ListAudienceMembers(
        internal_pb.ListAudienceMembersRequest(
            snapshot_time=timestamp(clock.now()), profile_properties=names, **fields
        ),
        metadata=internal(settings, site),
    )


async def every_member(
    internal_stub: Internal,
    settings: Settings,
    site: Site,
    clock: FrozenClock,
    names: list[str],
    **fields: Any,
) -> dict[str, Member]:
    members: dict[str, Member] = {}
    token = ""
    while True:
        response = await page(
            internal_stub, settings, site, clock, names, page_token=token, **fields
        )
        members.update((m.subscriber_id, m) for m in response.members)
        token = response.next_page_token
        if not token:
            return members


async def people(stub: Stub, site: Site) -> dict[str, Any]:
    """ann (every kind of property, two browsers), bob (a name and nothing else), and an
    anonymous browser."""
    ann_chrome = await register(stub, site, profile_id="ann")
    ann_firefox = await register(stub, site, profile_id="ann", browser=common_pb2.BROWSER_FIREFOX)
    bob = await register(stub, site, profile_id="bob")
    anonymous = await register(stub, site)
    results = await upsert(
        stub,
        site,
        update(
            "ann",
            set_("first_name", "Ann"),
            set_("orders", 3),
            set_("vip", True),
            set_("signup", SIGNUP),
            set_("tags", ["garden", "books"]),
            set_("city", "Paris"),  # not asked for
        ),
        update("bob", set_("first_name", "Bob"), set_("vip", False)),
    )
    assert all(r.ok for r in results), results
    return {
        "ann": sorted([ann_chrome.subscriber_id, ann_firefox.subscriber_id]),
        "bob": bob.subscriber_id,
        "anonymous": anonymous.subscriber_id,
    }


@pytest.fixture
def profile_reads() -> Iterator[list[str]]:
    """The SQL statements that read segment_profiles while the test runs (the server
    runs in this process)."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM segment_profiles" in statement:
            statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", record)


class TestProfileProperties:
    async def test_members_carry_the_named_properties_typed(
        self,
        stub: Stub,
        internal_stub: Internal,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        ids = await people(stub, site)

        members = await every_member(internal_stub, settings, site, clock, NAMES)

        for subscriber_id in ids["ann"]:
            assert values_of(members[subscriber_id]) == [
                ("first_name", "Ann"),
                ("orders", 3.0),
                ("vip", True),
                ("signup", SIGNUP),
                ("tags", ["garden", "books"]),
            ]
        # The same typed values GetProfile answers.
        ann = await get_profile(stub, site, "ann")
        assert sorted(members[ids["ann"][0]].profile_properties, key=lambda p: p.name) == [
            p for p in ann.properties if p.name in NAMES
        ]
        # bob has no orders, signup or tags: they are left out, not sent empty.
        assert values_of(members[ids["bob"]]) == [("first_name", "Bob"), ("vip", False)]
        assert members[ids["bob"]].profile_properties[1].value == profile_pb2.PropertyValue(
            bool_value=False
        )
        # A browser without a profile carries none.
        assert list(members[ids["anonymous"]].profile_properties) == []

    async def test_in_the_order_asked_each_once(
        self,
        stub: Stub,
        internal_stub: Internal,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        ids = await people(stub, site)

        members = await every_member(
            internal_stub,
            settings,
            site,
            clock,
            ["vip", "nickname", "first_name", "vip", 'a "quoted" name', ""],
        )

        # Names no profile has (nor could have) are simply absent.
        assert values_of(members[ids["ann"][0]]) == [("vip", True), ("first_name", "Ann")]

    async def test_no_names_no_properties_and_no_profile_read(
        self,
        stub: Stub,
        internal_stub: Internal,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
        profile_reads: list[str],
    ) -> None:
        ids = await people(stub, site)
        profile_reads.clear()

        members = await every_member(internal_stub, settings, site, clock, [])

        assert set(members) == {*ids["ann"], ids["bob"], ids["anonymous"]}
        assert all(not m.profile_properties for m in members.values())
        assert profile_reads == []

    async def test_one_profile_read_per_page_whatever_its_members(
        self,
        stub: Stub,
        internal_stub: Internal,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
        profile_reads: list[str],
    ) -> None:
        await people(stub, site)
        for index in range(6):
            await register(stub, site, profile_id=f"extra-{index}")
        profile_reads.clear()

        first = await page(internal_stub, settings, site, clock, NAMES, page_size=5)
        second = await page(
            internal_stub,
            settings,
            site,
            clock,
            NAMES,
            page_size=5,
            page_token=first.next_page_token,
        )

        assert (len(first.members), len(second.members), second.next_page_token) == (5, 5, "")
        assert len(profile_reads) == 2

    async def test_a_saved_segments_pages_read_properties_as_they_are_then(
        self,
        stub: Stub,
        internal_stub: Internal,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        ids = await people(stub, site)
        await upsert(stub, site, update("cat", set_("first_name", "Cat"), set_("city", "Rome")))
        cat = await register(stub, site, profile_id="cat")
        await register(stub, site, profile_id="dan")  # no city: not in the segment
        has_a_name = await stub.CreateSegment(
            pb.CreateSegmentRequest(
                segment=segment_pb2.Segment(
                    display_name="named",
                    definition=segment_pb2.SegmentDefinition(
                        condition=segment_pb2.Condition(
                            property=segment_pb2.PropertyCondition(
                                name="first_name", operator=segment_pb2.PROPERTY_OPERATOR_EXISTS
                            )
                        )
                    ),
                )
            ),
            metadata=site.metadata,
        )
        fields: dict[str, Any] = {
            "audience": segment_pb2.AudienceSelector(segment_id=has_a_name.segment.segment_id),
            "audience_key": "run_properties_1",
            "page_size": 2,
        }
        names = ["first_name", "city"]
        snapshot = timestamp(clock.now())

        pages: list[list[Member]] = []
        token = ""
        while True:
            response = await internal_stub.ListAudienceMembers(
                internal_pb.ListAudienceMembersRequest(
                    snapshot_time=snapshot, profile_properties=names, page_token=token, **fields
                ),
                metadata=internal(settings, site),
            )
            pages.append(list(response.members))
            token = response.next_page_token
            if not token:
                break
            if len(pages) == 1:
                # Between pages cat moves: the next page reads the city as it is now.
                await upsert(stub, site, update("cat", set_("city", "Oslo")))

        assert [len(p) for p in pages] == [2, 2]
        members = {m.subscriber_id: m for p in pages for m in p}
        assert set(members) == {*ids["ann"], ids["bob"], cat.subscriber_id}
        assert values_of(members[ids["ann"][0]]) == [("first_name", "Ann"), ("city", "Paris")]
        assert values_of(members[ids["bob"]]) == [("first_name", "Bob")]
        # cat registered after ann and bob, so it is on the second page.
        assert cat.subscriber_id in {m.subscriber_id for m in pages[1]}
        assert values_of(members[cat.subscriber_id]) == [("first_name", "Cat"), ("city", "Oslo")]

    async def test_a_listed_audience_carries_them(
        self,
        stub: Stub,
        internal_stub: Internal,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
    ) -> None:
        ids = await people(stub, site)

        members = await every_member(
            internal_stub,
            settings,
            site,
            clock,
            ["first_name"],
            subscriber_ids=[ids["anonymous"], ids["bob"]],
            profile_ids=["ann"],
        )

        assert {s: values_of(m) for s, m in members.items()} == {
            ids["ann"][0]: [("first_name", "Ann")],
            ids["ann"][1]: [("first_name", "Ann")],
            ids["bob"]: [("first_name", "Bob")],
            ids["anonymous"]: [],
        }

    async def test_another_sites_profile_of_the_same_id_is_not_read(
        self,
        stub: Stub,
        internal_stub: Internal,
        settings: Settings,
        site: Site,
        other_site: Site,
        clock: FrozenClock,
    ) -> None:
        mine = await register(stub, site, profile_id="same-id")
        await upsert(stub, other_site, update("same-id", set_("first_name", "Other")))

        members = await every_member(internal_stub, settings, site, clock, ["first_name"])

        assert list(members) == [mine.subscriber_id]
        assert values_of(members[mine.subscriber_id]) == []

    async def test_more_than_a_hundred_names_are_refused(
        self, internal_stub: Internal, settings: Settings, site: Site, clock: FrozenClock
    ) -> None:
        error = await expect_error(
            page(internal_stub, settings, site, clock, [f"p{i}" for i in range(101)]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "BATCH_TOO_LARGE",
        )
        assert error_field(error) == "profile_properties"

    async def test_a_name_longer_than_a_property_name_is_refused(
        self, internal_stub: Internal, settings: Settings, site: Site, clock: FrozenClock
    ) -> None:
        error = await expect_error(
            page(internal_stub, settings, site, clock, ["first_name", "x" * 65]),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert error_field(error) == "profile_properties[1]"

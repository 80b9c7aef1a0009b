"""ListEventFeed: a site's events in feed order from a cursor the consumer keeps, through
the real server; on PostgreSQL also with transactions committing out of order."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import grpc
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clarion.segment.v1 import profile_pb2
from clarion.segment.v1 import segment_internal_service_pb2 as internal_pb
from clarion.segment.v1 import segment_internal_service_pb2_grpc as internal_pb_grpc
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.db import create_engine_for
from services.kit.pages import encode_page_token
from services.segment.feed import encode_cursor
from services.segment.server import create_server
from tests.segment.helpers import Site, expect_error, internal, register
from tests.segment.test_events import event, track
from tests.segment.test_profiles import value
from tests.support.sites import StaticSiteResolver

InternalStub = internal_pb_grpc.SegmentInternalServiceStub
INVALID = grpc.StatusCode.INVALID_ARGUMENT
# On PostgreSQL the feed holds back while any writing transaction of the server (any
# database on it, other test runs included) that began before an event is still open; a
# read that expects events waits for that, never longer than this.
SETTLE_SECONDS = 10.0


async def feed(
    stub: InternalStub,
    settings: Settings,
    site: Site,
    cursor: str = "",
    *,
    page_size: int = 0,
    names: Sequence[str] = (),
    start_at_end: bool = False,
) -> internal_pb.ListEventFeedResponse:
    return await stub.ListEventFeed(
        internal_pb.ListEventFeedRequest(
            cursor=cursor, page_size=page_size, event_names=names, start_at_end=start_at_end
        ),
        metadata=internal(settings, site),
    )


async def read(
    stub: InternalStub,
    settings: Settings,
    site: Site,
    cursor: str = "",
    *,
    expect: int = 0,
    page_size: int = 0,
    names: Sequence[str] = (),
) -> tuple[list[internal_pb.FeedEvent], str]:
    """Every event after `cursor`, page by page, until the cursor stops moving (caught
    up) with at least `expect` events; the events and the cursor to continue from."""
    events: list[internal_pb.FeedEvent] = []
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        page = await feed(stub, settings, site, cursor, page_size=page_size, names=names)
        assert page.next_cursor
        events.extend(page.events)
        caught_up = page.next_cursor == cursor
        cursor = page.next_cursor
        if caught_up:
            assert not page.events
            if len(events) >= expect:
                return events, cursor
            assert time.monotonic() < deadline, (
                f"the feed gave {len(events)} of {expect} events in {SETTLE_SECONDS} s; on "
                "PostgreSQL a writing transaction still open anywhere on the server (see "
                "pg_stat_activity.backend_xid, any database) holds it back"
            )
            await asyncio.sleep(0.05)


def ids(events: Sequence[internal_pb.FeedEvent]) -> list[str]:
    return [e.event.event_id for e in events]


async def track_ids(stub: pb_grpc.SegmentServiceStub, site: Site, *events: object) -> list[str]:
    results = await track(stub, site, *events)  # type: ignore[arg-type]
    assert all(r.ok and not r.duplicate for r in results), results
    return [e.event_id for e in events]  # type: ignore[attr-defined]


@pytest_asyncio.fixture
async def database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The segment database itself, for writing events in transactions the test holds."""
    engine = create_engine_for(settings.database_url_for("segment"))
    yield engine
    await engine.dispose()


async def insert_event(connection: AsyncConnection, site: Site, event_id: str) -> tuple[int, int]:
    """Stores an event in the connection's open transaction as TrackEvents would; its
    (feed_xid, feed_seq)."""
    now = datetime.now(UTC)
    row = await connection.execute(
        sa.text(
            "INSERT INTO segment_events (site_id, event_id, name, profile_id, occur_time, "
            "properties, receive_time) VALUES (:site, :id, 'Direct', 'user-1', :now, "
            "CAST('{}' AS jsonb), :now) RETURNING feed_xid, feed_seq"
        ),
        {"site": site.site_id, "id": event_id, "now": now},
    )
    xid, seq = row.one()
    return int(xid), int(seq)


def postgresql_only(database_backend: str) -> None:
    if database_backend != "postgresql":
        pytest.skip("SQLite commits in numbering order: there is no out-of-order commit")


class TestOrder:
    async def test_events_come_in_the_order_they_were_stored(
        self, stub, internal_stub: InternalStub, settings: Settings, site: Site, clock
    ) -> None:
        first = await track_ids(stub, site, event(clock), event(clock))
        second = await track_ids(stub, site, event(clock, name="Signup"))
        third = await track_ids(stub, site, event(clock), event(clock), event(clock))

        events, _ = await read(internal_stub, settings, site, expect=6)

        assert ids(events) == first + second + third

    async def test_an_event_comes_as_it_was_tracked(
        self, stub, internal_stub: InternalStub, settings: Settings, site: Site, clock
    ) -> None:
        when = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
        tracked = event(
            clock,
            name="Purchase",
            profile_id="user-7",
            subscriber_id="sub_anything",
            properties=[
                profile_pb2.Property(name="sku", value=value("A-1")),
                profile_pb2.Property(name="amount", value=value(12.5)),
                profile_pb2.Property(name="gift", value=value(True)),
                profile_pb2.Property(name="shipped", value=value(when)),
                profile_pb2.Property(name="tags", value=value(["x", "y"])),
            ],
        )
        await track_ids(stub, site, tracked)

        events, _ = await read(internal_stub, settings, site, expect=1)

        (got,) = events
        assert got.event.event_id == tracked.event_id
        assert got.event.name == "Purchase"
        assert got.event.profile_id == "user-7"
        assert got.event.subscriber_id == "sub_anything"
        assert got.event.occur_time == tracked.occur_time
        assert got.receive_time.ToDatetime(tzinfo=UTC) == clock.now()
        assert {p.name: p.value for p in got.event.properties} == {
            p.name: p.value for p in tracked.properties
        }
        assert [p.name for p in got.event.properties] == sorted(p.name for p in tracked.properties)

    async def test_events_segment_records_itself_are_in_it(
        self, stub, internal_stub: InternalStub, settings: Settings, site: Site
    ) -> None:
        subscriber = await register(stub, site)

        events, _ = await read(internal_stub, settings, site, expect=1)

        assert [(e.event.name, e.event.subscriber_id) for e in events] == [
            ("Subscribed", subscriber.subscriber_id)
        ]


class TestPaging:
    async def test_pages_walk_to_the_end_then_the_cursor_stays(
        self, stub, internal_stub: InternalStub, settings: Settings, site: Site, clock
    ) -> None:
        tracked = await track_ids(stub, site, *[event(clock) for _ in range(7)])

        events, cursor = await read(internal_stub, settings, site, expect=7, page_size=3)
        again = await feed(internal_stub, settings, site, cursor)

        assert ids(events) == tracked
        assert list(again.events) == [] and again.next_cursor == cursor

    async def test_a_page_holds_at_most_page_size(
        self, stub, internal_stub: InternalStub, settings: Settings, site: Site, clock
    ) -> None:
        tracked = await track_ids(stub, site, *[event(clock) for _ in range(5)])
        await read(internal_stub, settings, site, expect=5)  # all of them are final now

        page = await feed(internal_stub, settings, site, page_size=2)
        rest = await feed(internal_stub, settings, site, page.next_cursor, page_size=10)

        assert ids(page.events) == tracked[:2]
        assert ids(rest.events) == tracked[2:]

    async def test_later_events_continue_from_the_stored_cursor(
        self, stub, internal_stub: InternalStub, settings: Settings, site: Site, clock
    ) -> None:
        before = await track_ids(stub, site, event(clock), event(clock))
        seen, cursor = await read(internal_stub, settings, site, expect=2)
        after = await track_ids(stub, site, event(clock))

        later, _ = await read(internal_stub, settings, site, cursor, expect=1)

        assert ids(seen) == before
        assert ids(later) == after

    async def test_an_empty_feed_answers_a_cursor(
        self, internal_stub: InternalStub, settings: Settings, site: Site
    ) -> None:
        page = await feed(internal_stub, settings, site)
        again = await feed(internal_stub, settings, site, page.next_cursor)

        assert list(page.events) == [] and page.next_cursor
        assert again.next_cursor == page.next_cursor

    async def test_a_cursor_outlives_the_server(
        self,
        stub,
        settings: Settings,
        site: Site,
        clock: FrozenClock,
        resolver: StaticSiteResolver,
    ) -> None:
        async def reading(cursor: str, expect: int) -> tuple[list[str], str]:
            server = await create_server(
                "127.0.0.1:0", settings, clock=clock, site_resolver=resolver
            )
            await server.start()
            try:
                async with grpc.aio.insecure_channel(server.address) as channel:
                    events, cursor = await read(
                        InternalStub(channel), settings, site, cursor, expect=expect, page_size=2
                    )
                    return ids(events), cursor
            finally:
                await server.stop()

        first = await track_ids(stub, site, *[event(clock) for _ in range(3)])
        seen, cursor = await reading("", 3)
        second = await track_ids(stub, site, *[event(clock) for _ in range(2)])
        resumed, _ = await reading(cursor, 2)

        assert seen == first
        assert resumed == second


class TestSites:
    async def test_a_site_sees_only_its_own_events(
        self,
        stub,
        internal_stub: InternalStub,
        settings: Settings,
        site: Site,
        other_site: Site,
        clock,
    ) -> None:
        mine = await track_ids(stub, site, event(clock))
        theirs = await track_ids(stub, other_site, event(clock), event(clock))
        mine += await track_ids(stub, site, event(clock))

        events, _ = await read(internal_stub, settings, site, expect=2)
        other, _ = await read(internal_stub, settings, other_site, expect=2)

        assert ids(events) == mine
        assert ids(other) == theirs


class TestEventNames:
    async def test_only_the_names_asked_for(
        self, stub, internal_stub: InternalStub, settings: Settings, site: Site, clock
    ) -> None:
        tracked = [
            event(clock, name=name) for name in ("Purchase", "View", "Refund", "View", "Purchase")
        ]
        await track_ids(stub, site, *tracked)
        everything, _ = await read(internal_stub, settings, site, expect=5)

        events, cursor = await read(
            internal_stub, settings, site, names=["Purchase", "Refund"], expect=3
        )

        assert ids(events) == [e.event_id for e in tracked if e.name != "View"]
        # The events passed over moved the cursor too: nothing is left behind it.
        assert cursor == (await read(internal_stub, settings, site, expect=5))[1]
        assert len(everything) == 5

    async def test_the_cursor_moves_past_events_passed_over(
        self, stub, internal_stub: InternalStub, settings: Settings, site: Site, clock
    ) -> None:
        await track_ids(stub, site, *[event(clock, name="View") for _ in range(4)])
        _, end = await read(internal_stub, settings, site, expect=4)

        page = await feed(internal_stub, settings, site, names=["Rare"])
        rare = await track_ids(stub, site, event(clock, name="Rare"))
        later, _ = await read(
            internal_stub, settings, site, page.next_cursor, names=["Rare"], expect=1
        )

        assert list(page.events) == []
        assert page.next_cursor == end
        assert ids(later) == rare

    async def test_a_full_page_of_matches_leaves_no_match_behind(
        self, stub, internal_stub: InternalStub, settings: Settings, site: Site, clock
    ) -> None:
        tracked = [
            event(clock, name=name) for name in ("A", "B", "A", "A", "B", "A", "B", "B", "A")
        ]
        await track_ids(stub, site, *tracked)
        await read(internal_stub, settings, site, expect=9)

        events, _ = await read(internal_stub, settings, site, names=["A"], page_size=2)

        assert ids(events) == [e.event_id for e in tracked if e.name == "A"]


class TestStartAtEnd:
    async def test_only_events_stored_later(
        self,
        stub,
        internal_stub: InternalStub,
        settings: Settings,
        site: Site,
        clock,
        database_backend: str,
    ) -> None:
        stored = await track_ids(stub, site, event(clock), event(clock))
        await read(internal_stub, settings, site, expect=2)

        start = await feed(internal_stub, settings, site, start_at_end=True)
        later = await track_ids(stub, site, event(clock))
        events, _ = await read(internal_stub, settings, site, start.next_cursor, expect=1)
        seen = ids(start.events) + ids(events)

        assert start.next_cursor
        if database_backend == "sqlite":
            assert seen == later
        else:
            # The start is behind every transaction still open anywhere on the server:
            # events stored just before may come too (never one stored after is missed).
            assert seen == (stored + later)[-len(seen) :] and seen[-1:] == later

    async def test_on_an_empty_site_it_starts_at_the_beginning(
        self, stub, internal_stub: InternalStub, settings: Settings, site: Site, clock
    ) -> None:
        start = await feed(internal_stub, settings, site, start_at_end=True)
        tracked = await track_ids(stub, site, event(clock))

        events, _ = await read(internal_stub, settings, site, start.next_cursor, expect=1)

        assert ids(start.events) + ids(events) == tracked

    async def test_a_cursor_wins_over_start_at_end(
        self, stub, internal_stub: InternalStub, settings: Settings, site: Site, clock
    ) -> None:
        tracked = await track_ids(stub, site, event(clock), event(clock))
        await read(internal_stub, settings, site, expect=2)

        page = await feed(internal_stub, settings, site, encode_cursor((0, 0)), start_at_end=True)

        assert ids(page.events) == tracked

    async def test_a_transaction_in_flight_at_the_start_is_not_skipped(
        self,
        stub,
        internal_stub: InternalStub,
        settings: Settings,
        site: Site,
        clock,
        database: AsyncEngine,
        database_backend: str,
    ) -> None:
        postgresql_only(database_backend)
        async with database.connect() as open_transaction:
            await open_transaction.begin()
            await insert_event(open_transaction, site, "in-flight")
            # A later transaction commits first: its row is the newest one visible, and a
            # start taken at it would pass over the one still open.
            committed = await track_ids(stub, site, event(clock))
            start = await feed(internal_stub, settings, site, start_at_end=True)
            assert list(start.events) == []
            await open_transaction.commit()

        events, _ = await read(internal_stub, settings, site, start.next_cursor, expect=2)

        assert ids(events) == ["in-flight", *committed]


class TestOutOfOrderCommits:
    async def test_an_earlier_number_committed_last_is_neither_skipped_nor_repeated(
        self,
        internal_stub: InternalStub,
        settings: Settings,
        site: Site,
        database: AsyncEngine,
        database_backend: str,
    ) -> None:
        postgresql_only(database_backend)
        async with database.connect() as first, database.connect() as second:
            await first.begin()
            early = await insert_event(first, site, "early")
            await second.begin()
            late = await insert_event(second, site, "late")
            await second.commit()
            assert early[1] < late[1]  # numbered first, still uncommitted
            # A reader by feed_seq alone would hand out "late" now and move past "early".
            visible = await second.execute(
                sa.text("SELECT event_id FROM segment_events WHERE site_id = :site"),
                {"site": site.site_id},
            )
            assert visible.scalars().all() == ["late"]

            while_open = await feed(internal_stub, settings, site)
            await first.commit()

        events, _ = await read(internal_stub, settings, site, while_open.next_cursor, expect=2)
        everything = ids(while_open.events) + ids(events)

        # "late" is held back while "early", whose transaction began first, may commit.
        assert ids(while_open.events) == []
        assert everything == ["early", "late"]

    async def test_a_committed_transaction_comes_before_an_older_numbered_one_still_open(
        self,
        internal_stub: InternalStub,
        settings: Settings,
        site: Site,
        database: AsyncEngine,
        database_backend: str,
    ) -> None:
        postgresql_only(database_backend)
        async with database.connect() as older, database.connect() as younger:
            # `older` takes its transaction id first but numbers its row last.
            await older.begin()
            await older.execute(sa.text("SELECT pg_current_xact_id()"))
            await younger.begin()
            await younger.execute(sa.text("SELECT pg_current_xact_id()"))
            first_numbered = await insert_event(younger, site, "numbered-first")
            last_numbered = await insert_event(older, site, "numbered-last")
            assert last_numbered[0] < first_numbered[0] and last_numbered[1] > first_numbered[1]
            await older.commit()

            # The smaller transaction id has ended: its row is final and comes now; the
            # open one sorts after it whatever its number.
            while_open, cursor = await read(internal_stub, settings, site, expect=1)
            await younger.commit()

        events, _ = await read(internal_stub, settings, site, cursor, expect=1)

        assert ids(while_open) == ["numbered-last"]
        assert ids(events) == ["numbered-first"]

    async def test_a_rolled_back_transaction_does_not_stop_the_feed(
        self,
        stub,
        internal_stub: InternalStub,
        settings: Settings,
        site: Site,
        clock,
        database: AsyncEngine,
        database_backend: str,
    ) -> None:
        postgresql_only(database_backend)
        async with database.connect() as doomed:
            await doomed.begin()
            await insert_event(doomed, site, "rolled-back")
            tracked = await track_ids(stub, site, event(clock))
            await doomed.rollback()

        events, _ = await read(internal_stub, settings, site, expect=1)

        assert ids(events) == tracked


def _token(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


class TestRefusals:
    @pytest.mark.parametrize(
        "cursor",
        [
            "not a cursor",
            _token(b"{}"),
            _token(b"[1, 2]"),
            encode_page_token("sub_01a22d0c44e54ccb498ff8c75bef0f20"),
            encode_page_token("1:2:3"),
            encode_page_token("-1:5"),
            encode_page_token("1:-5"),
            encode_page_token("+1:5"),
            encode_page_token(f"1:{2**63}"),
            encode_page_token(f"{2**64}:1"),
            encode_page_token("١:٢"),
            encode_page_token(" 1:2"),
        ],
    )
    async def test_a_cursor_this_service_did_not_give_is_refused(
        self, internal_stub: InternalStub, settings: Settings, site: Site, cursor: str
    ) -> None:
        error = await expect_error(
            feed(internal_stub, settings, site, cursor), INVALID, "INVALID_CURSOR"
        )

        assert "cursor" in (error.details() or "")

    async def test_a_negative_page_size_is_refused(
        self, internal_stub: InternalStub, settings: Settings, site: Site
    ) -> None:
        await expect_error(
            feed(internal_stub, settings, site, page_size=-1), INVALID, "INVALID_PAGE_SIZE"
        )

    async def test_too_many_names_are_refused(
        self, internal_stub: InternalStub, settings: Settings, site: Site
    ) -> None:
        names = [f"n{i}" for i in range(101)]

        await expect_error(
            feed(internal_stub, settings, site, names=names), INVALID, "BATCH_TOO_LARGE"
        )

    async def test_a_site_key_is_refused(self, internal_stub: InternalStub, site: Site) -> None:
        await expect_error(
            internal_stub.ListEventFeed(internal_pb.ListEventFeedRequest(), metadata=site.metadata),
            grpc.StatusCode.PERMISSION_DENIED,
            "INTERNAL_ONLY",
        )

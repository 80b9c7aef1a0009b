"""ImportSubscribers, ImportProfiles and ImportEvents: bidi streams of batches, one
ImportResult per batch, per-row rejections, idempotent re-runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.common.v1 import common_pb2
from clarion.segment.v1 import profile_pb2, subscriber_pb2
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.db import create_engine_for
from services.kit.errors import error_info
from services.segment import import_store, subscription_writes
from services.segment.imports import MAX_IMPORTED_SUBSCRIBERS as MAX_ROWS
from services.segment.subscription_writes import SubscriptionWrite, write_subscriptions
from tests.segment.helpers import Site, list_all, push_subscription, register
from tests.segment.test_events import stored_events

Stub = pb_grpc.SegmentServiceStub


def stamp(clock: FrozenClock, **delta: float) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(clock.now() + timedelta(**delta))
    return out


def subscriber_row(row: int, **overrides: Any) -> pb.ImportedSubscriber:
    create_time = overrides.pop("create_time", None)
    request: dict[str, Any] = {
        "push_subscription": push_subscription(),
        "browser": common_pb2.BROWSER_FIREFOX,
        "timezone": "Europe/Paris",
    }
    request.update(overrides)
    entry = pb.ImportedSubscriber(row=row, subscriber=pb.RegisterSubscriberRequest(**request))
    if create_time is not None:
        entry.create_time.CopyFrom(create_time)
    return entry


async def import_subscribers(
    stub: Stub, site: Site, *batches: Sequence[pb.ImportedSubscriber]
) -> list[pb.ImportResult]:
    call = stub.ImportSubscribers(
        (pb.ImportSubscribersRequest(subscribers=list(batch)) for batch in batches),
        metadata=site.metadata,
    )
    return [response.result async for response in call]


async def stream_error(call: Any, code: grpc.StatusCode, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in call:
            pass
    assert raised.value.code() == code, raised.value.details()
    info = error_info(raised.value)
    assert info is not None and info.reason == reason, info


class TestImportSubscribers:
    async def test_good_rows_stored_bad_rows_rejected_alone(self, stub: Stub, site: Site) -> None:
        good = [subscriber_row(i) for i in (2, 3, 5)]
        bad_key = subscriber_row(
            4, push_subscription=push_subscription(p256dh=b"\x04" + b"\x01" * 64)
        )
        bad_endpoint = subscriber_row(
            6, push_subscription=push_subscription(endpoint="ftp://push.example.test/x")
        )
        bad_zone = subscriber_row(7, timezone="Mars/Olympus")
        bad_vapid = subscriber_row(8, vapid_key_id="vk_NOTHEX")
        results = await import_subscribers(
            stub, site, [good[0], bad_key, good[1], bad_endpoint, bad_zone, bad_vapid, good[2]]
        )
        (result,) = results
        assert (result.stored, result.unchanged) == (3, 0)
        rejected = [(r.row, r.reason, r.field) for r in result.rejected]
        assert rejected == [
            (4, "INVALID_P256DH", "push_subscription.p256dh"),
            (6, "INVALID_ENDPOINT", "push_subscription.endpoint"),
            (7, "INVALID_TIMEZONE", "timezone"),
            (8, "INVALID_VAPID_KEY_ID", "vapid_key_id"),
        ]
        assert all(r.message for r in result.rejected)
        stored = await list_all(stub, site)
        assert sorted(s.push_subscription.endpoint for s in stored) == sorted(
            g.subscriber.push_subscription.endpoint for g in good
        )
        assert {s.browser for s in stored} == {common_pb2.BROWSER_FIREFOX}
        assert {s.timezone for s in stored} == {"Europe/Paris"}

    async def test_one_result_per_batch_in_order(self, stub: Stub, site: Site) -> None:
        batches = [[subscriber_row(i * 10 + j) for j in range(n)] for i, n in enumerate((3, 1, 2))]
        results = await import_subscribers(stub, site, *batches)
        assert [r.stored for r in results] == [3, 1, 2]

    async def test_rerun_counts_everything_unchanged(self, stub: Stub, site: Site) -> None:
        rows = [subscriber_row(i, profile_id=f"p-{i}") for i in range(1, 6)]
        first = await import_subscribers(stub, site, rows[:3], rows[3:])
        assert [(r.stored, r.unchanged) for r in first] == [(3, 0), (2, 0)]
        again = await import_subscribers(stub, site, rows[:3], rows[3:])
        assert [(r.stored, r.unchanged, len(r.rejected)) for r in again] == [(0, 3, 0), (0, 2, 0)]
        assert len(await list_all(stub, site)) == 5

    async def test_changed_keys_stored_create_time_kept(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        first = subscriber_row(1, create_time=stamp(clock, days=-400))
        await import_subscribers(stub, site, [first])
        (before,) = await list_all(stub, site)
        assert before.create_time == stamp(clock, days=-400)
        renewed = subscriber_row(
            1,
            push_subscription=push_subscription(
                endpoint=first.subscriber.push_subscription.endpoint
            ),
            create_time=stamp(clock, days=-1),
        )
        (result,) = await import_subscribers(stub, site, [renewed])
        assert (result.stored, result.unchanged) == (1, 0)
        (after,) = await list_all(stub, site)
        assert after.subscriber_id == before.subscriber_id
        assert after.push_subscription.p256dh == renewed.subscriber.push_subscription.p256dh
        assert after.create_time == before.create_time

    async def test_one_batch_of_new_unchanged_and_changed_endpoints(
        self, stub: Stub, site: Site, settings: Settings
    ) -> None:
        """A file mixing browsers the site has (as given, with new keys after an
        unsubscribe, with a new time zone) with new ones: each counted and stored as
        such, existing subscribers keep their ids, only the new ones get `Subscribed`."""
        kept = await register(stub, site)
        renewed = await register(stub, site)
        moved = await register(stub, site)
        await stub.UnsubscribeSubscriber(
            pb.UnsubscribeSubscriberRequest(
                subscriber_id=renewed.subscriber_id, reason="push_service_gone"
            ),
            metadata=site.metadata,
        )

        def same(row: int, subscriber: Any, **overrides: Any) -> pb.ImportedSubscriber:
            request = {"push_subscription": subscriber.push_subscription, **overrides}
            return pb.ImportedSubscriber(
                row=row, subscriber=pb.RegisterSubscriberRequest(**request)
            )

        new_rows = [subscriber_row(i) for i in (1, 3, 5)]
        batch = [
            new_rows[0],
            same(2, kept),
            new_rows[1],
            same(4, renewed, push_subscription=push_subscription(
                endpoint=renewed.push_subscription.endpoint)),
            new_rows[2],
            same(6, moved, timezone="America/Lima"),
        ]  # fmt: skip
        (result,) = await import_subscribers(stub, site, batch)

        assert (result.stored, result.unchanged, list(result.rejected)) == (5, 1, [])
        by_endpoint = {s.push_subscription.endpoint: s for s in await list_all(stub, site)}
        assert len(by_endpoint) == 6
        for before in (kept, renewed, moved):
            after = by_endpoint[before.push_subscription.endpoint]
            assert after.subscriber_id == before.subscriber_id
        reactivated = by_endpoint[renewed.push_subscription.endpoint]
        assert reactivated.state == subscriber_pb2.SUBSCRIBER_STATE_ACTIVE
        assert by_endpoint[moved.push_subscription.endpoint].timezone == "America/Lima"
        new_ids = {by_endpoint[r.subscriber.push_subscription.endpoint].subscriber_id
                   for r in new_rows}  # fmt: skip
        subscribed = [s for _, name, _, s in await stored_events(settings, site)
                      if name == "Subscribed"]  # fmt: skip
        assert len(subscribed) == 6 and new_ids <= set(subscribed)

    async def test_empty_cells_keep_what_is_stored(self, stub: Stub, site: Site) -> None:
        subscriber = await register(stub, site, profile_id="user-7", timezone="Asia/Tokyo")
        again = pb.ImportedSubscriber(
            row=1,
            subscriber=pb.RegisterSubscriberRequest(push_subscription=subscriber.push_subscription),
        )
        (result,) = await import_subscribers(stub, site, [again])
        assert (result.stored, result.unchanged) == (0, 1)
        (kept,) = await list_all(stub, site)
        assert (kept.profile_id, kept.timezone) == ("user-7", "Asia/Tokyo")

    async def test_create_time_in_the_future_rejected(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        (result,) = await import_subscribers(
            stub, site, [subscriber_row(9, create_time=stamp(clock, minutes=5))]
        )
        assert [(r.row, r.reason, r.field) for r in result.rejected] == [
            (9, "CREATE_TIME_IN_FUTURE", "create_time")
        ]

    async def test_endpoint_twice_in_a_batch(self, stub: Stub, site: Site) -> None:
        row = subscriber_row(1)
        twice = pb.ImportedSubscriber(row=2, subscriber=row.subscriber)
        (result,) = await import_subscribers(stub, site, [row, twice])
        assert result.stored == 1
        assert [(r.row, r.reason) for r in result.rejected] == [(2, "DUPLICATE_ENDPOINT")]

    async def test_new_subscribers_get_a_subscribed_event(
        self, stub: Stub, site: Site, settings: Settings
    ) -> None:
        rows = [subscriber_row(i) for i in range(3)]
        await import_subscribers(stub, site, rows)
        await import_subscribers(stub, site, rows)
        events = await stored_events(settings, site)
        assert [name for _, name, _, _ in events] == ["Subscribed"] * 3

    async def test_batch_over_the_limit_refused(self, stub: Stub, site: Site) -> None:
        entry = subscriber_row(1)
        call = stub.ImportSubscribers(
            iter([pb.ImportSubscribersRequest(subscribers=[entry] * 1001)]), metadata=site.metadata
        )
        await stream_error(call, grpc.StatusCode.INVALID_ARGUMENT, "BATCH_TOO_LARGE")

    async def test_batches_before_a_bad_message_are_stored_and_answered(
        self, stub: Stub, site: Site
    ) -> None:
        good = [subscriber_row(i) for i in range(3)]
        call = stub.ImportSubscribers(
            iter([
                pb.ImportSubscribersRequest(subscribers=good[:2]),
                pb.ImportSubscribersRequest(subscribers=good[2:]),
                pb.ImportSubscribersRequest(subscribers=[good[0]] * 1001),
            ]),
            metadata=site.metadata,
        )  # fmt: skip
        answered = []
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for response in call:
                answered.append(response.result.stored)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert answered == [2, 1]
        assert len(await list_all(stub, site)) == 3

    async def test_bad_message_is_invalid_argument(self, stub: Stub, site: Site) -> None:
        bad = subscriber_row(1, timezone="x\x00y")
        call = stub.ImportSubscribers(
            iter([pb.ImportSubscribersRequest(subscribers=[bad])]), metadata=site.metadata
        )
        await stream_error(call, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TIMEZONE")

    async def test_unauthenticated_stream_refused(self, stub: Stub) -> None:
        call = stub.ImportSubscribers(
            iter([pb.ImportSubscribersRequest(subscribers=[subscriber_row(1)])]),
            metadata=(("authorization", "Bearer ck_nope"),),
        )
        await stream_error(call, grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY")
        call = stub.ImportSubscribers(iter([pb.ImportSubscribersRequest()]))
        await stream_error(call, grpc.StatusCode.UNAUTHENTICATED, "MISSING_API_KEY")

    async def test_another_sites_data_untouched(
        self, stub: Stub, site: Site, other_site: Site
    ) -> None:
        theirs = await register(stub, other_site, timezone="Asia/Tokyo")
        same_endpoint = pb.ImportedSubscriber(
            row=1,
            subscriber=pb.RegisterSubscriberRequest(
                push_subscription=push_subscription(endpoint=theirs.push_subscription.endpoint),
                timezone="Europe/Paris",
            ),
        )
        (result,) = await import_subscribers(stub, site, [same_endpoint])
        assert result.stored == 1
        (kept,) = await list_all(stub, other_site)
        assert kept == theirs
        (mine,) = await list_all(stub, site)
        assert mine.subscriber_id != theirs.subscriber_id


class TestImportSubscribersStaged(TestImportSubscribers):
    """Every case above again with each batch written through PostgreSQL's staging table
    (binary COPY, one statement), which otherwise takes batches of STAGED_BATCH rows or
    more: the same answers on both write paths (SQLite has one path and runs them
    twice)."""

    @pytest.fixture(autouse=True)
    def every_batch_staged(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(subscription_writes, "STAGED_BATCH", 1)


class TestBesideRegistrations:
    async def test_a_registration_waiting_for_an_imported_browser_does_not_deadlock(
        self,
        stub: Stub,
        site: Site,
        settings: Settings,
        database_backend: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A migration's import while browsers register: a registration (one upsert in
        endpoint order) holds a subscriber the import changes while it waits for a
        browser the import has just inserted. Both finish, nothing is refused, and the
        import's row wins as the later write."""
        if database_backend != "postgresql":
            pytest.skip("SQLite has one writer at a time: no row locks to wait on")
        monkeypatch.setattr(subscription_writes, "STAGED_BATCH", 1)  # insert-first
        changed = await register(
            stub, site, push_subscription=push_subscription(endpoint="https://fcm.googleapis.com/a")
        )
        arriving = "https://fcm.googleapis.com/b"  # after `changed` in endpoint order
        engine = create_engine_for(settings.database_url_for("segment"))
        registration: asyncio.Task[Any] | None = None

        async def register_both() -> None:
            now = datetime.now(UTC)
            writes = [
                SubscriptionWrite(
                    subscriber_id=f"sub_{uuid.uuid4().hex}", endpoint=endpoint,
                    p256dh=push_subscription().p256dh, auth=b"r" * 16, browser="chrome",
                    timezone="Asia/Tokyo", profile_id=None, vapid_key_id=None, state="active",
                    unsubscribe_reason=None, unsubscribe_time=None, create_time=now, new=True,
                )
                for endpoint in (changed.push_subscription.endpoint, arriving)
            ]  # fmt: skip
            async with engine.begin() as connection:
                await write_subscriptions(connection, site.site_id, writes, now)

        inserted_by_import = import_store.insert_new_subscriptions

        async def then_a_registration_waits(*args: Any) -> set[str]:
            nonlocal registration
            inserted = await inserted_by_import(*args)
            if registration is None:
                registration = asyncio.create_task(register_both())
                async with engine.connect() as connection:
                    for _ in range(200):
                        waiting = await connection.scalar(
                            sa.text(
                                "SELECT count(*) FROM pg_stat_activity "
                                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                            )
                        )
                        if waiting:
                            break
                        await asyncio.sleep(0.05)
                    assert waiting, "the registration never waited for the imported browser"
            return inserted

        monkeypatch.setattr(import_store, "insert_new_subscriptions", then_a_registration_waits)
        rows = [
            subscriber_row(1, push_subscription=push_subscription(endpoint=arriving)),
            subscriber_row(
                2,
                push_subscription=changed.push_subscription,
                timezone="America/Lima",
            ),
        ]
        try:
            (result,) = await import_subscribers(stub, site, rows)
            assert registration is not None
            await asyncio.wait_for(registration, 30)
        finally:
            await engine.dispose()

        assert (result.stored, result.unchanged, list(result.rejected)) == (2, 0, [])
        by_endpoint = {s.push_subscription.endpoint: s for s in await list_all(stub, site)}
        assert set(by_endpoint) == {changed.push_subscription.endpoint, arriving}
        assert {endpoint: s.timezone for endpoint, s in by_endpoint.items()} == {
            changed.push_subscription.endpoint: "America/Lima",
            arriving: "Europe/Paris",
        }
        assert by_endpoint[changed.push_subscription.endpoint].subscriber_id == (
            changed.subscriber_id
        )


class TestFullSizeBatches:
    async def test_a_thousand_rows_stored_subscribed_and_unchanged_on_rerun(
        self, stub: Stub, site: Site, settings: Settings
    ) -> None:
        """Batches of the size `clarion import subscribers` sends (the staged path on
        PostgreSQL), half of them naming a profile."""
        rows = [
            subscriber_row(i, profile_id=f"person-{i // 4}") if i % 2 else subscriber_row(i)
            for i in range(1, 1001)
        ]
        first, second = await import_subscribers(stub, site, rows[:500], rows[500:])
        assert (first.stored, second.stored, first.unchanged) == (500, 500, 0)
        assert not first.rejected and not second.rejected
        rerun = await import_subscribers(stub, site, rows[:MAX_ROWS])
        assert [(r.stored, r.unchanged) for r in rerun] == [(0, 1000)]
        events = await stored_events(settings, site)
        assert [name for _, name, _, _ in events] == ["Subscribed"] * 1000
        assert len({subscriber for _, _, _, subscriber in events}) == 1000
        assert sum(profile is not None for _, _, profile, _ in events) == 500
        listed = await list_all(stub, site)
        assert len(listed) == 1000
        profile = await stub.GetProfile(
            pb.GetProfileRequest(profile_id="person-7"), metadata=site.metadata
        )
        assert len(profile.profile.subscriber_ids) == 2


def profile_row(row: int, profile_id: str, **properties: Any) -> pb.ImportedProfile:
    operations = []
    for name, given in properties.items():
        if isinstance(given, bool):
            value = profile_pb2.PropertyValue(bool_value=given)
        elif isinstance(given, float | int):
            value = profile_pb2.PropertyValue(number_value=given)
        elif isinstance(given, list):
            value = profile_pb2.PropertyValue(
                string_list_value=profile_pb2.StringList(values=given)
            )
        else:
            value = profile_pb2.PropertyValue(string_value=given)
        operations.append(profile_pb2.PropertyOperation(name=name, set=value))
    return pb.ImportedProfile(
        row=row, update=profile_pb2.ProfileUpdate(profile_id=profile_id, operations=operations)
    )


async def import_profiles(
    stub: Stub, site: Site, *batches: Sequence[pb.ImportedProfile]
) -> list[pb.ImportResult]:
    call = stub.ImportProfiles(
        (pb.ImportProfilesRequest(profiles=list(batch)) for batch in batches),
        metadata=site.metadata,
    )
    return [response.result async for response in call]


class TestImportProfiles:
    async def test_typed_properties_and_rejections(self, stub: Stub, site: Site) -> None:
        rows = [
            profile_row(2, "ana", age=31, vip=True, city="Lyon", tags=["a", "b"]),
            profile_row(3, "bob", age="old"),  # age is a number: refused
            profile_row(4, "", age=3),
            profile_row(5, "cy", age=40),
        ]
        (result,) = await import_profiles(stub, site, rows)
        assert (result.stored, result.unchanged) == (2, 0)
        assert [(r.row, r.reason) for r in result.rejected] == [
            (3, "PROPERTY_TYPE_MISMATCH"),
            (4, "MISSING_PROFILE_ID"),
        ]
        profile = (
            await stub.GetProfile(pb.GetProfileRequest(profile_id="ana"), metadata=site.metadata)
        ).profile
        values = {p.name: p.value for p in profile.properties}
        assert values["age"].number_value == 31
        assert values["vip"].bool_value is True
        assert list(values["tags"].string_list_value.values) == ["a", "b"]

    async def test_rerun_unchanged(self, stub: Stub, site: Site) -> None:
        rows = [profile_row(i, f"p{i}", plan="pro") for i in range(1, 4)]
        await import_profiles(stub, site, rows)
        (again,) = await import_profiles(stub, site, rows)
        assert (again.stored, again.unchanged, len(again.rejected)) == (0, 3, 0)
        (changed,) = await import_profiles(stub, site, [profile_row(1, "p1", plan="free")])
        assert (changed.stored, changed.unchanged) == (1, 0)


def event_row(row: int, clock: FrozenClock, **overrides: Any) -> pb.ImportedEvent:
    values: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "name": "Purchase",
        "profile_id": "user-1",
        "occur_time": stamp(clock, days=-3),
    }
    values.update(overrides)
    return pb.ImportedEvent(row=row, event=profile_pb2.Event(**values))


async def import_events(
    stub: Stub, site: Site, *batches: Sequence[pb.ImportedEvent]
) -> list[pb.ImportResult]:
    call = stub.ImportEvents(
        (pb.ImportEventsRequest(events=list(batch)) for batch in batches), metadata=site.metadata
    )
    return [response.result async for response in call]


class TestImportEvents:
    async def test_dedup_and_rejections(
        self, stub: Stub, site: Site, clock: FrozenClock, settings: Settings
    ) -> None:
        rows = [event_row(i, clock) for i in range(1, 4)]
        bad = event_row(4, clock, name="")
        duplicate = pb.ImportedEvent(row=5, event=rows[0].event)
        (first,) = await import_events(stub, site, [*rows, bad, duplicate])
        assert (first.stored, first.unchanged) == (3, 1)
        assert [(r.row, r.reason) for r in first.rejected] == [(4, "MISSING_EVENT_NAME")]
        (again,) = await import_events(stub, site, rows)
        assert (again.stored, again.unchanged) == (0, 3)
        assert len(await stored_events(settings, site)) == 3

    async def test_batch_over_the_limit_refused(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        entry = event_row(1, clock)
        call = stub.ImportEvents(
            iter([pb.ImportEventsRequest(events=[entry] * 10_001)]), metadata=site.metadata
        )
        await stream_error(call, grpc.StatusCode.INVALID_ARGUMENT, "BATCH_TOO_LARGE")

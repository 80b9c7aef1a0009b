"""TrackEvents, the events Identify re-attributes, and the system events segment records."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.segment.v1 import profile_pb2
from clarion.segment.v1 import segment_internal_service_pb2 as internal_pb
from clarion.segment.v1 import segment_internal_service_pb2_grpc as internal_pb_grpc
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.db import create_engine_for
from tests.segment.helpers import Site, internal, register, register_request
from tests.segment.test_profiles import new_profile_id, value

Stub = pb_grpc.SegmentServiceStub


def stamp(clock: FrozenClock, **delta: float) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(clock.now() + timedelta(**delta))
    return out


def event(clock: FrozenClock, **overrides: object) -> profile_pb2.Event:
    values: dict[str, object] = {
        "event_id": uuid.uuid4().hex,
        "name": "Purchase",
        "profile_id": "user-1",
        "occur_time": stamp(clock),
    }
    values.update(overrides)
    return profile_pb2.Event(**values)  # type: ignore[arg-type]


def prop(name: str, v: object) -> profile_pb2.Property:
    return profile_pb2.Property(name=name, value=value(v))


async def track(stub: Stub, site: Site, *events: profile_pb2.Event) -> list[profile_pb2.ItemResult]:
    response = await stub.TrackEvents(pb.TrackEventsRequest(events=events), metadata=site.metadata)
    return list(response.results)


async def stored_events(
    settings: Settings, site: Site
) -> list[tuple[str, str, str | None, str | None]]:
    """(event_id, name, profile_id, subscriber_id) of the site's stored events."""
    engine = create_engine_for(settings.database_url_for("segment"))
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                sa.text(
                    "SELECT event_id, name, profile_id, subscriber_id FROM segment_events "
                    "WHERE site_id = :site ORDER BY event_id"
                ),
                {"site": site.site_id},
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]
    finally:
        await engine.dispose()


class TestTrackEvents:
    async def test_same_batch_twice_is_stored_once(
        self, stub: Stub, site: Site, clock: FrozenClock, settings: Settings
    ) -> None:
        batch = [event(clock), event(clock), event(clock)]
        first = await track(stub, site, *batch)
        second = await track(stub, site, *batch)

        assert [(r.ok, r.duplicate) for r in first] == [(True, False)] * 3
        assert [(r.ok, r.duplicate) for r in second] == [(True, True)] * 3
        assert len(await stored_events(settings, site)) == 3

    async def test_an_id_twice_in_one_batch_is_a_duplicate(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        results = await track(stub, site, event(clock, event_id="e1"), event(clock, event_id="e1"))
        assert [(r.ok, r.duplicate) for r in results] == [(True, False), (True, True)]

    async def test_future_event_refused_others_stored(
        self, stub: Stub, site: Site, clock: FrozenClock, settings: Settings
    ) -> None:
        results = await track(
            stub,
            site,
            event(clock, occur_time=stamp(clock, hours=25)),
            event(clock, occur_time=stamp(clock, hours=23)),
            event(clock, profile_id=""),
        )
        assert [(r.ok, r.reason, r.field) for r in results] == [
            (False, "EVENT_IN_FUTURE", "occur_time"),
            (True, "", ""),
            (False, "MISSING_PROFILE_OR_SUBSCRIBER", "profile_id"),
        ]
        assert len(await stored_events(settings, site)) == 1

    async def test_property_types_fixed_per_event_name(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        results = await track(
            stub,
            site,
            event(clock, properties=[prop("amount", 10)]),
            event(clock, properties=[prop("amount", "ten")]),
            event(clock, name="Refund", properties=[prop("amount", "ten")]),
        )
        assert [(r.ok, r.reason, r.field) for r in results] == [
            (True, "", ""),
            (False, "PROPERTY_TYPE_MISMATCH", "properties[0].value"),
            (True, "", ""),
        ]

    async def test_a_refused_event_fixes_no_type(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        """An event refused for one property stores none: the new property it also named
        is free for the next event to give its own type."""

        results = await track(
            stub,
            site,
            event(clock, properties=[prop("amount", 10)]),
            event(clock, properties=[prop("size", "L"), prop("amount", "ten")]),
            event(clock, properties=[prop("size", 42)]),
            event(clock, properties=[prop("size", "XL")]),
        )
        assert [(r.ok, r.reason, r.field) for r in results] == [
            (True, "", ""),
            (False, "PROPERTY_TYPE_MISMATCH", "properties[1].value"),
            (True, "", ""),
            (False, "PROPERTY_TYPE_MISMATCH", "properties[0].value"),
        ]

    async def test_reserved_event_id_refused(
        self, stub: Stub, site: Site, clock: FrozenClock
    ) -> None:
        results = await track(stub, site, event(clock, event_id="clarion:subscribed:x"))
        assert results[0].reason == "RESERVED_EVENT_ID"

    async def test_system_events_take_only_clarion_ids_and_are_stored_once(
        self, channel, site: Site, clock: FrozenClock, settings: Settings
    ) -> None:
        internal_stub = internal_pb_grpc.SegmentInternalServiceStub(channel)
        request = internal_pb.TrackSystemEventsRequest(
            events=[
                event(clock, event_id="clarion:engagement:clicked:r:s", name="Notification Clicked"),
                event(clock, event_id="site-own-id"),
            ]
        )
        first = await internal_stub.TrackSystemEvents(request, metadata=internal(settings, site))
        second = await internal_stub.TrackSystemEvents(request, metadata=internal(settings, site))

        assert [(r.ok, r.duplicate, r.reason) for r in first.results] == [
            (True, False, ""),
            (False, False, "RESERVED_EVENT_ID"),
        ]
        assert (second.results[0].ok, second.results[0].duplicate) == (True, True)
        assert [e[0] for e in await stored_events(settings, site)] == [
            "clarion:engagement:clicked:r:s"
        ]

    async def test_batch_of_10000_accepted(
        self, stub: Stub, site: Site, clock: FrozenClock, settings: Settings
    ) -> None:
        batch = [
            event(clock, properties=[profile_pb2.Property(name="n", value=value(i))])
            for i in range(10000)
        ]
        results = await track(stub, site, *batch)
        assert all(r.ok and not r.duplicate for r in results)
        assert len(results) == 10000
        assert len(await stored_events(settings, site)) == 10000


class TestIdentifyMovesEvents:
    async def test_anonymous_events_move_to_the_profile_once(
        self, stub: Stub, site: Site, clock: FrozenClock, settings: Settings
    ) -> None:
        subscriber = await register(stub, site)
        sid = subscriber.subscriber_id
        await track(stub, site, event(clock, event_id="anon", profile_id="", subscriber_id=sid))
        await track(stub, site, event(clock, event_id="known", profile_id="p0", subscriber_id=sid))
        first, second = new_profile_id(), new_profile_id()

        response = await stub.Identify(
            pb.IdentifyRequest(subscriber_id=sid, profile_id=first), metadata=site.metadata
        )
        # The anonymous event and the Subscribed one (recorded without a profile).
        assert response.attributed_events == 2
        await stub.Identify(
            pb.IdentifyRequest(subscriber_id=sid, profile_id=second), metadata=site.metadata
        )

        by_id = {row[0]: row for row in await stored_events(settings, site)}
        assert by_id["anon"][2] == first  # stays with the first profile
        assert by_id["known"][2] == "p0"
        assert list(
            (
                await stub.GetProfile(
                    pb.GetProfileRequest(profile_id=second), metadata=site.metadata
                )
            ).profile.subscriber_ids
        ) == [sid]

    async def test_a_subscribers_later_events_belong_to_its_profile(
        self, stub: Stub, site: Site, clock: FrozenClock, settings: Settings
    ) -> None:
        identified = (await register(stub, site)).subscriber_id
        anonymous = (await register(stub, site)).subscriber_id
        profile_id = new_profile_id()
        await stub.Identify(
            pb.IdentifyRequest(subscriber_id=identified, profile_id=profile_id),
            metadata=site.metadata,
        )

        await track(
            stub,
            site,
            event(clock, event_id="after", profile_id="", subscriber_id=identified),
            event(clock, event_id="own", profile_id="p0", subscriber_id=identified),
            event(clock, event_id="nobody", profile_id="", subscriber_id=anonymous),
        )

        by_id = {row[0]: row for row in await stored_events(settings, site)}
        assert by_id["after"][2] == profile_id
        assert by_id["own"][2] == "p0"  # a profile the event names is kept
        assert by_id["nobody"][2] is None


class TestSystemEvents:
    async def test_subscribed_once_and_unsubscribed_once(
        self, stub: Stub, site: Site, clock: FrozenClock, settings: Settings
    ) -> None:
        request = register_request(profile_id="user-9")
        created = (await stub.RegisterSubscriber(request, metadata=site.metadata)).subscriber
        await stub.RegisterSubscriber(request, metadata=site.metadata)  # a repeat
        await stub.BatchRegisterSubscribers(
            pb.BatchRegisterSubscribersRequest(requests=[request]), metadata=site.metadata
        )
        clock.advance(minutes=1)
        for _ in range(2):
            await stub.UnsubscribeSubscriber(
                pb.UnsubscribeSubscriberRequest(subscriber_id=created.subscriber_id),
                metadata=site.metadata,
            )

        events = await stored_events(settings, site)
        assert sorted(name for _, name, _, _ in events) == ["Subscribed", "Unsubscribed"]
        assert {(profile, sub) for _, _, profile, sub in events} == {
            ("user-9", created.subscriber_id)
        }
        profile = await stub.GetProfile(
            pb.GetProfileRequest(profile_id="user-9"), metadata=site.metadata
        )
        assert list(profile.profile.subscriber_ids) == [created.subscriber_id]

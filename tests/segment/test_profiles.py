"""UpsertProfiles, GetProfile and Identify: typed properties, per-item results, site scope."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import grpc

from clarion.segment.v1 import profile_pb2
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from tests.segment.helpers import Site, expect_error, register

Stub = pb_grpc.SegmentServiceStub


def new_profile_id() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def value(v: Any) -> profile_pb2.PropertyValue:
    if isinstance(v, bool):
        return profile_pb2.PropertyValue(bool_value=v)
    if isinstance(v, int | float):
        return profile_pb2.PropertyValue(number_value=v)
    if isinstance(v, str):
        return profile_pb2.PropertyValue(string_value=v)
    if isinstance(v, datetime):
        out = profile_pb2.PropertyValue()
        out.timestamp_value.FromDatetime(v)
        return out
    return profile_pb2.PropertyValue(string_list_value=profile_pb2.StringList(values=list(v)))


def set_(name: str, v: Any) -> profile_pb2.PropertyOperation:
    return profile_pb2.PropertyOperation(name=name, set=value(v))


def update(profile_id: str, *operations: profile_pb2.PropertyOperation, **kw: Any) -> Any:
    return profile_pb2.ProfileUpdate(profile_id=profile_id, operations=operations, **kw)


async def upsert(stub: Stub, site: Site, *updates: Any) -> list[profile_pb2.ItemResult]:
    response = await stub.UpsertProfiles(
        pb.UpsertProfilesRequest(updates=updates), metadata=site.metadata
    )
    return list(response.results)


async def get_profile(stub: Stub, site: Site, profile_id: str) -> profile_pb2.Profile:
    response = await stub.GetProfile(
        pb.GetProfileRequest(profile_id=profile_id), metadata=site.metadata
    )
    return response.profile


def properties(profile: profile_pb2.Profile) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prop in profile.properties:
        kind = prop.value.WhichOneof("kind")
        if kind == "string_list_value":
            out[prop.name] = list(prop.value.string_list_value.values)
        elif kind == "timestamp_value":
            out[prop.name] = prop.value.timestamp_value.ToDatetime(tzinfo=UTC)
        else:
            out[prop.name] = getattr(prop.value, kind)
    return out


class TestUpsertProfiles:
    async def test_set_unset_increment_append(self, stub: Stub, site: Site) -> None:
        profile_id = new_profile_id()
        signup = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        results = await upsert(
            stub,
            site,
            update(
                profile_id,
                set_("plan", "pro"),
                set_("score", 2),
                set_("vip", True),
                set_("signed up", signup),
                set_("tags", ["a"]),
                set_("temp", "x"),
                test_profile=True,
            ),
        )
        assert [r.ok for r in results] == [True]

        results = await upsert(
            stub,
            site,
            update(
                profile_id,
                profile_pb2.PropertyOperation(name="score", increment=1.5),
                profile_pb2.PropertyOperation(name="visits", increment=1),
                profile_pb2.PropertyOperation(
                    name="tags", append=profile_pb2.StringList(values=["b", "c"])
                ),
                profile_pb2.PropertyOperation(name="temp", unset=True),
            ),
        )
        assert results[0].ok, results[0]

        profile = await get_profile(stub, site, profile_id)
        assert properties(profile) == {
            "plan": "pro",
            "score": 3.5,
            "visits": 1,
            "vip": True,
            "signed up": signup,
            "tags": ["a", "b", "c"],
        }
        assert profile.test_profile  # kept: the second update did not say

    async def test_type_mismatch_names_the_field_and_the_rest_is_stored(
        self, stub: Stub, site: Site
    ) -> None:
        first, second, third = new_profile_id(), new_profile_id(), new_profile_id()
        await upsert(stub, site, update(first, set_("age", 30)))

        results = await upsert(
            stub,
            site,
            update(second, set_("age", 31)),
            update(third, set_("city", "Oslo"), set_("age", "old")),
            update(third, profile_pb2.PropertyOperation(name="city", increment=1)),
        )

        assert results[0].ok
        assert not results[1].ok
        assert results[1].reason == "PROPERTY_TYPE_MISMATCH"
        assert results[1].field == "operations[1].set"
        # The refused item left nothing: not even its good first operation, and "city"
        # got no type from it, so the third item fixes it as a number.
        assert results[2].ok
        assert properties(await get_profile(stub, site, second)) == {"age": 31}
        assert properties(await get_profile(stub, site, third)) == {"city": 1}

    async def test_invalid_items_are_refused_at_their_index(self, stub: Stub, site: Site) -> None:
        good = new_profile_id()
        results = await upsert(
            stub,
            site,
            update(""),
            update(new_profile_id(), set_("bad/name", 1)),
            update(good, set_("ok", 1)),
            update(new_profile_id(), profile_pb2.PropertyOperation(name="x")),
        )
        assert [(r.ok, r.reason, r.field) for r in results] == [
            (False, "MISSING_PROFILE_ID", "profile_id"),
            (False, "INVALID_PROPERTY_NAME", "operations[0].name"),
            (True, "", ""),
            (False, "MISSING_OPERATION", "operations[0]"),
        ]
        await get_profile(stub, site, good)

    async def test_more_than_100_properties_refused(self, stub: Stub, site: Site) -> None:
        profile_id = new_profile_id()
        assert (
            await upsert(stub, site, update(profile_id, *[set_(f"p{i}", i) for i in range(100)]))
        )[0].ok
        results = await upsert(stub, site, update(profile_id, set_("one more", 1)))
        assert results[0].reason == "TOO_MANY_PROPERTIES"

    async def test_batch_over_1000_refused(self, stub: Stub, site: Site) -> None:
        await expect_error(
            stub.UpsertProfiles(
                pb.UpsertProfilesRequest(updates=[update("x")] * 1001), metadata=site.metadata
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "BATCH_TOO_LARGE",
        )


class TestGetProfile:
    async def test_another_sites_profile_is_not_found(
        self, stub: Stub, site: Site, other_site: Site
    ) -> None:
        profile_id = new_profile_id()
        await upsert(stub, site, update(profile_id, set_("a", 1)))
        await expect_error(
            get_profile(stub, other_site, profile_id),
            grpc.StatusCode.NOT_FOUND,
            "PROFILE_NOT_FOUND",
        )

    async def test_types_are_per_site(self, stub: Stub, site: Site, other_site: Site) -> None:
        await upsert(stub, site, update(new_profile_id(), set_("age", 1)))
        results = await upsert(stub, other_site, update(new_profile_id(), set_("age", "x")))
        assert results[0].ok


class TestIdentify:
    async def test_attaches_the_subscriber_and_creates_the_profile(
        self, stub: Stub, site: Site
    ) -> None:
        subscriber = await register(stub, site)
        profile_id = new_profile_id()

        response = await stub.Identify(
            pb.IdentifyRequest(subscriber_id=subscriber.subscriber_id, profile_id=profile_id),
            metadata=site.metadata,
        )

        assert list(response.profile.subscriber_ids) == [subscriber.subscriber_id]
        stored = await stub.GetSubscriber(
            pb.GetSubscriberRequest(subscriber_id=subscriber.subscriber_id),
            metadata=site.metadata,
        )
        assert stored.subscriber.profile_id == profile_id
        assert list((await get_profile(stub, site, profile_id)).subscriber_ids) == [
            subscriber.subscriber_id
        ]

    async def test_unknown_subscriber_is_not_found(
        self, stub: Stub, site: Site, other_site: Site
    ) -> None:
        subscriber = await register(stub, other_site)
        await expect_error(
            stub.Identify(
                pb.IdentifyRequest(subscriber_id=subscriber.subscriber_id, profile_id="u1"),
                metadata=site.metadata,
            ),
            grpc.StatusCode.NOT_FOUND,
            "SUBSCRIBER_NOT_FOUND",
        )

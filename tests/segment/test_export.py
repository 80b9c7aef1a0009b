"""ExportAudience: who an audience selects now, streamed in keyset pages."""

from __future__ import annotations

import grpc
import pytest

from clarion.segment.v1 import segment_pb2
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.segment import imports
from tests.segment.helpers import Site, register
from tests.segment.test_imports import stream_error
from tests.segment.test_profiles import set_, update, upsert
from tests.segment.test_reach import adhoc, city_in

Stub = pb_grpc.SegmentServiceStub


async def export(
    stub: Stub,
    site: Site,
    kind: int,
    audience: segment_pb2.AudienceSelector | None = None,
    include_unsubscribed: bool = False,
) -> list[pb.ExportAudienceResponse]:
    request = pb.ExportAudienceRequest(kind=kind, include_unsubscribed=include_unsubscribed)  # type: ignore[arg-type]
    if audience is not None:
        request.audience.CopyFrom(audience)
    return [page async for page in stub.ExportAudience(request, metadata=site.metadata)]


def subscriber_ids(pages: list[pb.ExportAudienceResponse]) -> list[str]:
    return [s.subscriber_id for page in pages for s in page.subscribers]


async def people(stub: Stub, site: Site) -> dict[str, str]:
    """Three subscribers with profiles in Paris, Lyon and none; one unsubscribed."""
    await upsert(
        stub, site, update("ana", set_("city", "Paris")), update("bob", set_("city", "Lyon"))
    )
    ana = await register(stub, site, profile_id="ana")
    bob = await register(stub, site, profile_id="bob")
    anonymous = await register(stub, site)
    gone = await register(stub, site, profile_id="ana")
    await stub.UnsubscribeSubscriber(
        pb.UnsubscribeSubscriberRequest(subscriber_id=gone.subscriber_id), metadata=site.metadata
    )
    return {
        "ana": ana.subscriber_id,
        "bob": bob.subscriber_id,
        "anonymous": anonymous.subscriber_id,
        "gone": gone.subscriber_id,
    }


class TestExportSubscribers:
    async def test_everyone_active_in_id_order(
        self, stub: Stub, site: Site, other_site: Site
    ) -> None:
        ids = await people(stub, site)
        await register(stub, other_site)
        pages = await export(stub, site, pb.EXPORT_KIND_SUBSCRIBERS)
        assert subscriber_ids(pages) == sorted([ids["ana"], ids["bob"], ids["anonymous"]])
        everyone = await export(stub, site, pb.EXPORT_KIND_SUBSCRIBERS, include_unsubscribed=True)
        assert subscriber_ids(everyone) == sorted(ids.values())
        first = pages[0].subscribers[0]
        assert first.push_subscription.endpoint and len(first.push_subscription.p256dh) == 65

    async def test_adhoc_definition_and_saved_segment(self, stub: Stub, site: Site) -> None:
        ids = await people(stub, site)
        pages = await export(stub, site, pb.EXPORT_KIND_SUBSCRIBERS, adhoc(city_in("Paris")))
        assert subscriber_ids(pages) == [ids["ana"]]
        saved = await stub.CreateSegment(
            pb.CreateSegmentRequest(
                segment=segment_pb2.Segment(
                    display_name="Lyon",
                    definition=segment_pb2.SegmentDefinition(condition=city_in("Lyon")),
                )
            ),
            metadata=site.metadata,
        )
        selector = segment_pb2.AudienceSelector(segment_id=saved.segment.segment_id)
        assert subscriber_ids(await export(stub, site, pb.EXPORT_KIND_SUBSCRIBERS, selector)) == [
            ids["bob"]
        ]

    async def test_pages_are_keyset(
        self, stub: Stub, site: Site, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(imports, "EXPORT_PAGE_SIZE", 2)
        registered = sorted([(await register(stub, site)).subscriber_id for _ in range(5)])
        pages = await export(stub, site, pb.EXPORT_KIND_SUBSCRIBERS)
        assert [len(page.subscribers) for page in pages] == [2, 2, 1]
        assert subscriber_ids(pages) == registered

    async def test_unknown_segment_and_kind(self, stub: Stub, site: Site) -> None:
        selector = segment_pb2.AudienceSelector(segment_id="seg_" + "0" * 32)
        call = stub.ExportAudience(
            pb.ExportAudienceRequest(kind=pb.EXPORT_KIND_SUBSCRIBERS, audience=selector),
            metadata=site.metadata,
        )
        await stream_error(call, grpc.StatusCode.NOT_FOUND, "SEGMENT_NOT_FOUND")
        call = stub.ExportAudience(pb.ExportAudienceRequest(), metadata=site.metadata)
        await stream_error(call, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EXPORT_KIND")

    async def test_unauthenticated(self, stub: Stub) -> None:
        call = stub.ExportAudience(
            pb.ExportAudienceRequest(kind=pb.EXPORT_KIND_SUBSCRIBERS),
            metadata=(("authorization", "Bearer ck_nope"),),
        )
        await stream_error(call, grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY")


class TestExportProfiles:
    async def test_profiles_with_properties(
        self, stub: Stub, site: Site, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(imports, "EXPORT_PAGE_SIZE", 1)
        ids = await people(stub, site)
        await upsert(stub, site, update("cy", set_("city", "Paris"), set_("age", 40)))
        pages = await export(stub, site, pb.EXPORT_KIND_PROFILES)
        profiles = [p for page in pages for p in page.profiles]
        assert [p.profile_id for p in profiles] == ["ana", "bob", "cy"]
        ana = profiles[0]
        assert {p.name: p.value.string_value for p in ana.properties} == {"city": "Paris"}
        assert sorted(ana.subscriber_ids) == sorted([ids["ana"], ids["gone"]])
        paris = await export(stub, site, pb.EXPORT_KIND_PROFILES, adhoc(city_in("Paris")))
        assert [p.profile_id for page in paris for p in page.profiles] == ["ana", "cy"]
        cy = [p for page in paris for p in page.profiles][1]
        assert {p.name for p in cy.properties} == {"age", "city"}

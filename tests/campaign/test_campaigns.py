"""Campaigns through the real server: create (idempotent), get, list, update, validation,
site isolation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2_grpc
from clarion.campaign.v1 import campaign_service_pb2 as pb
from clarion.common.v1 import common_pb2
from services.campaign.admin import CreatedSite
from services.campaign.domain.content import (
    MAX_SHARED_PAYLOAD_BYTES,
    PLACEHOLDER_RUN_ID,
    render_payload,
)
from tests.campaign.helpers import field, reason
from tests.support.sites import bearer

Stub = campaign_service_pb2_grpc.CampaignServiceStub
Metadata = tuple[tuple[str, str], ...]
NewSite = Callable[..., Awaitable[CreatedSite]]
FOUR_WEEKS = 2419200
# Campaign ids are as long as this one (new_id: a prefix and 32 hex digits).
SOME_CAMPAIGN_ID = "cmp_" + "0" * 32
# Site ids are too (new_id("site")); every payload names its site.
SOME_SITE_ID = "site_" + "0" * 32


def payload_size(**notification: str) -> int:
    """Bytes of JSON the notification's push message carries, as validation counts them."""
    rendered = render_payload(
        common_pb2.Notification(**notification),
        SOME_CAMPAIGN_ID,
        PLACEHOLDER_RUN_ID,
        site_id=SOME_SITE_ID,
    )
    return len(rendered)


def request(title: str = "Spring sale", **fields: object) -> pb.CreateCampaignRequest:
    """A campaign for every subscriber; its click leads to the shop unless `target_url`
    says otherwise (Safari may be among them, which needs one)."""
    fields.setdefault("target_url", "https://shop.example/")
    notification = {
        key: fields.pop(key)
        for key in ("body", "icon_url", "image_url", "target_url")
        if key in fields
    }
    return pb.CreateCampaignRequest(
        notification=common_pb2.Notification(title=title, **notification),  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )


async def list_all(
    stub: Stub, auth: Metadata, page_size: int = 0
) -> list[pb.ListCampaignsResponse]:
    pages, token = [], ""
    while True:
        page = await stub.ListCampaigns(
            pb.ListCampaignsRequest(page_size=page_size, page_token=token), metadata=auth
        )
        pages.append(page)
        token = page.next_page_token
        if not token:
            return pages


class TestCreateCampaign:
    async def test_stores_the_notification_with_defaults(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = (
            await campaigns_stub.CreateCampaign(
                request("Spring sale", body="20% off", target_url="https://shop.example/sale"),
                metadata=auth,
            )
        ).campaign

        assert created.campaign_id.startswith("cmp_")
        assert created.name == "Spring sale"  # the title when no name is given
        assert created.notification.body == "20% off"
        assert created.ttl_seconds == FOUR_WEEKS
        assert created.urgency == common_pb2.URGENCY_NORMAL
        fetched = await campaigns_stub.GetCampaign(
            pb.GetCampaignRequest(campaign_id=created.campaign_id), metadata=auth
        )
        assert fetched.campaign == created

    async def test_keeps_given_name_ttl_and_urgency(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = (
            await campaigns_stub.CreateCampaign(
                request(name="Flash", ttl_seconds=3600, urgency=common_pb2.URGENCY_HIGH),
                metadata=auth,
            )
        ).campaign

        assert (created.name, created.ttl_seconds, created.urgency) == (
            "Flash",
            3600,
            common_pb2.URGENCY_HIGH,
        )

    async def test_accepts_a_payload_exactly_at_the_limit_and_refuses_one_byte_more(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        # Each field within its own limit, together exactly filling what a push message
        # leaves for the shared payload.
        title, body = "t" * 256, "b" * 1024
        icon = "https://e.example/" + "i" * (2048 - len("https://e.example/"))
        url = "https://e.example/"
        url += "u" * (
            MAX_SHARED_PAYLOAD_BYTES
            - payload_size(title=title, body=body, icon_url=icon, target_url=url)
        )
        assert payload_size(title=title, body=body, icon_url=icon, target_url=url) == (
            MAX_SHARED_PAYLOAD_BYTES
        )

        created = await campaigns_stub.CreateCampaign(
            request(title, body=body, icon_url=icon, target_url=url), metadata=auth
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.CreateCampaign(
                request(title, body=body, icon_url=icon, target_url=url + "u"), metadata=auth
            )

        assert created.campaign.notification.target_url == url
        assert reason(raised.value) == "PAYLOAD_TOO_LARGE"
        assert field(raised.value) == "notification"

    @pytest.mark.parametrize(
        ("fields", "expected_reason", "expected_field"),
        [
            ({"title": ""}, "MISSING_TITLE", "notification.title"),
            ({"title": "   "}, "MISSING_TITLE", "notification.title"),
            ({"title": "t" * 257}, "INVALID_TITLE", "notification.title"),
            ({"body": "b" * 1025}, "INVALID_BODY", "notification.body"),
            ({"name": "n" * 201}, "INVALID_NAME", "name"),
            ({"target_url": "shop.example/sale"}, "INVALID_URL", "notification.target_url"),
            ({"icon_url": "ftp://shop.example/i.png"}, "INVALID_URL", "notification.icon_url"),
            ({"image_url": "javascript:alert(1)"}, "INVALID_URL", "notification.image_url"),
            ({"target_url": "https:///nohost"}, "INVALID_URL", "notification.target_url"),
            (
                {"target_url": "https://a.example/" + "x" * 2040},
                "INVALID_URL",
                "notification.target_url",
            ),
            ({"ttl_seconds": -1}, "INVALID_TTL", "ttl_seconds"),
            ({"ttl_seconds": FOUR_WEEKS + 1}, "INVALID_TTL", "ttl_seconds"),
            ({"urgency": 42}, "INVALID_URGENCY", "urgency"),
        ],
    )
    async def test_bad_input_is_refused_and_nothing_stored(
        self,
        campaigns_stub: Stub,
        auth: Metadata,
        fields: dict[str, object],
        expected_reason: str,
        expected_field: str,
    ) -> None:
        fields = dict(fields)
        title = str(fields.pop("title", "Spring sale"))

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.CreateCampaign(request(title, **fields), metadata=auth)

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == expected_reason
        assert field(raised.value) == expected_field
        listed = await campaigns_stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=auth)
        assert list(listed.campaigns) == []

    async def test_an_oversized_payload_names_its_size_and_the_limit(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        # Every field is within its own limit; together they do not fit one push message.
        long_url = "https://shop.example/" + "p" * 1000
        oversized = request(
            "T" * 256, body="B" * 1024, icon_url=long_url, image_url=long_url, target_url=long_url
        )

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.CreateCampaign(oversized, metadata=auth)

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "PAYLOAD_TOO_LARGE"
        details = raised.value.details() or ""
        assert str(MAX_SHARED_PAYLOAD_BYTES) in details
        expected_size = payload_size(
            title="T" * 256,
            body="B" * 1024,
            icon_url=long_url,
            image_url=long_url,
            target_url=long_url,
        )
        assert str(expected_size) in details
        listed = await campaigns_stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=auth)
        assert list(listed.campaigns) == []

    async def test_multibyte_text_counts_in_utf8_bytes(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        # 1024 characters of 4 bytes each: within the body limit, beyond the payload limit.
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.CreateCampaign(request("Hi", body="🎉" * 1024), metadata=auth)

        assert reason(raised.value) == "PAYLOAD_TOO_LARGE"


class TestCreateCampaignRequestId:
    async def test_a_repeat_returns_the_first_campaign_and_stores_one(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        first = await campaigns_stub.CreateCampaign(
            request("Spring sale", request_id="create-1"), metadata=auth
        )
        # A retry after a lost answer.
        repeat = await campaigns_stub.CreateCampaign(
            request("Spring sale", request_id="create-1"), metadata=auth
        )

        assert repeat.campaign == first.campaign
        listed = await campaigns_stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=auth)
        assert [c.campaign_id for c in listed.campaigns] == [first.campaign.campaign_id]

    async def test_the_same_request_id_with_another_body_is_refused_and_stores_nothing(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        first = await campaigns_stub.CreateCampaign(
            request("Spring sale", request_id="create-2"), metadata=auth
        )

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await campaigns_stub.CreateCampaign(
                request("Spring sale, again", request_id="create-2"), metadata=auth
            )

        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(refused.value) == "REQUEST_ID_REUSED"
        assert field(refused.value) == "request_id"
        assert first.campaign.campaign_id in refused.value.details()
        listed = await campaigns_stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=auth)
        assert [c.campaign_id for c in listed.campaigns].count(first.campaign.campaign_id) == 1
        assert all(c.notification.title != "Spring sale, again" for c in listed.campaigns)

    async def test_different_request_ids_make_different_campaigns(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        first = await campaigns_stub.CreateCampaign(request(request_id="a"), metadata=auth)
        second = await campaigns_stub.CreateCampaign(request(request_id="b"), metadata=auth)
        third = await campaigns_stub.CreateCampaign(request(), metadata=auth)
        fourth = await campaigns_stub.CreateCampaign(request(), metadata=auth)

        ids = {c.campaign.campaign_id for c in (first, second, third, fourth)}
        assert len(ids) == 4
        listed = await campaigns_stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=auth)
        assert {c.campaign_id for c in listed.campaigns} == ids

    async def test_concurrent_repeats_store_one_campaign(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = await asyncio.gather(
            *(
                campaigns_stub.CreateCampaign(request(request_id="burst"), metadata=auth)
                for _ in range(5)
            )
        )

        assert len({c.campaign.campaign_id for c in created}) == 1
        listed = await campaigns_stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=auth)
        assert len(listed.campaigns) == 1

    async def test_the_same_request_id_in_another_site_is_another_campaign(
        self, campaigns_stub: Stub, auth: Metadata, new_site: NewSite
    ) -> None:
        other = await new_site("Other")

        mine = await campaigns_stub.CreateCampaign(request(request_id="shared"), metadata=auth)
        theirs = await campaigns_stub.CreateCampaign(
            request(request_id="shared"), metadata=bearer(other.api_key)
        )

        assert mine.campaign.campaign_id != theirs.campaign.campaign_id

    async def test_a_request_id_over_128_characters_is_refused(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        accepted = await campaigns_stub.CreateCampaign(request(request_id="r" * 128), metadata=auth)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.CreateCampaign(request(request_id="r" * 129), metadata=auth)

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "INVALID_REQUEST_ID"
        assert field(raised.value) == "request_id"
        listed = await campaigns_stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=auth)
        assert [c.campaign_id for c in listed.campaigns] == [accepted.campaign.campaign_id]


class TestRenderPayload:
    def test_is_compact_utf8_json_without_empty_values(self) -> None:
        payload = render_payload(
            common_pb2.Notification(title="Grüße", body="", target_url="https://a.example/"),
            "cmp_1",
            "run_2",
            site_id="shop",
        )

        assert payload == (
            '{"title":"Grüße","url":"https://a.example/","campaign_id":"cmp_1","run_id":"run_2",'
            '"site_id":"shop","version":1}'
        ).encode()
        assert json.loads(payload)["title"] == "Grüße"


class TestGetCampaign:
    async def test_another_sites_campaign_is_not_found(
        self, campaigns_stub: Stub, auth: Metadata, new_site
    ) -> None:
        created = (await campaigns_stub.CreateCampaign(request(), metadata=auth)).campaign
        other: CreatedSite = await new_site("Other")

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.GetCampaign(
                pb.GetCampaignRequest(campaign_id=created.campaign_id),
                metadata=bearer(other.api_key),
            )

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(raised.value) == "CAMPAIGN_NOT_FOUND"

    async def test_an_unknown_campaign_is_not_found(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.GetCampaign(
                pb.GetCampaignRequest(campaign_id="cmp_missing"), metadata=auth
            )

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(raised.value) == "CAMPAIGN_NOT_FOUND"

    async def test_a_missing_campaign_id_is_invalid(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.GetCampaign(pb.GetCampaignRequest(), metadata=auth)

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "MISSING_CAMPAIGN_ID"
        assert field(raised.value) == "campaign_id"


class TestListCampaigns:
    async def test_pages_through_every_campaign_once_in_creation_order(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        ids = [
            (
                await campaigns_stub.CreateCampaign(request(f"c{i}"), metadata=auth)
            ).campaign.campaign_id
            for i in range(7)
        ]

        pages = await list_all(campaigns_stub, auth, page_size=3)

        assert [len(page.campaigns) for page in pages] == [3, 3, 1]
        assert [c.campaign_id for page in pages for c in page.campaigns] == ids

    async def test_a_full_last_page_ends_with_an_empty_token(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        for i in range(4):
            await campaigns_stub.CreateCampaign(request(f"c{i}"), metadata=auth)

        pages = await list_all(campaigns_stub, auth, page_size=2)

        assert [len(page.campaigns) for page in pages] == [2, 2]

    async def test_lists_only_the_callers_site(
        self, campaigns_stub: Stub, auth: Metadata, new_site
    ) -> None:
        await campaigns_stub.CreateCampaign(request(), metadata=auth)
        other: CreatedSite = await new_site("Other")

        listed = await campaigns_stub.ListCampaigns(
            pb.ListCampaignsRequest(), metadata=bearer(other.api_key)
        )

        assert list(listed.campaigns) == []
        assert listed.next_page_token == ""

    @pytest.mark.parametrize("token", ["not-a-token", "eyJ4IjoxfQ", "%%%"])
    async def test_a_malformed_token_is_invalid(
        self, campaigns_stub: Stub, auth: Metadata, token: str
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.ListCampaigns(
                pb.ListCampaignsRequest(page_token=token), metadata=auth
            )

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "INVALID_PAGE_TOKEN"

    async def test_a_negative_page_size_is_invalid(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns_stub.ListCampaigns(pb.ListCampaignsRequest(page_size=-1), metadata=auth)

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


ORIGINAL = {
    "name": "Original",
    "title": "Original title",
    "body": "Original body",
    "target_url": "https://shop.example/original",
    "ttl_seconds": 3600,
    "urgency": common_pb2.URGENCY_LOW,
}


async def original(stub: Stub, auth: Metadata) -> campaign_pb2.Campaign:
    fields = dict(ORIGINAL)
    title = str(fields.pop("title"))
    return (await stub.CreateCampaign(request(title, **fields), metadata=auth)).campaign


async def update(
    stub: Stub, auth: Metadata, campaign_id: str, paths: list[str], **fields: object
) -> campaign_pb2.Campaign:
    notification = fields.pop("notification", None)
    response = await stub.UpdateCampaign(
        pb.UpdateCampaignRequest(
            campaign=campaign_pb2.Campaign(
                campaign_id=campaign_id,
                notification=notification,  # type: ignore[arg-type]
                **fields,  # type: ignore[arg-type]
            ),
            update_mask=FieldMask(paths=paths),
        ),
        metadata=auth,
    )
    return response.campaign


async def fetch(stub: Stub, auth: Metadata, campaign_id: str) -> campaign_pb2.Campaign:
    response = await stub.GetCampaign(pb.GetCampaignRequest(campaign_id=campaign_id), metadata=auth)
    return response.campaign


class TestUpdateCampaign:
    async def test_changes_the_named_fields_and_keeps_the_rest(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        before = await original(campaigns_stub, auth)

        updated = await update(
            campaigns_stub,
            auth,
            before.campaign_id,
            ["name", "notification.title", "ttl_seconds", "urgency"],
            name="Renamed",
            # Only the title is named: the body given here is not taken.
            notification=common_pb2.Notification(title="New title", body="not this"),
            ttl_seconds=60,
            urgency=common_pb2.URGENCY_HIGH,
        )

        assert (updated.name, updated.ttl_seconds, updated.urgency) == (
            "Renamed",
            60,
            common_pb2.URGENCY_HIGH,
        )
        assert updated.notification.title == "New title"
        assert updated.notification.body == ORIGINAL["body"]
        assert updated.notification.target_url == ORIGINAL["target_url"]
        assert updated.create_time == before.create_time
        assert updated.update_time.ToDatetime() >= before.update_time.ToDatetime()
        assert await fetch(campaigns_stub, auth, before.campaign_id) == updated

    @pytest.mark.parametrize(
        ("path", "given", "changed"),
        [
            ("name", {"name": "Only the name"}, {"name": "Only the name"}),
            (
                "notification.title",
                {"notification": common_pb2.Notification(title="Only the title")},
                {"title": "Only the title"},
            ),
            ("ttl_seconds", {"ttl_seconds": 120}, {"ttl_seconds": 120}),
            # 0 means the default, as on create.
            ("ttl_seconds", {"ttl_seconds": 0}, {"ttl_seconds": FOUR_WEEKS}),
            (
                "urgency",
                {"urgency": common_pb2.URGENCY_VERY_LOW},
                {"urgency": common_pb2.URGENCY_VERY_LOW},
            ),
        ],
    )
    async def test_one_path_changes_that_field_only(
        self,
        campaigns_stub: Stub,
        auth: Metadata,
        path: str,
        given: dict[str, object],
        changed: dict[str, object],
    ) -> None:
        before = await original(campaigns_stub, auth)

        updated = await update(campaigns_stub, auth, before.campaign_id, [path], **given)

        expected = {
            "name": before.name,
            "title": before.notification.title,
            "body": before.notification.body,
            "target_url": before.notification.target_url,
            "ttl_seconds": before.ttl_seconds,
            "urgency": before.urgency,
        } | changed
        assert {
            "name": updated.name,
            "title": updated.notification.title,
            "body": updated.notification.body,
            "target_url": updated.notification.target_url,
            "ttl_seconds": updated.ttl_seconds,
            "urgency": updated.urgency,
        } == expected

    async def test_the_notification_path_replaces_the_whole_notification(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        before = await original(campaigns_stub, auth)

        updated = await update(
            campaigns_stub,
            auth,
            before.campaign_id,
            ["notification"],
            notification=common_pb2.Notification(title="Fresh", target_url="https://b.example/"),
        )

        assert updated.notification == common_pb2.Notification(
            title="Fresh", target_url="https://b.example/"
        )
        assert updated.name == before.name

    async def test_a_cleared_name_falls_back_to_the_title(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        before = await original(campaigns_stub, auth)

        updated = await update(campaigns_stub, auth, before.campaign_id, ["name"], name="")

        assert updated.name == ORIGINAL["title"]

    async def test_an_empty_mask_is_refused(self, campaigns_stub: Stub, auth: Metadata) -> None:
        before = await original(campaigns_stub, auth)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await update(campaigns_stub, auth, before.campaign_id, [], name="Renamed")

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "MISSING_UPDATE_MASK"
        assert field(raised.value) == "update_mask"
        assert await fetch(campaigns_stub, auth, before.campaign_id) == before

    @pytest.mark.parametrize(
        "path", ["title", "campaign_id", "create_time", "notification.colour", "notification.", ""]
    )
    async def test_an_unknown_path_is_refused_and_nothing_changes(
        self, campaigns_stub: Stub, auth: Metadata, path: str
    ) -> None:
        before = await original(campaigns_stub, auth)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            # A valid path alongside: nothing of the request is applied.
            await update(campaigns_stub, auth, before.campaign_id, ["name", path], name="Renamed")

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "INVALID_UPDATE_MASK"
        assert field(raised.value) == "update_mask"
        assert path in (raised.value.details() or "")
        assert await fetch(campaigns_stub, auth, before.campaign_id) == before

    @pytest.mark.parametrize(
        ("path", "given", "expected_reason", "expected_field"),
        [
            (
                "notification.title",
                {"notification": common_pb2.Notification(title=" ")},
                "MISSING_TITLE",
                "notification.title",
            ),
            (
                "notification",
                {"notification": common_pb2.Notification(body="no title")},
                "MISSING_TITLE",
                "notification.title",
            ),
            (
                "notification.target_url",
                {"notification": common_pb2.Notification(target_url="ftp://shop.example/")},
                "INVALID_URL",
                "notification.target_url",
            ),
            (
                "notification.body",
                {"notification": common_pb2.Notification(body="🎉" * 1024)},
                "PAYLOAD_TOO_LARGE",
                "notification",
            ),
            ("name", {"name": "n" * 201}, "INVALID_NAME", "name"),
            ("ttl_seconds", {"ttl_seconds": -1}, "INVALID_TTL", "ttl_seconds"),
            ("ttl_seconds", {"ttl_seconds": FOUR_WEEKS + 1}, "INVALID_TTL", "ttl_seconds"),
            # Refused at the edge, which names the field by its path in the request.
            ("urgency", {"urgency": 42}, "INVALID_URGENCY", "campaign.urgency"),
        ],
    )
    async def test_an_invalid_new_value_is_refused_and_nothing_changes(
        self,
        campaigns_stub: Stub,
        auth: Metadata,
        path: str,
        given: dict[str, object],
        expected_reason: str,
        expected_field: str,
    ) -> None:
        before = await original(campaigns_stub, auth)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await update(campaigns_stub, auth, before.campaign_id, [path], **given)

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == expected_reason
        assert field(raised.value) == expected_field
        assert await fetch(campaigns_stub, auth, before.campaign_id) == before

    async def test_another_sites_campaign_is_not_found_and_unchanged(
        self, campaigns_stub: Stub, auth: Metadata, new_site: NewSite
    ) -> None:
        before = await original(campaigns_stub, auth)
        other = await new_site("Other")

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await update(
                campaigns_stub, bearer(other.api_key), before.campaign_id, ["name"], name="Mine"
            )

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(raised.value) == "CAMPAIGN_NOT_FOUND"
        assert await fetch(campaigns_stub, auth, before.campaign_id) == before

    async def test_a_missing_campaign_id_is_invalid(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await update(campaigns_stub, auth, "", ["name"], name="Renamed")

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "MISSING_CAMPAIGN_ID"

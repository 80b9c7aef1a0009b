"""Campaigns through the real server: create, get, list, validation, site isolation."""

from __future__ import annotations

import json

import grpc
import pytest

from clarion.campaign.v1 import campaign_service_pb2 as pb
from clarion.campaign.v1 import campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from services.campaign.admin import CreatedSite
from services.campaign.domain import MAX_PAYLOAD_BYTES, push_payload
from services.campaign.store import Notification
from tests.campaign.helpers import field, reason
from tests.support.sites import bearer

Stub = campaign_service_pb2_grpc.CampaignServiceStub
Metadata = tuple[tuple[str, str], ...]
FOUR_WEEKS = 2419200


def request(title: str = "Spring sale", **fields: object) -> pb.CreateCampaignRequest:
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

    async def test_accepts_a_payload_exactly_at_the_limit(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        # Each field within its own limit, together exactly filling one push message.
        title, body = "t" * 256, "b" * 1024
        icon = "https://e.example/" + "i" * (2048 - len("https://e.example/"))
        run_id = "run_" + "0" * 32
        base = len(push_payload(Notification(title, body, icon), "cmp_" + "0" * 32, run_id))
        url = "https://e.example/"
        url += "u" * (MAX_PAYLOAD_BYTES - base - len(',"url":""') - len(url))

        created = await campaigns_stub.CreateCampaign(
            request(title, body=body, icon_url=icon, target_url=url), metadata=auth
        )

        payload = push_payload(
            Notification(title, body, icon, target_url=url), created.campaign.campaign_id, run_id
        )
        assert len(payload) == MAX_PAYLOAD_BYTES

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
        assert str(MAX_PAYLOAD_BYTES) in details
        expected_size = len(
            push_payload(
                Notification("T" * 256, "B" * 1024, long_url, long_url, long_url),
                "cmp_" + "0" * 32,
                "run_" + "0" * 32,
            )
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


class TestPushPayload:
    def test_is_compact_utf8_json_without_empty_values(self) -> None:
        payload = push_payload(
            Notification(title="Grüße", body="", target_url="https://a.example/"), "cmp_1", "run_2"
        )

        assert (
            payload
            == '{"title":"Grüße","url":"https://a.example/","campaign_id":"cmp_1","run_id":"run_2"}'.encode()
        )
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

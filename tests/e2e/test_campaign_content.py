"""A campaign's content checked for the browsers its audience may include, through the
whole platform: segment says which browsers an audience leaves possible, campaign
refuses a campaign without a deeplink when Safari may be among them (and accepts one
restricted to Chrome), and warns about what Safari will not show. The CLI reads the new
campaign file keys, lists by label and says the policy in words."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from clarion.segment.v1 import (
    profile_pb2,
    segment_pb2,
    segment_service_pb2,
    segment_service_pb2_grpc,
)
from services.campaign.admin import create_site
from services.kit.errors import error_info
from services.kit.grpcserver import client_channel
from tests.e2e.test_cli_remote import clarion
from tests.support.sites import bearer

SHOP = "https://shop.example/"
ICON = SHOP + "icon.png"


def definition(condition: segment_pb2.Condition) -> segment_pb2.AudienceSelector:
    return segment_pb2.AudienceSelector(
        definition=segment_pb2.SegmentDefinition(condition=condition)
    )


def on(*browsers: int) -> segment_pb2.Condition:
    return segment_pb2.Condition(
        subscriber=segment_pb2.SubscriberCondition(browsers=browsers)  # type: ignore[arg-type]
    )


IN_PARIS = definition(
    segment_pb2.Condition(
        property=segment_pb2.PropertyCondition(
            name="city",
            operator=segment_pb2.PROPERTY_OPERATOR_EQUALS,
            values=[profile_pb2.PropertyValue(string_value="Paris")],
        )
    )
)
CHROME_ONLY = definition(on(common_pb2.BROWSER_CHROME))
CHROME_IN_PARIS = definition(
    segment_pb2.Condition(
        all=segment_pb2.ConditionGroup(
            conditions=[IN_PARIS.definition.condition, on(common_pb2.BROWSER_CHROME)]
        )
    )
)


class Api:
    def __init__(self, stack: EmbeddedStack, api_key: str) -> None:
        self.auth = bearer(api_key)
        self._channels = [
            client_channel(stack.address("campaign")),
            client_channel(stack.address("segment")),
        ]
        self.campaigns = campaign_service_pb2_grpc.CampaignServiceStub(self._channels[0])
        self.segments = segment_service_pb2_grpc.SegmentServiceStub(self._channels[1])

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def create(
        self, audience: segment_pb2.AudienceSelector | None, **notification: object
    ) -> campaign_service_pb2.CreateCampaignResponse:
        return await self.campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                notification=common_pb2.Notification(title="Hi", **notification),  # type: ignore[arg-type]
                audience=audience,
            ),
            metadata=self.auth,
            timeout=10,
        )

    async def list(self) -> list[campaign_pb2.Campaign]:
        response = await self.campaigns.ListCampaigns(
            campaign_service_pb2.ListCampaignsRequest(), metadata=self.auth, timeout=10
        )
        return list(response.campaigns)


@pytest.fixture
async def api(stack: EmbeddedStack) -> Api:
    site = await create_site(stack.settings, "Browsers", "mailto:ops@example.com")
    made = Api(stack, site.api_key)
    yield made  # type: ignore[misc]
    await made.close()


def reason_and_field(error: grpc.aio.AioRpcError) -> tuple[str, str]:
    info = error_info(error)
    assert info is not None, error
    return info.reason, info.metadata.get("field", "")


class TestTheDeeplinkFollowsTheAudience:
    @pytest.mark.parametrize("audience", [None, IN_PARIS], ids=["everyone", "in_paris"])
    async def test_an_audience_that_may_include_safari_needs_a_deeplink(
        self, api: Api, audience: segment_pb2.AudienceSelector | None
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await api.create(audience)

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason_and_field(raised.value) == ("MISSING_DEEPLINK", "notification.target_url")
        assert await api.list() == []

    async def test_a_saved_segment_that_may_include_safari_needs_one_too(self, api: Api) -> None:
        saved = await api.segments.CreateSegment(
            segment_service_pb2.CreateSegmentRequest(
                segment=segment_pb2.Segment(display_name="Paris", definition=IN_PARIS.definition)
            ),
            metadata=api.auth,
            timeout=10,
        )
        selector = segment_pb2.AudienceSelector(segment_id=saved.segment.segment_id)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await api.create(selector)

        assert reason_and_field(raised.value)[0] == "MISSING_DEEPLINK"

    @pytest.mark.parametrize("audience", [CHROME_ONLY, CHROME_IN_PARIS], ids=["chrome", "both"])
    async def test_an_audience_restricted_to_chrome_needs_none_and_drops_nothing(
        self, api: Api, audience: segment_pb2.AudienceSelector
    ) -> None:
        response = await api.create(audience, icon_url=ICON)

        assert list(response.warnings) == []
        assert response.campaign.audience == audience
        assert [c.campaign_id for c in await api.list()] == [response.campaign.campaign_id]

    async def test_widening_the_audience_of_a_campaign_without_one_is_refused(
        self, api: Api
    ) -> None:
        created = (await api.create(CHROME_ONLY)).campaign

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await api.campaigns.UpdateCampaign(
                campaign_service_pb2.UpdateCampaignRequest(
                    campaign=campaign_pb2.Campaign(
                        campaign_id=created.campaign_id, audience=IN_PARIS
                    ),
                    update_mask=FieldMask(paths=["audience"]),
                ),
                metadata=api.auth,
                timeout=10,
            )

        assert reason_and_field(raised.value)[0] == "MISSING_DEEPLINK"
        assert (await api.list())[0].audience == CHROME_ONLY

    async def test_a_listed_send_may_reach_any_browser(self, api: Api) -> None:
        created = (await api.create(CHROME_ONLY)).campaign

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await api.campaigns.SendCampaignNow(
                campaign_service_pb2.SendCampaignNowRequest(
                    campaign_id=created.campaign_id,
                    recipients=campaign_service_pb2.Recipients(profile_ids=["ana"]),
                ),
                metadata=api.auth,
                timeout=10,
            )
        to_audience = await api.campaigns.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=created.campaign_id),
            metadata=api.auth,
            timeout=10,
        )

        assert reason_and_field(raised.value)[0] == "MISSING_DEEPLINK"
        assert to_audience.run.run_id


class TestSafarisDroppedFields:
    async def test_an_audience_that_may_include_safari_is_warned_about_its_icon(
        self, api: Api
    ) -> None:
        response = await api.create(IN_PARIS, target_url=SHOP, icon_url=ICON)

        assert [(w.reason, w.field) for w in response.warnings] == [
            ("SAFARI_FIELDS_DROPPED", "notification.icon_url"),
            ("SAFARI_LEGACY_FIELDS_DROPPED", "notification.icon_url"),
        ]

    async def test_a_safari_only_audience_too(self, api: Api) -> None:
        safari = definition(on(common_pb2.BROWSER_SAFARI))

        response = await api.create(safari, target_url=SHOP, image_url=ICON)

        assert [(w.reason, w.field) for w in response.warnings] == [
            ("SAFARI_FIELDS_DROPPED", "notification.image_url")
        ]


CAMPAIGN_FILE = """\
name: Spring sale
notification:
  title: Hi {{ profile.first_name | default('there') }}
  target_url: https://shop.example/sale
  icon_url: https://shop.example/icon.png
  actions: [{title: Shop now, url: https://shop.example/now}]
personalization: {on_missing: use_text, missing_value_text: friend}
utm: {source: push, campaign: spring}
topic: spring-sale
labels: [spring, sale]
policy:
  ignore_frequency_cap: true
  quiet_hours: {start: '22:00', end: '07:00', action: discard}
  control_group_percent: 10
"""


class TestTheCli:
    async def test_create_from_a_file_list_by_label_and_show_the_policy(
        self, stack: EmbeddedStack, tmp_path: Path
    ) -> None:
        site = await create_site(stack.settings, "CLI labels", "mailto:ops@example.com")
        path = tmp_path / "spring.yaml"
        path.write_text(CAMPAIGN_FILE)
        other = tmp_path / "other.yaml"
        other.write_text("notification: {title: Other, target_url: 'https://shop.example/'}\n")

        created = await clarion(stack, site.api_key, "campaign", "create", str(path), "--json")
        await clarion(stack, site.api_key, "campaign", "create", str(other), "-q")
        labelled = await clarion(stack, site.api_key, "campaign", "list", "--label", "sale")
        nothing = await clarion(stack, site.api_key, "campaign", "list", "--label", "autumn")

        assert created.code == 0, created.err
        campaign = json.loads(created.out)
        warned = created.err.strip().splitlines()
        assert warned == [
            "warning: notification.icon_url: Safari cannot show notification.icon_url: its "
            "recipients get the notification without it",
            "warning: notification.actions: Safari cannot show notification.actions: its "
            "recipients get the notification without it",
            "warning: notification.icon_url: Legacy Safari cannot show notification.icon_url: "
            "its recipients get the notification without it",
            "warning: notification.actions: Legacy Safari cannot show notification.actions: "
            "its recipients get the notification without it",
        ]
        assert campaign["labels"] == ["spring", "sale"] and campaign["topic"] == "spring-sale"
        rows = labelled.out.strip().splitlines()
        assert len(rows) == 2 and rows[1].startswith(campaign["campaign_id"]), labelled.out
        assert nothing.out.strip() == "no campaign has the label 'autumn'"
        shown = await clarion(stack, site.api_key, "campaign", "show", campaign["campaign_id"])
        rows = [(line.split(maxsplit=1) + [""])[:2] for line in shown.out.splitlines()[1:]]
        fields = dict(rows)
        assert fields["labels"] == "spring, sale"
        assert fields["policy"] == (
            "ignores the site's frequency cap; own quiet hours 22:00 to 07:00 (pushes due then "
            "are discarded); holds out 10% as a control group"
        )
        assert fields["utm"] == "utm_source=push, utm_campaign=spring"
        assert fields["action_1"] == "Shop now -> https://shop.example/now"

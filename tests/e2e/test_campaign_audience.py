"""A campaign's audience through the whole platform: campaign asks segment to check it
before keeping it (refusals named relative to the campaign request, nothing stored), a
run hands it to delivery, and the run reaches exactly the subscribers it selects."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from clarion.remote import audience_words, read_campaign_file
from clarion.segment.v1 import (
    profile_pb2,
    segment_pb2,
    segment_service_pb2,
    segment_service_pb2_grpc,
)
from clarion.simulator import PushServiceSimulator
from services.campaign.admin import create_site
from services.kit.errors import error_info
from services.kit.grpcserver import client_channel
from services.kit.operator import OperatorError
from tests.support.sites import bearer

Metadata = tuple[tuple[str, str], ...]


BAD_VALUES = "audience.definition.condition.all.conditions[1].property.values"


def city(name: str, *values: str) -> segment_pb2.Condition:
    return segment_pb2.Condition(
        property=segment_pb2.PropertyCondition(
            name=name,
            operator=segment_pb2.PROPERTY_OPERATOR_EQUALS,
            values=[profile_pb2.PropertyValue(string_value=v) for v in values],
        )
    )


def definition(condition: segment_pb2.Condition) -> segment_pb2.AudienceSelector:
    return segment_pb2.AudienceSelector(
        definition=segment_pb2.SegmentDefinition(condition=condition)
    )


IN_PARIS = definition(city("city", "Paris"))
# EQUALS with no value: conditions[1].property.values is refused.
MALFORMED = definition(
    segment_pb2.Condition(
        all=segment_pb2.ConditionGroup(conditions=[city("city", "Paris"), city("city")])
    )
)


class Api:
    """A site's campaign and segment stubs on the embedded stack."""

    def __init__(self, stack: EmbeddedStack, api_key: str) -> None:
        self.stack = stack
        self.auth: Metadata = bearer(api_key)
        self._channels = [
            client_channel(stack.address("campaign")),
            client_channel(stack.address("segment")),
        ]
        self.campaigns = campaign_service_pb2_grpc.CampaignServiceStub(self._channels[0])
        self.segments = segment_service_pb2_grpc.SegmentServiceStub(self._channels[1])

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def create_campaign(self) -> campaign_pb2.Campaign:
        response = await self.campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                notification=common_pb2.Notification(
                    title="Bonjour", body="Paris only", target_url="https://shop.example/paris"
                )
            ),
            metadata=self.auth,
            timeout=10,
        )
        return response.campaign

    async def set_audience(
        self, campaign_id: str, audience: segment_pb2.AudienceSelector | None
    ) -> campaign_pb2.Campaign:
        response = await self.campaigns.UpdateCampaign(
            campaign_service_pb2.UpdateCampaignRequest(
                campaign=campaign_pb2.Campaign(campaign_id=campaign_id, audience=audience),
                update_mask=FieldMask(paths=["audience"]),
            ),
            metadata=self.auth,
            timeout=10,
        )
        return response.campaign

    async def get_campaign(self, campaign_id: str) -> campaign_pb2.Campaign:
        response = await self.campaigns.GetCampaign(
            campaign_service_pb2.GetCampaignRequest(campaign_id=campaign_id),
            metadata=self.auth,
            timeout=10,
        )
        return response.campaign

    async def send_and_wait(self, campaign_id: str, timeout: float = 60) -> campaign_pb2.Run:
        sent = await self.campaigns.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign_id),
            metadata=self.auth,
            timeout=10,
        )
        deadline = time.monotonic() + timeout
        while True:
            run = (
                await self.campaigns.GetRun(
                    campaign_service_pb2.GetRunRequest(run_id=sent.run.run_id),
                    metadata=self.auth,
                    timeout=10,
                )
            ).run
            if run.state in (campaign_pb2.RUN_STATE_DONE, campaign_pb2.RUN_STATE_FAILED) and (
                run.HasField("finish_time")
            ):
                return run
            assert time.monotonic() < deadline, f"run still {run.state}"
            await asyncio.sleep(0.05)


@pytest.fixture
async def api(stack: EmbeddedStack) -> Api:
    site = await create_site(stack.settings, "Audience", "mailto:ops@example.com")
    made = Api(stack, site.api_key)
    yield made  # type: ignore[misc]
    await made.close()


def refusal(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, str]:
    info = error_info(error)
    assert info is not None, error
    return error.code(), info.reason, info.metadata.get("field", "")


class TestTheAudienceIsCheckedBeforeItIsKept:
    async def test_a_valid_definition_is_kept_and_read_back(self, api: Api) -> None:
        campaign = await api.create_campaign()
        assert not campaign.HasField("audience")

        updated = await api.set_audience(campaign.campaign_id, IN_PARIS)

        assert updated.audience == IN_PARIS
        assert (await api.get_campaign(campaign.campaign_id)).audience == IN_PARIS
        listed = await api.campaigns.ListCampaigns(
            campaign_service_pb2.ListCampaignsRequest(), metadata=api.auth, timeout=10
        )
        assert [c.audience for c in listed.campaigns] == [IN_PARIS]

    async def test_a_bad_field_is_named_in_the_request_and_nothing_is_stored(
        self, api: Api
    ) -> None:
        campaign = await api.create_campaign()

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await api.set_audience(campaign.campaign_id, MALFORMED)

        code, _, field = refusal(raised.value)
        assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "campaign." + BAD_VALUES)
        stored = await api.get_campaign(campaign.campaign_id)
        assert not stored.HasField("audience")
        assert stored.update_time == campaign.update_time

    async def test_an_unknown_segment_is_not_found(self, api: Api) -> None:
        campaign = await api.create_campaign()

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await api.set_audience(
                campaign.campaign_id,
                segment_pb2.AudienceSelector(segment_id="seg_" + "0" * 32),
            )

        code, reason, field = refusal(raised.value)
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "SEGMENT_NOT_FOUND")
        assert field.startswith("campaign.audience")
        assert not (await api.get_campaign(campaign.campaign_id)).HasField("audience")


class TestARunReachesItsAudience:
    async def test_a_campaign_with_a_definition_reaches_exactly_the_matching_subscribers(
        self, api: Api, simulator: PushServiceSimulator
    ) -> None:
        people = {"p_paris_1": "Paris", "p_paris_2": "Paris", "p_lyon": "Lyon"}
        subscriptions = {}
        for profile_id in [*people, ""]:  # and an anonymous browser, in no city
            subscription = simulator.mint_subscription()
            await api.segments.RegisterSubscriber(
                segment_service_pb2.RegisterSubscriberRequest(
                    push_subscription=common_pb2.PushSubscription(
                        endpoint=subscription.endpoint,
                        p256dh=subscription.p256dh,
                        auth=subscription.auth,
                    ),
                    browser=common_pb2.BROWSER_FIREFOX,
                    timezone="Europe/Paris",
                    profile_id=profile_id,
                ),
                metadata=api.auth,
                timeout=10,
            )
            subscriptions[profile_id] = subscription
        upserted = await api.segments.UpsertProfiles(
            segment_service_pb2.UpsertProfilesRequest(
                updates=[
                    profile_pb2.ProfileUpdate(
                        profile_id=profile_id,
                        operations=[
                            profile_pb2.PropertyOperation(
                                name="city", set=profile_pb2.PropertyValue(string_value=name)
                            )
                        ],
                    )
                    for profile_id, name in people.items()
                ]
            ),
            metadata=api.auth,
            timeout=10,
        )
        assert all(result.ok for result in upserted.results), upserted
        campaign = await api.create_campaign()
        await api.set_audience(campaign.campaign_id, IN_PARIS)

        run = await api.send_and_wait(campaign.campaign_id)

        assert (run.state, run.audience, run.progress.sent) == (campaign_pb2.RUN_STATE_DONE, 2, 2)
        reached = {p for p, s in subscriptions.items() if simulator.messages(s.endpoint)}
        assert reached == {"p_paris_1", "p_paris_2"}

    async def test_a_deleted_segment_fails_the_run_saying_so(self, api: Api) -> None:
        saved = await api.segments.CreateSegment(
            segment_service_pb2.CreateSegmentRequest(
                segment=segment_pb2.Segment(
                    display_name="Parisians", definition=IN_PARIS.definition
                )
            ),
            metadata=api.auth,
            timeout=10,
        )
        segment_id = saved.segment.segment_id
        campaign = await api.create_campaign()
        await api.set_audience(campaign.campaign_id, segment_pb2.AudienceSelector(segment_id=segment_id))
        await api.segments.DeleteSegment(
            segment_service_pb2.DeleteSegmentRequest(segment_id=segment_id),
            metadata=api.auth,
            timeout=10,
        )

        run = await api.send_and_wait(campaign.campaign_id)

        assert run.state == campaign_pb2.RUN_STATE_FAILED
        assert "not found" in run.failure_reason, run.failure_reason


class TestTheCli:
    """`clarion campaign create FILE` reads `audience:`; `campaign show` words it."""

    def test_reads_a_segment_id_or_a_definition(self, tmp_path: Path) -> None:
        saved = tmp_path / "saved.yaml"
        saved.write_text("notification: {title: Hi}\naudience:\n  segment_id: seg_1\n")
        adhoc = tmp_path / "adhoc.yaml"
        adhoc.write_text(
            "notification: {title: Hi}\naudience:\n  definition:\n    condition:\n"
            "      property: {name: city, operator: PROPERTY_OPERATOR_EQUALS,"
            " values: [{string_value: Paris}]}\n"
        )
        none = tmp_path / "none.yaml"
        none.write_text("notification: {title: Hi}\n")

        assert read_campaign_file(str(saved))[1] == segment_pb2.AudienceSelector(segment_id="seg_1")
        request, audience = read_campaign_file(str(adhoc))
        assert (request.notification.title, audience) == ("Hi", IN_PARIS)
        assert read_campaign_file(str(none))[1] is None

    @pytest.mark.parametrize(
        ("audience", "says"),
        [
            ("seg_1", "audience must be a mapping"),
            ("{segment_id: seg_1, definition: {}}", "not both"),
            ("{segments: seg_1}", "not segments"),
            ("{definition: {condition: {property: {operator: NOPE}}}}", "audience: "),
        ],
    )
    def test_a_bad_audience_is_one_line_saying_what_is_wrong(
        self, tmp_path: Path, audience: str, says: str
    ) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text(f"notification: {{title: Hi}}\naudience: {audience}\n")
        with pytest.raises(OperatorError) as raised:
            read_campaign_file(str(path))
        assert says in str(raised.value)
        assert "\n" not in str(raised.value)

    def test_show_words_the_audience(self) -> None:
        assert audience_words(campaign_pb2.Campaign()) == "every subscriber"
        assert audience_words(
            campaign_pb2.Campaign(audience=segment_pb2.AudienceSelector(segment_id="seg_1"))
        ) == "segment seg_1"
        assert audience_words(campaign_pb2.Campaign(audience=IN_PARIS)).startswith(
            "ad-hoc definition"
        )

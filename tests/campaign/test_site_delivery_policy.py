"""A site's delivery policy through the real server: stored with the site, returned by
GetSite, replaced whole or a part at a time by UpdateSite's mask paths, validated with
the field named (nothing changed on refusal)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import field_mask_pb2

from clarion.campaign.v1 import campaign_pb2, site_pb2, site_service_pb2, site_service_pb2_grpc
from services.campaign.admin import CreatedSite
from tests.campaign.helpers import field, reason
from tests.support.sites import bearer

SiteStub = site_service_pb2_grpc.SiteServiceStub

POLICY = campaign_pb2.DeliveryPolicy(
    frequency_cap=campaign_pb2.FrequencyCap(per_day=2, per_week=5),
    quiet_hours=campaign_pb2.QuietHours(
        start="21:30", end="07:00", action=campaign_pb2.QUIET_HOURS_ACTION_DELAY
    ),
    max_per_minute=1200,
)


async def get_site(stub: SiteStub, site: CreatedSite) -> site_pb2.Site:
    response = await stub.GetSite(site_service_pb2.GetSiteRequest(), metadata=bearer(site.api_key))
    return response.site


async def update(
    stub: SiteStub, site: CreatedSite, paths: list[str], policy: campaign_pb2.DeliveryPolicy
) -> site_pb2.Site:
    response = await stub.UpdateSite(
        site_service_pb2.UpdateSiteRequest(
            site=site_pb2.Site(delivery_policy=policy, name="not named in the mask"),
            update_mask=field_mask_pb2.FieldMask(paths=paths),
        ),
        metadata=bearer(site.api_key),
    )
    return response.site


class TestDeliveryPolicy:
    async def test_a_new_site_has_none(self, site: CreatedSite, sites_stub: SiteStub) -> None:
        assert not (await get_site(sites_stub, site)).HasField("delivery_policy")

    async def test_the_whole_policy_is_stored_and_read_back(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        before = await get_site(sites_stub, site)

        updated = await update(sites_stub, site, ["delivery_policy"], POLICY)

        after = await get_site(sites_stub, site)
        assert updated == after
        assert after.delivery_policy == POLICY
        after.ClearField("delivery_policy")
        assert after == before  # the name, not in the mask, is unchanged

    @pytest.mark.parametrize(
        ("path", "given", "changed"),
        [
            (
                "delivery_policy.frequency_cap",
                campaign_pb2.DeliveryPolicy(frequency_cap=campaign_pb2.FrequencyCap(per_day=1)),
                "frequency_cap",
            ),
            (
                "delivery_policy.quiet_hours",
                campaign_pb2.DeliveryPolicy(
                    quiet_hours=campaign_pb2.QuietHours(start="23:00", end="06:00")
                ),
                "quiet_hours",
            ),
            (
                "delivery_policy.max_per_minute",
                campaign_pb2.DeliveryPolicy(max_per_minute=60),
                "max_per_minute",
            ),
        ],
    )
    async def test_a_part_changes_only_that_part(
        self,
        site: CreatedSite,
        sites_stub: SiteStub,
        path: str,
        given: campaign_pb2.DeliveryPolicy,
        changed: str,
    ) -> None:
        await update(sites_stub, site, ["delivery_policy"], POLICY)

        updated = await update(sites_stub, site, [path], given)

        expected = campaign_pb2.DeliveryPolicy()
        expected.CopyFrom(POLICY)
        if changed == "max_per_minute":
            expected.max_per_minute = given.max_per_minute
        else:
            getattr(expected, changed).CopyFrom(getattr(given, changed))
        assert updated.delivery_policy == expected
        assert (await get_site(sites_stub, site)).delivery_policy == expected

    async def test_an_unset_part_clears_it_and_an_unset_policy_clears_all(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        await update(sites_stub, site, ["delivery_policy"], POLICY)

        without_hours = await update(
            sites_stub, site, ["delivery_policy.quiet_hours"], campaign_pb2.DeliveryPolicy()
        )
        assert not without_hours.delivery_policy.HasField("quiet_hours")
        assert without_hours.delivery_policy.frequency_cap == POLICY.frequency_cap

        cleared = await update(sites_stub, site, ["delivery_policy"], campaign_pb2.DeliveryPolicy())
        assert not cleared.HasField("delivery_policy")

    async def test_two_parts_changed_at_once_both_land(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        cap = campaign_pb2.DeliveryPolicy(frequency_cap=campaign_pb2.FrequencyCap(per_week=3))
        throttle = campaign_pb2.DeliveryPolicy(max_per_minute=30)

        await asyncio.gather(
            update(sites_stub, site, ["delivery_policy.frequency_cap"], cap),
            update(sites_stub, site, ["delivery_policy.max_per_minute"], throttle),
        )

        stored = (await get_site(sites_stub, site)).delivery_policy
        assert (stored.frequency_cap.per_week, stored.max_per_minute) == (3, 30)

    @pytest.mark.parametrize(
        ("path", "policy", "expected_reason", "expected_field"),
        [
            (
                "delivery_policy",
                {"frequency_cap": campaign_pb2.FrequencyCap(per_day=3, per_week=2)},
                "INVALID_FREQUENCY_CAP",
                "delivery_policy.frequency_cap.per_week",
            ),
            (
                "delivery_policy.frequency_cap",
                {"frequency_cap": campaign_pb2.FrequencyCap(per_day=7, per_week=6)},
                "INVALID_FREQUENCY_CAP",
                "delivery_policy.frequency_cap.per_week",
            ),
            (
                "delivery_policy.quiet_hours",
                {"quiet_hours": campaign_pb2.QuietHours(start="22:00")},
                "INVALID_QUIET_HOURS",
                "delivery_policy.quiet_hours.end",
            ),
            (
                "delivery_policy",
                {"quiet_hours": campaign_pb2.QuietHours(start="06:00", end="06:00")},
                "INVALID_QUIET_HOURS",
                "delivery_policy.quiet_hours.end",
            ),
            (
                "delivery_policy.quiet_hours",
                {"quiet_hours": campaign_pb2.QuietHours(start="10pm", end="06:00")},
                "INVALID_QUIET_HOURS",
                "delivery_policy.quiet_hours.start",
            ),
        ],
    )
    async def test_a_bad_policy_is_refused_naming_the_field_and_nothing_changes(
        self,
        site: CreatedSite,
        sites_stub: SiteStub,
        path: str,
        policy: dict[str, object],
        expected_reason: str,
        expected_field: str,
    ) -> None:
        await update(sites_stub, site, ["delivery_policy"], POLICY)
        before = await get_site(sites_stub, site)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await update(
                sites_stub,
                site,
                ["name", path],
                campaign_pb2.DeliveryPolicy(**policy),  # type: ignore[arg-type]
            )

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (reason(raised.value), field(raised.value)) == (expected_reason, expected_field)
        assert await get_site(sites_stub, site) == before

    async def test_the_weekly_cap_alone_or_equal_to_the_daily_one_is_accepted(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        for cap in (
            campaign_pb2.FrequencyCap(per_week=1),
            campaign_pb2.FrequencyCap(per_day=4),
            campaign_pb2.FrequencyCap(per_day=4, per_week=4),
        ):
            given = campaign_pb2.DeliveryPolicy(frequency_cap=cap)
            updated = await update(sites_stub, site, ["delivery_policy.frequency_cap"], given)
            assert updated.delivery_policy.frequency_cap == cap

    async def test_an_unknown_part_is_an_invalid_mask(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await update(sites_stub, site, ["delivery_policy.quiet"], POLICY)

        assert reason(raised.value) == "INVALID_UPDATE_MASK"
        assert "delivery_policy.quiet" in (raised.value.details() or "")

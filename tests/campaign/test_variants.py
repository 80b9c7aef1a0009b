"""A/B variants through the real campaign server, on both databases: a campaign's
variants, variant test and conversion goal are checked (each variant's notification as a
campaign's notification is), stored, returned by GetCampaign and ListCampaigns and
changed by UpdateCampaign; what a bad one gets is a clear INVALID_ARGUMENT that stores
nothing; runs say which phase of a test they are; a test send names its variant.
Delivery is out of reach here (runs stay PREPARING); the phases' hand-off and the rest
are in test_variant_test_phase.py."""

from __future__ import annotations

from datetime import UTC, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2_grpc
from clarion.campaign.v1 import campaign_service_pb2 as pb
from clarion.common.v1 import common_pb2
from tests.campaign.helpers import field, reason

Stub = campaign_service_pb2_grpc.CampaignServiceStub
Metadata = tuple[tuple[str, str], ...]
SHOP = "https://shop.example/"
GOAL = common_pb2.ConversionGoal(
    event_name="Charged", window_seconds=86400, revenue_property="amount"
)
TEST = campaign_pb2.VariantTest(
    test_percent=20, wait_seconds=3600, metric=campaign_pb2.WINNER_METRIC_CLICK_THROUGH_RATE
)


def variant(
    variant_id: str, split: int, title: str = "", **notification: object
) -> campaign_pb2.Variant:
    notification.setdefault("target_url", SHOP + variant_id.lower())
    return campaign_pb2.Variant(
        variant_id=variant_id,
        split_percent=split,
        notification=common_pb2.Notification(title=title or f"Offer {variant_id}", **notification),  # type: ignore[arg-type]
    )


AB = [variant("A", 40, "20% off today"), variant("B", 60, "Sale: 20% off")]


async def create(stub: Stub, auth: Metadata, **fields: object) -> pb.CreateCampaignResponse:
    return await stub.CreateCampaign(pb.CreateCampaignRequest(**fields), metadata=auth, timeout=30)  # type: ignore[arg-type]


async def refused(stub: Stub, auth: Metadata, **fields: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create(stub, auth, **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    # Nothing was stored.
    listed = await stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=auth, timeout=30)
    assert list(listed.campaigns) == []
    return raised.value


async def update(
    stub: Stub, auth: Metadata, campaign: campaign_pb2.Campaign, *paths: str
) -> pb.UpdateCampaignResponse:
    return await stub.UpdateCampaign(
        pb.UpdateCampaignRequest(campaign=campaign, update_mask=FieldMask(paths=list(paths))),
        metadata=auth,
        timeout=30,
    )


async def get(stub: Stub, auth: Metadata, campaign_id: str) -> campaign_pb2.Campaign:
    response = await stub.GetCampaign(
        pb.GetCampaignRequest(campaign_id=campaign_id), metadata=auth, timeout=30
    )
    return response.campaign


class TestCreateWithVariants:
    async def test_variants_test_and_goal_are_stored_and_returned(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = await create(
            campaigns_stub, auth, variants=AB, variant_test=TEST, conversion_goal=GOAL
        )

        shown = await get(campaigns_stub, auth, created.campaign.campaign_id)
        listed = await campaigns_stub.ListCampaigns(
            pb.ListCampaignsRequest(), metadata=auth, timeout=30
        )

        for campaign in (created.campaign, shown, listed.campaigns[0]):
            assert list(campaign.variants) == AB
            assert (campaign.variant_test, campaign.conversion_goal) == (TEST, GOAL)
            assert not campaign.HasField("notification")
            # A name defaults to the (first variant's) title.
            assert campaign.name == "20% off today"
        assert list(created.warnings) == []

    async def test_a_notification_beside_variants_is_refused(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        error = await refused(
            campaigns_stub,
            auth,
            notification=common_pb2.Notification(title="One", target_url=SHOP),
            variants=AB,
        )

        assert (reason(error), field(error)) == ("NOTIFICATION_AND_VARIANTS", "notification")
        assert "not both" in (error.details() or "")

    async def test_neither_a_notification_nor_variants_is_refused(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        error = await refused(campaigns_stub, auth, name="Nothing to say")

        assert (reason(error), field(error)) == ("MISSING_TITLE", "notification.title")

    @pytest.mark.parametrize(
        ("variants", "why", "where"),
        [
            ([variant("A", 100)], "TOO_FEW_VARIANTS", "variants"),
            ([variant(v, 20) for v in "ABCDEF"], "TOO_MANY_VARIANTS", "variants"),
            ([variant("A", 50), variant("A", 50)], "DUPLICATE_VARIANT", "variants[1].variant_id"),
            ([variant("A.1", 50), variant("B", 50)], "INVALID_VARIANT", "variants[0].variant_id"),
            ([variant("A", 50), variant("B", 45)], "INVALID_VARIANT_SPLIT", "variants"),
            (
                [variant("A", 100), variant("B", 0)],
                "INVALID_VARIANT_SPLIT",
                "variants[0].split_percent",
            ),
        ],
    )
    async def test_bad_variants_are_refused(
        self,
        campaigns_stub: Stub,
        auth: Metadata,
        variants: list[campaign_pb2.Variant],
        why: str,
        where: str,
    ) -> None:
        error = await refused(campaigns_stub, auth, variants=variants)

        assert (reason(error), field(error)) == (why, where)

    async def test_each_variants_notification_is_checked_as_a_notification_is(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        bad_template = await refused(
            campaigns_stub,
            auth,
            variants=[variant("A", 50), variant("B", 50, "Hi {{ profile.name }")],
        )
        no_deeplink = await refused(
            campaigns_stub, auth, variants=[variant("A", 50), variant("B", 50, target_url="")]
        )
        # The size is checked with each template printing its longest fallback.
        too_large = await refused(
            campaigns_stub,
            auth,
            variants=[
                variant("A", 50, body="{{ profile.name | default('-' * 4000) }}"),
                variant("B", 50),
            ],
        )

        assert (reason(bad_template), field(bad_template)) == (
            "INVALID_TEMPLATE",
            "variants[1].notification.title",
        )
        assert (bad_template.details() or "").startswith("variants[1].notification.title, line 1")
        assert (reason(no_deeplink), field(no_deeplink)) == (
            "MISSING_DEEPLINK",
            "variants[1].notification.target_url",
        )
        assert (reason(too_large), field(too_large)) == (
            "PAYLOAD_TOO_LARGE",
            "variants[0].notification",
        )

    async def test_what_safari_drops_is_a_warning_per_variant(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = await create(
            campaigns_stub,
            auth,
            variants=[variant("A", 50, icon_url="https://cdn.example/a.png"), variant("B", 50)],
        )

        assert [(w.reason, w.field) for w in created.warnings] == [
            ("SAFARI_FIELDS_DROPPED", "variants[0].notification.icon_url"),
            ("SAFARI_LEGACY_FIELDS_DROPPED", "variants[0].notification.icon_url"),
        ]
        assert "variants[0].notification.icon_url" in created.warnings[0].message

    @pytest.mark.parametrize(
        ("fields", "why", "where"),
        [
            ({"variant_test": TEST}, "INVALID_VARIANT_TEST", "variant_test"),
            (
                {
                    "variants": AB,
                    "variant_test": campaign_pb2.VariantTest(test_percent=60, wait_seconds=3600),
                },
                "INVALID_VARIANT_TEST",
                "variant_test.test_percent",
            ),
            (
                {
                    "variants": AB,
                    "variant_test": campaign_pb2.VariantTest(test_percent=10, wait_seconds=60),
                },
                "INVALID_VARIANT_TEST",
                "variant_test.wait_seconds",
            ),
            (
                {
                    "variants": AB,
                    "variant_test": campaign_pb2.VariantTest(
                        test_percent=10,
                        wait_seconds=3600,
                        metric=campaign_pb2.WINNER_METRIC_CONVERSION_RATE,
                    ),
                },
                "INVALID_VARIANT_TEST",
                "variant_test.metric",
            ),
            (
                {
                    "variants": AB,
                    "variant_test": TEST,
                    "trigger": campaign_pb2.Trigger(event_name="Added To Cart"),
                },
                "VARIANT_TEST_AND_TRIGGER",
                "variant_test",
            ),
            (
                {
                    "variants": AB,
                    "conversion_goal": common_pb2.ConversionGoal(
                        event_name="Charged", window_seconds=30
                    ),
                },
                "INVALID_CONVERSION_GOAL",
                "conversion_goal.window_seconds",
            ),
            (
                {"variants": AB, "conversion_goal": common_pb2.ConversionGoal(window_seconds=3600)},
                "INVALID_CONVERSION_GOAL",
                "conversion_goal.event_name",
            ),
        ],
    )
    async def test_a_bad_variant_test_or_goal_is_refused(
        self, campaigns_stub: Stub, auth: Metadata, fields: dict[str, object], why: str, where: str
    ) -> None:
        error = await refused(campaigns_stub, auth, **fields)

        assert (reason(error), field(error)) == (why, where)

    async def test_a_conversion_goal_needs_no_variants(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = await create(
            campaigns_stub,
            auth,
            notification=common_pb2.Notification(title="One", target_url=SHOP),
            conversion_goal=GOAL,
        )

        assert (
            await get(campaigns_stub, auth, created.campaign.campaign_id)
        ).conversion_goal == GOAL

    async def test_a_repeated_create_returns_the_first_and_another_ab_test_is_refused(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        first = await create(campaigns_stub, auth, variants=AB, request_id="ab-1")
        again = await create(campaigns_stub, auth, variants=AB, request_id="ab-1")

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await create(campaigns_stub, auth, variants=list(reversed(AB)), request_id="ab-1")

        assert again.campaign.campaign_id == first.campaign.campaign_id
        assert reason(raised.value) == "REQUEST_ID_REUSED"


class TestUpdateVariants:
    async def test_a_campaign_becomes_an_ab_test_and_back(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = await create(
            campaigns_stub, auth, notification=common_pb2.Notification(title="One", target_url=SHOP)
        )
        campaign_id = created.campaign.campaign_id

        to_ab = await update(
            campaigns_stub,
            auth,
            campaign_pb2.Campaign(
                campaign_id=campaign_id, variants=AB, variant_test=TEST, conversion_goal=GOAL
            ),
            "notification",
            "variants",
            "variant_test",
            "conversion_goal",
        )
        shown = await get(campaigns_stub, auth, campaign_id)
        back = await update(
            campaigns_stub,
            auth,
            campaign_pb2.Campaign(
                campaign_id=campaign_id,
                notification=common_pb2.Notification(title="Two", target_url=SHOP),
            ),
            "notification",
            "variants",
            "variant_test",
        )

        assert list(to_ab.campaign.variants) == AB == list(shown.variants)
        assert (shown.variant_test, shown.conversion_goal) == (TEST, GOAL)
        assert not shown.HasField("notification")
        after = await get(campaigns_stub, auth, campaign_id)
        assert back.campaign == after
        assert (after.notification.title, list(after.variants), after.HasField("variant_test")) == (
            "Two",
            [],
            False,
        )
        assert after.conversion_goal == GOAL  # not named: kept

    async def test_variants_beside_the_notification_left_are_refused(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = await create(
            campaigns_stub, auth, notification=common_pb2.Notification(title="One", target_url=SHOP)
        )
        campaign_id = created.campaign.campaign_id

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await update(
                campaigns_stub,
                auth,
                campaign_pb2.Campaign(campaign_id=campaign_id, variants=AB),
                "variants",
            )

        assert (reason(raised.value), field(raised.value)) == (
            "NOTIFICATION_AND_VARIANTS",
            "campaign.notification",
        )
        assert "update_mask" in (raised.value.details() or "")
        assert (await get(campaigns_stub, auth, campaign_id)).notification.title == "One"

    async def test_one_notification_field_of_an_ab_test_is_refused(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = await create(campaigns_stub, auth, variants=AB)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await update(
                campaigns_stub,
                auth,
                campaign_pb2.Campaign(
                    campaign_id=created.campaign.campaign_id,
                    notification=common_pb2.Notification(title="Hm"),
                ),
                "notification.title",
            )

        assert reason(raised.value) == "NOTIFICATION_AND_VARIANTS"

    async def test_a_variant_test_is_added_changed_and_removed(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = await create(campaigns_stub, auth, variants=AB)
        campaign_id = created.campaign.campaign_id
        longer = campaign_pb2.VariantTest(test_percent=10, wait_seconds=7200)

        await update(
            campaigns_stub,
            auth,
            campaign_pb2.Campaign(campaign_id=campaign_id, variant_test=TEST),
            "variant_test",
        )
        added = await get(campaigns_stub, auth, campaign_id)
        await update(
            campaigns_stub,
            auth,
            campaign_pb2.Campaign(campaign_id=campaign_id, variant_test=longer),
            "variant_test",
        )
        changed = await get(campaigns_stub, auth, campaign_id)
        await update(
            campaigns_stub, auth, campaign_pb2.Campaign(campaign_id=campaign_id), "variant_test"
        )
        removed = await get(campaigns_stub, auth, campaign_id)

        assert (added.variant_test, changed.variant_test) == (TEST, longer)
        assert not removed.HasField("variant_test")
        assert list(removed.variants) == AB

    async def test_removing_the_variants_under_a_variant_test_is_refused(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = await create(campaigns_stub, auth, variants=AB, variant_test=TEST)
        campaign_id = created.campaign.campaign_id

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await update(
                campaigns_stub,
                auth,
                campaign_pb2.Campaign(
                    campaign_id=campaign_id,
                    notification=common_pb2.Notification(title="One", target_url=SHOP),
                ),
                "notification",
                "variants",
            )

        assert (reason(raised.value), field(raised.value)) == (
            "INVALID_VARIANT_TEST",
            "campaign.variant_test",
        )
        assert list((await get(campaigns_stub, auth, campaign_id)).variants) == AB

    async def test_a_variants_content_is_checked_on_update(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = await create(campaigns_stub, auth, variants=AB)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await update(
                campaigns_stub,
                auth,
                campaign_pb2.Campaign(
                    campaign_id=created.campaign.campaign_id,
                    variants=[variant("A", 50), variant("B", 50, icon_url="not a url")],
                ),
                "variants",
            )

        assert (reason(raised.value), field(raised.value)) == (
            "INVALID_URL",
            "variants[1].notification.icon_url",
        )


class TestRunsOfAnAbTest:
    async def test_a_send_of_a_campaign_with_a_variant_test_starts_its_test_run(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = await create(campaigns_stub, auth, variants=AB, variant_test=TEST)

        sent = await campaigns_stub.SendCampaignNow(
            pb.SendCampaignNowRequest(campaign_id=created.campaign.campaign_id),
            metadata=auth,
            timeout=30,
        )
        shown = (
            await campaigns_stub.GetRun(
                pb.GetRunRequest(run_id=sent.run.run_id), metadata=auth, timeout=30
            )
        ).run

        for run in (sent.run, shown):
            assert run.phase == campaign_pb2.RUN_PHASE_VARIANT_TEST
            assert run.rest_time.ToDatetime(UTC) - run.create_time.ToDatetime(UTC) == timedelta(
                hours=1
            )
            assert (run.related_run_id, run.HasField("variant_decision")) == ("", False)

    async def test_listed_recipients_get_their_variant_at_once(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = await create(campaigns_stub, auth, variants=AB, variant_test=TEST)

        sent = await campaigns_stub.SendCampaignNow(
            pb.SendCampaignNowRequest(
                campaign_id=created.campaign.campaign_id,
                recipients=pb.Recipients(profile_ids=["ann"]),
            ),
            metadata=auth,
            timeout=30,
        )

        assert (sent.run.phase, sent.run.HasField("rest_time")) == (
            campaign_pb2.RUN_PHASE_UNSPECIFIED,
            False,
        )

    async def test_a_test_send_of_a_variant_the_campaign_lacks_is_not_found(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        ab = await create(campaigns_stub, auth, variants=AB, variant_test=TEST)
        plain = await create(
            campaigns_stub, auth, notification=common_pb2.Notification(title="One", target_url=SHOP)
        )

        for campaign_id in (ab.campaign.campaign_id, plain.campaign.campaign_id):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await campaigns_stub.SendTestCampaign(
                    pb.SendTestCampaignRequest(campaign_id=campaign_id, variant_id="C"),
                    metadata=auth,
                    timeout=30,
                )
            assert (raised.value.code(), reason(raised.value)) == (
                grpc.StatusCode.NOT_FOUND,
                "VARIANT_NOT_FOUND",
            )
        sent = await campaigns_stub.SendTestCampaign(
            pb.SendTestCampaignRequest(campaign_id=ab.campaign.campaign_id, variant_id="B"),
            metadata=auth,
            timeout=30,
        )
        # A test send has no phases.
        assert (sent.run.test, sent.run.phase) == (True, campaign_pb2.RUN_PHASE_UNSPECIFIED)

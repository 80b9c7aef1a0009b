"""A campaign's personalization, UTM parameters, topic, labels and delivery policy
through the real server: kept on create, read back by Get and List, changed by their
update_mask paths, validated with the field named (nothing stored on refusal); the
label filter of ListCampaigns with paging; the content checked for every browser when
the campaign has no audience (a missing deeplink refused, Safari's dropped fields
warned about); SendNotification's content options."""

from __future__ import annotations

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

PERSONALIZATION = campaign_pb2.Personalization(
    on_missing=campaign_pb2.MISSING_VALUE_ACTION_SUPPRESS
)
UTM = campaign_pb2.UtmParameters(source="push", medium="web", campaign="spring")
POLICY = campaign_pb2.CampaignPolicy(
    ignore_frequency_cap=True,
    quiet_hours=campaign_pb2.QuietHours(
        start="22:00", end="08:00", action=campaign_pb2.QUIET_HOURS_ACTION_DISCARD
    ),
    max_per_minute=600,
    control_group_percent=10,
)


def notification(**fields: object) -> common_pb2.Notification:
    given: dict[str, object] = {"title": "Hi {{ profile.first_name | default('there') }}"}
    given["target_url"] = SHOP
    given.update(fields)
    return common_pb2.Notification(**given)  # type: ignore[arg-type]


async def create(stub: Stub, auth: Metadata, **fields: object) -> pb.CreateCampaignResponse:
    fields.setdefault("notification", notification())
    return await stub.CreateCampaign(pb.CreateCampaignRequest(**fields), metadata=auth)  # type: ignore[arg-type]


async def update(
    stub: Stub, auth: Metadata, campaign_id: str, paths: list[str], **fields: object
) -> pb.UpdateCampaignResponse:
    return await stub.UpdateCampaign(
        pb.UpdateCampaignRequest(
            campaign=campaign_pb2.Campaign(campaign_id=campaign_id, **fields),  # type: ignore[arg-type]
            update_mask=FieldMask(paths=paths),
        ),
        metadata=auth,
    )


async def get(stub: Stub, auth: Metadata, campaign_id: str) -> campaign_pb2.Campaign:
    response = await stub.GetCampaign(pb.GetCampaignRequest(campaign_id=campaign_id), metadata=auth)
    return response.campaign


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value
    return raised.value


async def listed(stub: Stub, auth: Metadata, **request: object) -> list[campaign_pb2.Campaign]:
    return list(
        (await stub.ListCampaigns(pb.ListCampaignsRequest(**request), metadata=auth)).campaigns
    )  # type: ignore[arg-type]


class TestCreateAndRead:
    async def test_every_option_is_kept_and_read_back_by_get_and_list(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = (
            await create(
                campaigns_stub, auth,
                personalization=PERSONALIZATION, utm=UTM, topic="spring-sale",
                labels=["spring", "sale"], policy=POLICY,
            )
        ).campaign  # fmt: skip

        assert (created.personalization, created.utm, created.topic) == (
            PERSONALIZATION,
            UTM,
            "spring-sale",
        )
        assert list(created.labels) == ["spring", "sale"]
        assert created.policy == POLICY
        assert await get(campaigns_stub, auth, created.campaign_id) == created
        assert await listed(campaigns_stub, auth) == [created]

    async def test_without_them_nothing_is_set(self, campaigns_stub: Stub, auth: Metadata) -> None:
        created = (await create(campaigns_stub, auth)).campaign

        for name in ("personalization", "utm", "policy"):
            assert not created.HasField(name), name
        assert (created.topic, list(created.labels)) == ("", [])

    async def test_labels_are_trimmed_and_repeats_dropped_in_the_order_given(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = (
            await create(campaigns_stub, auth, labels=[" b ", "a", "b", "Ä x", "a "])
        ).campaign

        assert list(created.labels) == ["b", "a", "Ä x"]

    @pytest.mark.parametrize(
        ("fields", "expected_reason", "expected_field"),
        [
            ({"labels": ["ok", "   "]}, "INVALID_LABEL", "labels[1]"),
            ({"labels": ["x"] * 21}, "TOO_MANY_LABELS", "labels"),
            ({"labels": ["l" * 65]}, "INVALID_LABEL", "labels[0]"),
            # The edge allows `.` and `:` in ids; RFC 8030 topics do not.
            ({"topic": "spring.sale"}, "INVALID_TOPIC", "topic"),
            ({"topic": "t" * 33}, "INVALID_TOPIC", "topic"),
        ],
    )
    async def test_bad_labels_and_topics_are_refused_and_nothing_stored(
        self,
        campaigns_stub: Stub,
        auth: Metadata,
        fields: dict[str, object],
        expected_reason: str,
        expected_field: str,
    ) -> None:
        error = await refused(create(campaigns_stub, auth, **fields))

        assert (reason(error), field(error)) == (expected_reason, expected_field)
        assert await listed(campaigns_stub, auth) == []


def quiet(start: str = "", end: str = "", action: int = 0) -> campaign_pb2.QuietHours:
    return campaign_pb2.QuietHours(start=start, end=end, action=action)  # type: ignore[arg-type]


HOURS = "policy.quiet_hours"


class TestPolicyValidation:
    @pytest.mark.parametrize(
        ("policy", "expected_reason", "expected_field"),
        [
            ({"quiet_hours": quiet("24:00", "08:00")}, "INVALID_QUIET_HOURS", f"{HOURS}.start"),
            ({"quiet_hours": quiet("22:00", "8:00")}, "INVALID_QUIET_HOURS", f"{HOURS}.end"),
            ({"quiet_hours": quiet("22:60", "08:00")}, "INVALID_QUIET_HOURS", f"{HOURS}.start"),
            ({"quiet_hours": quiet("22:00", "")}, "INVALID_QUIET_HOURS", f"{HOURS}.end"),
            ({"quiet_hours": quiet("", "08:00")}, "INVALID_QUIET_HOURS", f"{HOURS}.start"),
            ({"quiet_hours": quiet("08:00", "08:00")}, "INVALID_QUIET_HOURS", f"{HOURS}.end"),
            (
                {"quiet_hours": quiet(action=campaign_pb2.QUIET_HOURS_ACTION_DELAY)},
                "INVALID_QUIET_HOURS",
                f"{HOURS}.start",
            ),
            (
                {"quiet_hours": quiet("22:00", "07:00"), "ignore_quiet_hours": True},
                "INVALID_QUIET_HOURS",
                "policy.ignore_quiet_hours",
            ),
            (
                {"control_group_percent": 51},
                "INVALID_CONTROL_GROUP",
                "policy.control_group_percent",
            ),
            ({"max_per_minute": -1}, "INVALID_THROTTLE", "policy.max_per_minute"),
        ],
    )  # fmt: skip
    async def test_a_bad_policy_is_refused_naming_the_field_and_nothing_is_stored(
        self,
        campaigns_stub: Stub,
        auth: Metadata,
        policy: dict[str, object],
        expected_reason: str,
        expected_field: str,
    ) -> None:
        given = campaign_pb2.CampaignPolicy(**policy)  # type: ignore[arg-type]

        error = await refused(create(campaigns_stub, auth, policy=given))

        assert (reason(error), field(error)) == (expected_reason, expected_field)
        assert await listed(campaigns_stub, auth) == []

    @pytest.mark.parametrize(
        "hours", [quiet("00:00", "23:59"), quiet("23:59", "00:00"), quiet("22:00", "06:30")]
    )
    async def test_the_edges_of_the_clock_are_accepted(
        self, campaigns_stub: Stub, auth: Metadata, hours: campaign_pb2.QuietHours
    ) -> None:
        created = (
            await create(
                campaigns_stub, auth, policy=campaign_pb2.CampaignPolicy(quiet_hours=hours)
            )
        ).campaign

        assert created.policy.quiet_hours == hours

    async def test_the_limits_of_throttle_and_control_group_are_accepted(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        policy = campaign_pb2.CampaignPolicy(
            ignore_quiet_hours=True, max_per_minute=10_000_000, control_group_percent=50
        )

        created = (await create(campaigns_stub, auth, policy=policy)).campaign

        assert created.policy == policy

    async def test_a_policy_of_defaults_is_none(self, campaigns_stub: Stub, auth: Metadata) -> None:
        created = (
            await create(
                campaigns_stub, auth, policy=campaign_pb2.CampaignPolicy(quiet_hours=quiet())
            )
        ).campaign

        assert not created.HasField("policy")


class TestUpdate:
    @pytest.mark.parametrize(
        ("path", "given"),
        [
            ("personalization", {"personalization": PERSONALIZATION}),
            ("utm", {"utm": UTM}),
            ("topic", {"topic": "flash"}),
            ("labels", {"labels": ["autumn"]}),
            ("policy", {"policy": POLICY}),
        ],
    )
    async def test_each_path_changes_its_field_only(
        self, campaigns_stub: Stub, auth: Metadata, path: str, given: dict[str, object]
    ) -> None:
        before = (
            await create(
                campaigns_stub, auth,
                personalization=campaign_pb2.Personalization(missing_value_text="friend"),
                utm=campaign_pb2.UtmParameters(source="old"), topic="old", labels=["old"],
                policy=campaign_pb2.CampaignPolicy(max_per_minute=5),
            )
        ).campaign  # fmt: skip

        updated = (await update(campaigns_stub, auth, before.campaign_id, [path], **given)).campaign

        expected = campaign_pb2.Campaign()
        expected.CopyFrom(before)
        expected.ClearField(path)
        if path == "labels":
            expected.labels.extend(given["labels"])  # type: ignore[arg-type]
        elif path == "topic":
            expected.topic = "flash"
        else:
            getattr(expected, path).CopyFrom(given[path])
        expected.update_time.CopyFrom(updated.update_time)
        assert updated == expected
        assert await get(campaigns_stub, auth, before.campaign_id) == updated

    async def test_unset_values_clear_them(self, campaigns_stub: Stub, auth: Metadata) -> None:
        before = (
            await create(
                campaigns_stub, auth, personalization=PERSONALIZATION, utm=UTM, topic="t",
                labels=["a"], policy=POLICY,
            )
        ).campaign  # fmt: skip
        paths = ["personalization", "utm", "topic", "labels", "policy"]

        cleared = (await update(campaigns_stub, auth, before.campaign_id, paths)).campaign

        for name in ("personalization", "utm", "policy"):
            assert not cleared.HasField(name), name
        assert (cleared.topic, list(cleared.labels)) == ("", [])
        assert await listed(campaigns_stub, auth, label="a") == []

    @pytest.mark.parametrize(
        ("path", "given", "expected_reason", "expected_field"),
        [
            ("labels", {"labels": [""]}, "INVALID_LABEL", "campaign.labels[0]"),
            ("topic", {"topic": "a:b"}, "INVALID_TOPIC", "campaign.topic"),
            (
                "policy",
                {"policy": campaign_pb2.CampaignPolicy(quiet_hours=quiet("7:00", "08:00"))},
                "INVALID_QUIET_HOURS",
                "campaign.policy.quiet_hours.start",
            ),
        ],
    )
    async def test_a_bad_value_is_refused_and_nothing_changes(
        self,
        campaigns_stub: Stub,
        auth: Metadata,
        path: str,
        given: dict[str, object],
        expected_reason: str,
        expected_field: str,
    ) -> None:
        before = (await create(campaigns_stub, auth, labels=["kept"])).campaign

        error = await refused(update(campaigns_stub, auth, before.campaign_id, [path], **given))

        assert (reason(error), field(error)) == (expected_reason, expected_field)
        assert await get(campaigns_stub, auth, before.campaign_id) == before

    async def test_the_buttons_of_the_notification_change_as_one_field(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        first = [common_pb2.NotificationAction(title="Old", url=SHOP + "old")]
        before = (
            await create(campaigns_stub, auth, notification=notification(actions=first))
        ).campaign
        buttons = [
            common_pb2.NotificationAction(title="Shop", url=SHOP + "shop"),
            common_pb2.NotificationAction(title="Later", url=SHOP + "later"),
        ]

        updated = (
            await update(
                campaigns_stub, auth, before.campaign_id, ["notification.actions"],
                notification=common_pb2.Notification(title="ignored", actions=buttons),
            )
        ).campaign  # fmt: skip

        assert list(updated.notification.actions) == buttons
        assert updated.notification.title == before.notification.title


class TestLabelFilter:
    async def test_pages_through_exactly_the_campaigns_with_the_label(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        tagged = []
        for number in range(7):
            labels = ["spring"] if number % 2 == 0 else ["autumn", "springtime"]
            if number == 4:
                labels = ["other", "spring"]
            created = (await create(campaigns_stub, auth, labels=labels)).campaign
            if "spring" in labels:
                tagged.append(created.campaign_id)

        seen, token, pages = [], "", 0
        while True:
            page = await campaigns_stub.ListCampaigns(
                pb.ListCampaignsRequest(page_size=2, page_token=token, label="spring"),
                metadata=auth,
            )
            pages += 1
            assert all("spring" in c.labels for c in page.campaigns)
            seen += [c.campaign_id for c in page.campaigns]
            token = page.next_page_token
            if not token:
                break

        assert seen == tagged and len(tagged) == 4
        assert pages == 2
        assert await listed(campaigns_stub, auth, label=" spring ") == await listed(
            campaigns_stub, auth, label="spring"
        )
        assert await listed(campaigns_stub, auth, label="Spring") == []
        assert len(await listed(campaigns_stub, auth)) == 7

    async def test_a_relabelled_campaign_moves_between_filters(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        created = (await create(campaigns_stub, auth, labels=["draft"])).campaign

        await update(campaigns_stub, auth, created.campaign_id, ["labels"], labels=["ready"])

        assert await listed(campaigns_stub, auth, label="draft") == []
        assert [c.campaign_id for c in await listed(campaigns_stub, auth, label="ready")] == [
            created.campaign_id
        ]

    async def test_another_sites_label_is_not_listed(
        self, campaigns_stub: Stub, auth: Metadata, new_site
    ) -> None:
        from tests.support.sites import bearer

        other = await new_site("Other")
        await create(campaigns_stub, bearer(other.api_key), labels=["shared"])

        assert await listed(campaigns_stub, auth, label="shared") == []


class TestContentForEveryBrowser:
    """Without an audience, every browser may receive the campaign, Safari included."""

    async def test_a_missing_deeplink_is_refused_and_nothing_stored(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        error = await refused(
            create(campaigns_stub, auth, notification=notification(target_url=""))
        )

        assert (reason(error), field(error)) == ("MISSING_DEEPLINK", "notification.target_url")
        assert "Safari" in (error.details() or "")
        assert await listed(campaigns_stub, auth) == []

    async def test_clearing_the_deeplink_later_is_refused_too(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        before = (await create(campaigns_stub, auth)).campaign

        error = await refused(
            update(
                campaigns_stub, auth, before.campaign_id, ["notification.target_url"],
                notification=common_pb2.Notification(),
            )
        )  # fmt: skip

        assert reason(error) == "MISSING_DEEPLINK"
        assert await get(campaigns_stub, auth, before.campaign_id) == before

    async def test_fields_safari_cannot_show_are_warned_about_and_the_campaign_kept(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        rich = notification(
            icon_url=SHOP + "icon.png",
            actions=[common_pb2.NotificationAction(title="Shop", url=SHOP + "shop")],
        )

        response = await create(campaigns_stub, auth, notification=rich)

        warned = {(w.reason, w.field) for w in response.warnings}
        assert warned == {
            ("SAFARI_FIELDS_DROPPED", "notification.icon_url"),
            ("SAFARI_FIELDS_DROPPED", "notification.actions"),
            ("SAFARI_LEGACY_FIELDS_DROPPED", "notification.icon_url"),
            ("SAFARI_LEGACY_FIELDS_DROPPED", "notification.actions"),
        }
        assert all("Safari" in w.message for w in response.warnings)
        assert (await get(campaigns_stub, auth, response.campaign.campaign_id)).notification == rich

    async def test_an_update_adding_such_a_field_is_warned_about_under_campaign(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        before = await create(campaigns_stub, auth)
        assert list(before.warnings) == []

        response = await update(
            campaigns_stub, auth, before.campaign.campaign_id, ["notification.image_url"],
            notification=common_pb2.Notification(image_url=SHOP + "hero.png"),
        )  # fmt: skip

        assert [(w.reason, w.field) for w in response.warnings] == [
            ("SAFARI_FIELDS_DROPPED", "campaign.notification.image_url"),
            ("SAFARI_LEGACY_FIELDS_DROPPED", "campaign.notification.image_url"),
        ]
        renamed = await update(
            campaigns_stub, auth, before.campaign.campaign_id, ["name"], name="Renamed"
        )
        assert list(renamed.warnings) == []  # the content was not checked again


class TestSendNotification:
    async def test_takes_personalization_utm_and_topic_for_its_campaign(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        response = await campaigns_stub.SendNotification(
            pb.SendNotificationRequest(
                notification=notification(),
                recipients=pb.Recipients(profile_ids=["p1"]),
                personalization=PERSONALIZATION,
                utm=UTM,
                topic="order-42",
            ),
            metadata=auth,
        )

        campaign = await get(campaigns_stub, auth, response.run.campaign_id)
        assert (campaign.personalization, campaign.utm, campaign.topic) == (
            PERSONALIZATION,
            UTM,
            "order-42",
        )

    async def test_a_missing_deeplink_is_refused_for_listed_people(
        self, campaigns_stub: Stub, auth: Metadata
    ) -> None:
        error = await refused(
            campaigns_stub.SendNotification(
                pb.SendNotificationRequest(
                    notification=notification(target_url=""),
                    recipients=pb.Recipients(profile_ids=["p1"]),
                ),
                metadata=auth,
            )
        )

        assert reason(error) == "MISSING_DEEPLINK"
        assert await listed(campaigns_stub, auth) == []

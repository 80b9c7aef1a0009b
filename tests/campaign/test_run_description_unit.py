"""What campaign hands delivery to describe a run in reporting's webhooks
(StartDeliveryRunRequest.description): the notification title as the site wrote it
(templates unrendered; with variants each variant's) and the campaign's UTM parameters,
for every kind of run it starts."""

from __future__ import annotations

from datetime import UTC, datetime

from clarion.campaign.v1 import campaign_pb2
from clarion.common.v1 import common_pb2
from services.campaign.domain import campaigns as campaigns_domain
from services.campaign.domain.campaigns import new_run, rest_run
from services.campaign.domain.variants import Decision
from services.campaign.peer_clients import start_run_request
from services.campaign.store import CampaignRecord, Urgency

NOW = datetime(2027, 5, 3, 9, 0, tzinfo=UTC)
UTM = campaign_pb2.UtmParameters(
    source="clarion", medium="push", campaign="spring-sale", content="hero", term="shoes"
)


def campaign(**fields: object) -> CampaignRecord:
    values: dict[str, object] = {
        "campaign_id": "cmp_desc",
        "site_id": "site_desc",
        "name": "Spring",
        "notification": common_pb2.Notification(
            title="Hello {{ profile.name }}",
            body="Spring sale",
            target_url="https://shop.example/spring",
        ),
        "ttl_seconds": 3600,
        "urgency": Urgency.HIGH,
        "create_time": NOW,
        "update_time": NOW,
    }
    return CampaignRecord(**(values | fields))  # type: ignore[arg-type]


def variant(variant_id: str, split: int, title: str) -> campaign_pb2.Variant:
    return campaign_pb2.Variant(
        variant_id=variant_id,
        split_percent=split,
        notification=common_pb2.Notification(title=title, target_url="https://shop.example/"),
    )


class TestRunDescription:
    def test_a_send_carries_the_title_as_written_and_the_utm_parameters(self) -> None:
        request = start_run_request(new_run(campaign(utm=UTM), NOW), utm=UTM)

        assert request.description == common_pb2.RunDescription(
            notification_title="Hello {{ profile.name }}",
            utm_source="clarion",
            utm_medium="push",
            utm_campaign="spring-sale",
            utm_content="hero",
            utm_term="shoes",
        )

    def test_without_utm_parameters_they_are_empty_strings(self) -> None:
        request = start_run_request(new_run(campaign(), NOW))

        assert request.HasField("description")
        assert request.description.notification_title.startswith("Hello {{")
        assert (request.description.utm_source, request.description.utm_term) == ("", "")

    def test_a_test_send_is_described_as_the_campaign(self) -> None:
        request = start_run_request(campaigns_domain.test_run(campaign(utm=UTM), NOW), utm=UTM)

        assert request.test
        assert request.description.notification_title == ("Hello {{ profile.name }}")
        assert request.description.utm_campaign == "spring-sale"

    def test_variants_each_have_their_title_and_the_first_is_the_runs(self) -> None:
        ab = campaign(
            notification=common_pb2.Notification(),
            variants=(variant("A", 50, "Ten percent off"), variant("B", 50, "Free shipping")),
            utm=UTM,
        )

        request = start_run_request(new_run(ab, NOW), utm=UTM)

        assert request.description.notification_title == "Ten percent off"
        assert [
            (v.variant_id, v.notification_title) for v in request.description.variant_titles
        ] == [
            ("A", "Ten percent off"),
            ("B", "Free shipping"),
        ]
        assert request.description.utm_source == "clarion"

    def test_the_rest_of_a_variant_test_with_a_winner_names_the_winner(self) -> None:
        ab = campaign(
            notification=common_pb2.Notification(),
            variants=(variant("A", 50, "Ten percent off"), variant("B", 50, "Free shipping")),
            variant_test=campaign_pb2.VariantTest(test_percent=20, wait_seconds=3600),
            utm=UTM,
        )
        tested = new_run(ab, NOW, with_test_phase=True)

        rest = rest_run(tested, Decision("B", 3.0, True, ()), NOW)
        request = start_run_request(rest, utm=UTM)

        assert request.description.notification_title == "Free shipping"
        assert [v.variant_id for v in request.description.variant_titles] == ["B"]

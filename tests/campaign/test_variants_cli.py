"""`clarion campaign create|update FILE` with an A/B test: variants:, variant_test: and
conversion_goal: in the words an operator writes (metric: conversion_rate, wait_seconds:
4h); a wrong key or value is one line naming it. `campaign show` and `run show` say the
test in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from clarion.campaign.v1 import campaign_pb2
from clarion.common.v1 import common_pb2
from clarion.remote import (
    _print_campaign,
    read_campaign_changes,
    read_campaign_file,
    variant_test_lines,
)
from services.kit.operator import OperatorError

AB = """\
name: Spring A/B
variants:
  - variant_id: A
    split_percent: 40
    notification:
      title: 20% off today
      target_url: https://shop.example/a
      actions: [{title: Shop now, url: https://shop.example/now}]
  - {variant_id: B, split_percent: 60, notification: {title: Sale!, target_url: https://shop.example/b}}
variant_test: {test_percent: 20, wait_seconds: 4h, metric: conversion_rate}
conversion_goal: {event_name: Charged, window_seconds: 1d, revenue_property: amount}
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "campaign.yaml"
    path.write_text(text)
    return str(path)


class TestCampaignFile:
    def test_an_ab_test_in_the_words_an_operator_writes(self, tmp_path: Path) -> None:
        request, _ = read_campaign_file(write(tmp_path, AB))

        assert [
            (v.variant_id, v.split_percent, v.notification.title) for v in request.variants
        ] == [
            ("A", 40, "20% off today"),
            ("B", 60, "Sale!"),
        ]
        assert request.variants[0].notification.actions[0].url == "https://shop.example/now"
        assert not request.HasField("notification")
        assert request.variant_test == campaign_pb2.VariantTest(
            test_percent=20,
            wait_seconds=4 * 3600,
            metric=campaign_pb2.WINNER_METRIC_CONVERSION_RATE,
        )
        assert request.conversion_goal == common_pb2.ConversionGoal(
            event_name="Charged", window_seconds=86400, revenue_property="amount"
        )

    def test_numbers_and_proto_names_are_taken_too(self, tmp_path: Path) -> None:
        request, _ = read_campaign_file(
            write(
                tmp_path,
                "variants: [{variant_id: 1, split_percent: 50, notification: {title: x}},"
                " {variantId: 2, splitPercent: 50, notification: {title: y}}]\n"
                "variantTest: {testPercent: 10, waitSeconds: 900,"
                " metric: WINNER_METRIC_CLICK_THROUGH_RATE}\n",
            )
        )

        assert [v.variant_id for v in request.variants] == ["1", "2"]
        assert request.variant_test.wait_seconds == 900
        assert request.variant_test.metric == campaign_pb2.WINNER_METRIC_CLICK_THROUGH_RATE

    def test_an_update_names_the_ab_test_fields(self, tmp_path: Path) -> None:
        campaign, paths = read_campaign_changes(write(tmp_path, AB + "notification:\n"))

        assert paths == ["name", "variants", "variant_test", "conversion_goal", "notification"]
        assert [v.variant_id for v in campaign.variants] == ["A", "B"]
        assert campaign.variant_test.test_percent == 20
        assert campaign.conversion_goal.event_name == "Charged"

    def test_empty_keys_turn_an_ab_test_back_into_one_notification(self, tmp_path: Path) -> None:
        campaign, paths = read_campaign_changes(
            write(
                tmp_path,
                "variants:\nvariant_test:\nnotification: {title: One, target_url: https://a.example/}\n",
            )
        )

        assert paths == [
            "variants",
            "variant_test",
            "notification.title",
            "notification.target_url",
        ]
        assert (list(campaign.variants), campaign.HasField("variant_test")) == ([], False)

    @pytest.mark.parametrize(
        ("text", "said"),
        [
            ("variants: {A: 50}\n", "variants must be a list"),
            ("variants: [{variant_id: A, share: 50}]\n", "variants[0] takes variant_id"),
            (
                "variants: [{variant_id: A, notification: {headline: x}}]\n",
                "variants[0].notification takes",
            ),
            (
                "variants: [{variant_id: A, notification: {actions: {title: x}}}]\n",
                "variants[0].notification.actions must be a list",
            ),
            ("variant_test: {test_percent: 10, metric: opens}\n", "variant_test.metric is 'opens'"),
            ("variant_test: {wait_seconds: soon}\n", "variant_test.wait_seconds"),
            ("conversion_goal: {event: Charged}\n", "conversion_goal takes event_name"),
            (
                "conversion_goal: {event_name: Charged, window_seconds: a week}\n",
                "conversion_goal.window_seconds",
            ),
        ],
    )
    def test_a_wrong_key_or_value_is_one_line_naming_it(
        self, tmp_path: Path, text: str, said: str
    ) -> None:
        with pytest.raises(OperatorError) as raised:
            read_campaign_file(write(tmp_path, text))

        assert said in str(raised.value)
        assert "\n" not in str(raised.value)


class TestInWords:
    def test_campaign_show_lists_the_variants_the_test_and_the_goal(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        request, _ = read_campaign_file(write(tmp_path, AB))

        _print_campaign(
            campaign_pb2.Campaign(
                name=request.name,
                variants=request.variants,
                variant_test=request.variant_test,
                conversion_goal=request.conversion_goal,
            ),
            as_json=False,
        )

        shown = capsys.readouterr().out
        assert "variant A        40%: 20% off today" in shown
        assert "variant B        60%: Sale!" in shown
        assert "20% first; the rest 4 h later gets the winner by conversion rate" in shown
        assert "Charged within 24 h, revenue amount" in shown

    def test_run_show_says_the_phase_and_the_decision(self) -> None:
        pending = campaign_pb2.Run(phase=campaign_pb2.RUN_PHASE_VARIANT_TEST)
        pending.rest_time.FromSeconds(1_800_000_000)
        cancelled = campaign_pb2.Run(phase=campaign_pb2.RUN_PHASE_VARIANT_TEST)
        rest = campaign_pb2.Run(
            phase=campaign_pb2.RUN_PHASE_VARIANT_REST,
            related_run_id="run_test",
            variant_decision=campaign_pb2.VariantDecision(
                winner_variant_id="B",
                significant=True,
                z_score=3.2071,
                results=[
                    campaign_pb2.VariantResult(variant_id="A", sent=100, successes=5, rate=0.05),
                    campaign_pb2.VariantResult(variant_id="B", sent=100, successes=20, rate=0.2),
                ],
            ),
        )

        assert "the rest goes at 2027-01-15" in variant_test_lines(pending)[0]
        assert "the rest of the audience is not sent" in variant_test_lines(cancelled)[0]
        assert variant_test_lines(rest) == [
            "variant test: the rest of the audience after run run_test; winner B (z = 3.21)",
            "  A: 5 of 100 (5.00%)",
            "  B: 20 of 100 (20.00%)",
        ]
        assert variant_test_lines(campaign_pb2.Run()) == []

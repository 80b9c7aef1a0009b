"""A/B variants in the campaign domain, without servers: the variant test's decision (a
two-proportion z-test, checked against values worked out by hand), what a campaign's
variants, variant test and conversion goal may be, and what delivery is handed for a
variant run and for the rest of a test."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from clarion.campaign.v1 import campaign_pb2
from clarion.common.v1 import common_pb2
from services.campaign.domain import campaigns as campaigns_domain
from services.campaign.domain import variants
from services.campaign.domain.campaigns import new_run, rest_run
from services.campaign.domain.variants import VariantOutcome, decide, two_proportion_z
from services.campaign.peer_clients import start_run_request
from services.campaign.store import CampaignRecord, RestState, RunPhase, Urgency
from services.kit.errors import InvalidArgument

NOW = datetime(2027, 5, 3, 9, 0, tzinfo=UTC)


def variant(
    variant_id: str, split: int, title: str = "", **notification: object
) -> campaign_pb2.Variant:
    return campaign_pb2.Variant(
        variant_id=variant_id,
        split_percent=split,
        notification=common_pb2.Notification(
            title=title or f"Title {variant_id}",
            target_url=f"https://shop.example/{variant_id.lower()}",
            **notification,  # type: ignore[arg-type]
        ),
    )


def campaign(**fields: object) -> CampaignRecord:
    values: dict[str, object] = {
        "campaign_id": "cmp_ab",
        "site_id": "site_ab",
        "name": "A/B",
        "notification": common_pb2.Notification(),
        "ttl_seconds": 3600,
        "urgency": Urgency.HIGH,
        "create_time": NOW,
        "update_time": NOW,
        "variants": (variant("A", 30), variant("B", 70)),
    }
    return CampaignRecord(**(values | fields))  # type: ignore[arg-type]


class TestTwoProportionZ:
    # Worked by hand: p = pooled successes / pooled sent,
    # z = (p_a - p_b) / sqrt(p (1 - p) (1/n_a + 1/n_b)).

    def test_a_clear_difference(self) -> None:
        # 8 % of 1000 against 5 % of 1000: p = 130/2000 = 0.065,
        # sqrt(0.065 * 0.935 * 0.002) = 0.0110250, z = 0.03 / 0.0110250 = 2.7211.
        assert two_proportion_z(80, 1000, 50, 1000) == pytest.approx(2.7211, abs=1e-4)

    def test_a_small_sample(self) -> None:
        # 14 % of 100 against 10 % of 100: p = 0.12, sqrt(0.12 * 0.88 * 0.02) = 0.0459565,
        # z = 0.04 / 0.0459565 = 0.8704.
        assert two_proportion_z(14, 100, 10, 100) == pytest.approx(0.8704, abs=1e-4)

    def test_is_antisymmetric(self) -> None:
        assert two_proportion_z(50, 1000, 80, 1000) == pytest.approx(-2.7211, abs=1e-4)

    def test_nothing_sent_or_no_variance_is_zero(self) -> None:
        assert two_proportion_z(0, 0, 5, 100) == 0.0
        assert two_proportion_z(5, 100, 0, 0) == 0.0
        assert two_proportion_z(0, 100, 0, 100) == 0.0  # pooled 0
        assert two_proportion_z(100, 100, 50, 50) == 0.0  # pooled 1


class TestDecide:
    def test_a_significant_best_wins(self) -> None:
        decision = decide([VariantOutcome("A", 1000, 50), VariantOutcome("B", 1000, 80)])

        assert (decision.winner_variant_id, decision.significant) == ("B", True)
        assert decision.z_score == pytest.approx(2.7211, abs=1e-4)
        assert [(o.variant_id, o.rate) for o in decision.outcomes] == [("A", 0.05), ("B", 0.08)]

    def test_just_below_and_just_above_1_96(self) -> None:
        # 12.7 % vs 10 % of 1000 each: p = 0.1135, sd = 0.014186, z = 0.027 / 0.014186 =
        # 1.9033; 12.9 %: p = 0.1145, sd = 0.014240, z = 0.029 / 0.014240 = 2.0365.
        below = decide([VariantOutcome("A", 1000, 100), VariantOutcome("B", 1000, 127)])
        above = decide([VariantOutcome("A", 1000, 100), VariantOutcome("B", 1000, 129)])

        assert (below.winner_variant_id, below.significant) == ("", False)
        assert below.z_score == pytest.approx(1.9033, abs=1e-4)
        assert (above.winner_variant_id, above.significant) == ("B", True)
        assert above.z_score == pytest.approx(2.0365, abs=1e-4)

    def test_the_best_is_tested_against_the_runner_up_not_the_worst(self) -> None:
        # C 12 % against B 9 % of 500 each: p = 0.105, sqrt(0.105 * 0.895 * 0.004) =
        # 0.019388, z = 0.03 / 0.019388 = 1.5473 (against A's 6 % it would be 3.3).
        decision = decide(
            [
                VariantOutcome("A", 500, 30),
                VariantOutcome("B", 500, 45),
                VariantOutcome("C", 500, 60),
            ]
        )

        assert (decision.winner_variant_id, decision.significant) == ("", False)
        assert decision.z_score == pytest.approx(1.5473, abs=1e-4)

    def test_a_tie_at_the_top_has_no_winner(self) -> None:
        decision = decide(
            [
                VariantOutcome("A", 1000, 90),
                VariantOutcome("B", 1000, 90),
                VariantOutcome("C", 1000, 10),
            ]
        )

        assert (decision.winner_variant_id, decision.z_score, decision.significant) == (
            "",
            0.0,
            False,
        )

    def test_zero_sends_have_no_winner(self) -> None:
        nothing = decide([VariantOutcome("A", 0, 0), VariantOutcome("B", 0, 0)])
        one_sided = decide([VariantOutcome("A", 500, 100), VariantOutcome("B", 0, 0)])

        assert (nothing.winner_variant_id, nothing.significant, nothing.z_score) == ("", False, 0.0)
        assert (one_sided.winner_variant_id, one_sided.significant) == ("", False)

    def test_more_successes_than_sends_are_capped(self) -> None:
        decision = decide([VariantOutcome("A", 10, 25), VariantOutcome("B", 10, 0)])

        assert [(o.successes, o.rate) for o in decision.outcomes] == [(10, 1.0), (0, 0.0)]
        assert math.isfinite(decision.z_score)


class TestWhatACampaignMayHold:
    @pytest.mark.parametrize(
        ("given", "reason", "field"),
        [
            ([variant("A", 100)], "TOO_FEW_VARIANTS", "variants"),
            ([variant("A", 50), variant("A", 50)], "DUPLICATE_VARIANT", "variants[1].variant_id"),
            ([variant("", 50), variant("B", 50)], "INVALID_VARIANT", "variants[0].variant_id"),
            ([variant("A b", 50), variant("B", 50)], "INVALID_VARIANT", "variants[0].variant_id"),
            (
                [variant("A" * 17, 50), variant("B", 50)],
                "INVALID_VARIANT",
                "variants[0].variant_id",
            ),
            (
                [variant("A", 0), variant("B", 100)],
                "INVALID_VARIANT_SPLIT",
                "variants[0].split_percent",
            ),
            ([variant("A", 50), variant("B", 40)], "INVALID_VARIANT_SPLIT", "variants"),
            ([variant(v, 10) for v in "ABCDEF"], "TOO_MANY_VARIANTS", "variants"),
        ],
    )
    def test_bad_variants_are_refused_naming_the_field(
        self, given: list[campaign_pb2.Variant], reason: str, field: str
    ) -> None:
        with pytest.raises(InvalidArgument) as raised:
            variants.checked_variants(given, common_pb2.Notification())

        assert (raised.value.reason, raised.value.metadata["field"]) == (reason, field)

    def test_variants_with_a_notification_are_refused(self) -> None:
        with pytest.raises(InvalidArgument) as raised:
            variants.checked_variants(
                [variant("A", 50), variant("B", 50)], common_pb2.Notification(title="Hi")
            )

        assert raised.value.reason == "NOTIFICATION_AND_VARIANTS"
        assert raised.value.metadata["field"] == "notification"
        assert "not both" in raised.value.message

    @pytest.mark.parametrize(
        ("test", "field"),
        [
            (
                campaign_pb2.VariantTest(test_percent=4, wait_seconds=3600),
                "variant_test.test_percent",
            ),
            (
                campaign_pb2.VariantTest(test_percent=51, wait_seconds=3600),
                "variant_test.test_percent",
            ),
            (
                campaign_pb2.VariantTest(test_percent=10, wait_seconds=299),
                "variant_test.wait_seconds",
            ),
            (
                campaign_pb2.VariantTest(test_percent=10, wait_seconds=604801),
                "variant_test.wait_seconds",
            ),
        ],
    )
    def test_a_variant_test_out_of_range_is_refused(
        self, test: campaign_pb2.VariantTest, field: str
    ) -> None:
        with pytest.raises(InvalidArgument) as raised:
            variants.checked_variant_test(test)

        assert (raised.value.reason, raised.value.metadata["field"]) == (
            "INVALID_VARIANT_TEST",
            field,
        )

    def test_the_edges_of_a_variant_test_are_kept(self) -> None:
        for test in (
            campaign_pb2.VariantTest(test_percent=5, wait_seconds=300),
            campaign_pb2.VariantTest(test_percent=50, wait_seconds=604800),
        ):
            assert variants.checked_variant_test(test) == test

    @pytest.mark.parametrize(
        ("goal", "field"),
        [
            (
                common_pb2.ConversionGoal(event_name="", window_seconds=3600),
                "conversion_goal.event_name",
            ),
            (
                common_pb2.ConversionGoal(event_name="  ", window_seconds=3600),
                "conversion_goal.event_name",
            ),
            (
                common_pb2.ConversionGoal(event_name="a\nb", window_seconds=3600),
                "conversion_goal.event_name",
            ),
            (
                common_pb2.ConversionGoal(event_name="x" * 129, window_seconds=3600),
                "conversion_goal.event_name",
            ),
            (
                common_pb2.ConversionGoal(event_name="Charged", window_seconds=59),
                "conversion_goal.window_seconds",
            ),
            (
                common_pb2.ConversionGoal(event_name="Charged", window_seconds=2592001),
                "conversion_goal.window_seconds",
            ),
            (
                common_pb2.ConversionGoal(
                    event_name="Charged", window_seconds=60, revenue_property="a\tb"
                ),
                "conversion_goal.revenue_property",
            ),
        ],
    )
    def test_a_bad_conversion_goal_is_refused(
        self, goal: common_pb2.ConversionGoal, field: str
    ) -> None:
        with pytest.raises(InvalidArgument) as raised:
            variants.checked_conversion_goal(goal)

        assert (raised.value.reason, raised.value.metadata["field"]) == (
            "INVALID_CONVERSION_GOAL",
            field,
        )

    def test_a_variant_test_needs_variants_a_goal_for_conversions_and_no_trigger(self) -> None:
        test = campaign_pb2.VariantTest(test_percent=10, wait_seconds=3600)
        by_conversions = campaign_pb2.VariantTest(
            test_percent=10, wait_seconds=3600, metric=campaign_pb2.WINNER_METRIC_CONVERSION_RATE
        )
        cases = [
            (campaign(variants=(), variant_test=test), "INVALID_VARIANT_TEST", "variant_test"),
            (campaign(variant_test=by_conversions), "INVALID_VARIANT_TEST", "variant_test.metric"),
            (campaign(variant_test=test, trigger="{}"), "VARIANT_TEST_AND_TRIGGER", "variant_test"),
        ]
        for record, reason, field in cases:
            with pytest.raises(InvalidArgument) as raised:
                variants.check_combination(record)
            assert (raised.value.reason, raised.value.metadata["field"]) == (reason, field)
        goal = common_pb2.ConversionGoal(event_name="Charged", window_seconds=3600)
        variants.check_combination(campaign(variant_test=by_conversions, conversion_goal=goal))
        variants.check_combination(campaign(trigger="{}"))  # variants alone may be live


class TestHandOff:
    def test_a_variant_run_hands_each_variant_with_its_weight_and_no_content(self) -> None:
        goal = common_pb2.ConversionGoal(event_name="Charged", window_seconds=3600)
        run = new_run(campaign(conversion_goal=goal), NOW)

        request = start_run_request(run)

        assert not request.HasField("content")
        assert [(v.variant_id, v.weight_percent) for v in request.variants] == [
            ("A", 30),
            ("B", 70),
        ]
        titles = [json.loads(v.content.payload)["title"] for v in request.variants]
        assert titles == ["Title A", "Title B"]
        assert {json.loads(v.content.payload)["run_id"] for v in request.variants} == {run.run_id}
        assert all(v.content.ttl_seconds == 3600 for v in request.variants)
        assert all(v.content.urgency == common_pb2.URGENCY_HIGH for v in request.variants)
        assert request.conversion_goal == goal
        assert not request.audience.HasField("sample")
        assert run.phase is RunPhase.NONE and run.rest_state is None

    def test_without_variants_the_content_goes_as_before(self) -> None:
        run = new_run(
            campaign(
                variants=(),
                notification=common_pb2.Notification(title="One", target_url="https://a.example/"),
            ),
            NOW,
        )

        request = start_run_request(run)

        assert json.loads(request.content.payload)["title"] == "One"
        assert list(request.variants) == []
        assert not request.HasField("conversion_goal")

    def test_a_test_send_of_one_variant_sends_it_alone_to_everyone(self) -> None:
        request = start_run_request(campaigns_domain.test_run(campaign(), NOW, variant_id="B"))

        assert [(v.variant_id, v.weight_percent) for v in request.variants] == [("B", 100)]
        assert json.loads(request.variants[0].content.payload)["test"] is True

    def test_a_variant_test_run_takes_its_sample_and_plans_its_rest(self) -> None:
        test = campaign_pb2.VariantTest(test_percent=20, wait_seconds=3600)
        run = new_run(campaign(variant_test=test), NOW, with_test_phase=True)

        request = start_run_request(run)

        assert (run.phase, run.rest_state, run.rest_time) == (
            RunPhase.VARIANT_TEST,
            RestState.PENDING,
            NOW + timedelta(hours=1),
        )
        sample = request.audience.sample
        assert (sample.start_basis_points, sample.end_basis_points) == (0, 2000)
        assert [(v.variant_id, v.weight_percent) for v in request.variants] == [
            ("A", 30),
            ("B", 70),
        ]
        # The rest sends what is tested, whatever the campaign becomes meanwhile.
        plan = run.rest_plan
        assert plan is not None
        assert (plan.variants, plan.metric) == (
            campaign().variants,
            campaign_pb2.WINNER_METRIC_CLICK_THROUGH_RATE,
        )

    def test_the_rest_sends_the_winner_to_everyone_else(self) -> None:
        test = new_run(
            campaign(variant_test=campaign_pb2.VariantTest(test_percent=20, wait_seconds=3600)),
            NOW,
            with_test_phase=True,
        )
        decision = decide([VariantOutcome("A", 1000, 50), VariantOutcome("B", 1000, 80)])
        later = NOW + timedelta(hours=1)

        rest = rest_run(test, decision, later)
        request = start_run_request(rest)

        assert rest.run_id > test.run_id  # a later id: listed after the test
        assert (rest.phase, rest.related_run_id, rest.create_time) == (
            RunPhase.VARIANT_REST,
            test.run_id,
            later,
        )
        assert [(v.variant_id, v.weight_percent) for v in request.variants] == [("B", 100)]
        assert json.loads(request.variants[0].content.payload)["run_id"] == rest.run_id
        sample = request.audience.sample
        assert (sample.start_basis_points, sample.end_basis_points) == (2000, 10000)
        shown = rest.variant_decision
        assert shown is not None
        assert (shown.winner_variant_id, shown.significant, shown.metric) == (
            "B",
            True,
            campaign_pb2.WINNER_METRIC_CLICK_THROUGH_RATE,
        )
        assert shown.z_score == pytest.approx(2.7211, abs=1e-4)
        assert [(r.variant_id, r.sent, r.successes) for r in shown.results] == [
            ("A", 1000, 50),
            ("B", 1000, 80),
        ]

    def test_with_no_winner_the_rest_gets_the_split(self) -> None:
        test = new_run(
            campaign(variant_test=campaign_pb2.VariantTest(test_percent=10, wait_seconds=3600)),
            NOW,
            with_test_phase=True,
        )
        decision = decide([VariantOutcome("A", 100, 10), VariantOutcome("B", 100, 14)])

        request = start_run_request(rest_run(test, decision, NOW + timedelta(hours=1)))

        assert [(v.variant_id, v.weight_percent) for v in request.variants] == [
            ("A", 30),
            ("B", 70),
        ]
        sample = request.audience.sample
        assert (sample.start_basis_points, sample.end_basis_points) == (1000, 10000)

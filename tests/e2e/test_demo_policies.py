"""`clarion demo --scenario policies`: a personalized A/B campaign under a frequency cap,
quiet hours, a throttle and a control group, on a moved clock, does on each database what
each policy says, and what its preview said per hour."""

from __future__ import annotations

import pytest

from clarion.demo_policies import run_policies_demo


@pytest.fixture
def settings(settings_factory):  # type: ignore[no-untyped-def]
    return settings_factory(push_timeout_seconds=2.0, delivery_poll_seconds=0.05)


class TestPoliciesScenario:
    async def test_every_policy_as_expected_and_the_preview_as_delivered(
        self,
        settings,  # type: ignore[no-untyped-def]
    ) -> None:
        result = await run_policies_demo(60, settings.data_dir, settings=settings, seed=3)

        policies = result["policies"]
        # Each policy actually acted: the demo's set-up is not vacuous.
        for name in ("frequency_cap", "control_group", "quiet_hours_delayed_to_08:00_local"):
            assert policies[name]["expected"] > 0, (name, result)
        assert policies["variant_A"]["expected"] > 0 and policies["variant_B"]["expected"] > 0
        for name, counts in policies.items():
            if name != "throttle_max_per_minute":
                assert counts["observed"] == counts["expected"], (name, result)
        assert 0 < policies["throttle_max_per_minute"]["observed"] <= 20, result
        # Sends in two hours at least: the evening's and Tokyo's morning after quiet hours.
        per_hour = result["preview_vs_delivered_per_hour"]
        assert len([row for row in per_hour if row["delivered"]]) >= 2, result
        assert all(row["preview_sent"] == row["delivered"] for row in per_hour), result
        for counts in result["preview_vs_observed_suppressed"].values():
            assert counts["preview"] == counts["observed"], result
        assert result["run_state"] == "RUN_STATE_DONE", result
        assert len(result["payloads"]) == 3, result
        assert result["wrong"] == 0, result

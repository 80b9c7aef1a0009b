"""`clarion demo --scenario segments`: a campaign to a saved segment reaches exactly the
subscribers a plain-Python evaluation of the definition selects, on each database."""

from __future__ import annotations

from clarion.demo_segments import run_segments_demo


class TestSegmentsScenario:
    async def test_the_received_set_is_the_definitions_selection(
        self, settings_factory  # type: ignore[no-untyped-def]
    ) -> None:
        settings = settings_factory(push_timeout_seconds=2.0, delivery_poll_seconds=0.05)

        result = await run_segments_demo(
            160, settings.data_dir, settings=settings, seed=11, timeout_seconds=120
        )

        # Some, not all: the definition actually selects.
        assert 0 < result["expected"] < result["subscribers"], result
        assert result["received"] == result["expected"], result
        assert result["mismatches"] == 0, result
        assert result["reach_subscribers"] == result["expected"], result
        assert sum(result["reach_by_browser"].values()) == result["reach_subscribers"]

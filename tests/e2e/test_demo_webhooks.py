"""`clarion demo --scenario webhooks`: browsers' views, clicks (body, each button, some
through the click redirect) and closes reach a local receiver as signed webhooks, each
once; forged events reach neither the report nor the receiver; the report's counts are
the receiver's. On each test database."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from clarion.demo_webhooks import UTM, DemoReceiver, Engagement, run_webhooks_demo, summarize


@pytest.fixture
def settings(settings_factory):  # type: ignore[no-untyped-def]
    return settings_factory(push_timeout_seconds=2.0, delivery_poll_seconds=0.05)


@pytest.mark.slow
class TestWebhooksScenario:
    async def test_every_event_arrives_signed_once_and_matches_the_report(
        self,
        settings,  # type: ignore[no-untyped-def]
    ) -> None:
        result = await run_webhooks_demo(60, settings.data_dir, settings=settings, seed=5)

        assert all(result["checks"].values()), result
        assert result["ok"] is True
        assert result["signature_failures"] == 0
        assert result["forged_sent"] >= 3 and result["forged_accepted"] == 0, result
        assert result["webhooks_received"] == result["events_expected"] > 60, result
        assert result["redelivered"] == 0, result
        report, receiver = result["report"], result["receiver"]
        assert result["equal"] is True
        assert receiver["View"] == report["viewed"] == 60
        assert receiver["Click"] == report["clicked"] > 0
        assert receiver["Close"] == report["closed"] > 0
        # Clicks on the body and on each of the two buttons.
        assert all(n > 0 for n in receiver["Click_by_button"].values()), result
        assert report["clicked_by_button"] == receiver["Click_by_button"], result
        assert result["clicks_through_redirect"] > 0
        # Campaign passes its UTM parameters and title into the run's description
        # (services/campaign/domain/campaigns.py, delivery's descriptions.py), and the
        # webhooks carry them.
        assert result["webhook_utm"] == {f"utm_{k}": [v] for k, v in UTM.items()}, result
        assert result["webhook_titles"] == ["Webhooks, end to end"], result
        assert result["webhook_sample"]["action"] == "Click"


class TestWebhooksChecks:
    """What makes the scenario fail (exit status 1): a forged event that got through,
    a lost or doubled webhook, a report that disagrees with the receiver."""

    @staticmethod
    def result(bodies: list[dict[str, object]], viewed: int = 1, clicked: int = 1) -> dict:
        receiver = DemoReceiver(bodies={f"msg_{i}": body for i, body in enumerate(bodies)})
        planned = [Engagement("sub_a", "viewed"), Engagement("sub_a", "clicked", "action_1")]
        forged = [({"subscriber_id": "sub_b"}, ("sub_b", "Click", 2))]
        report = SimpleNamespace(viewed=viewed, clicked=clicked, closed=0, clicked_by_button=[])
        return summarize(
            receiver=receiver,
            planned=planned,
            expected=Counter(e.key for e in planned),
            forged=forged,
            forged_accepted_http=0,
            report=report,
            problems=[],
            elapsed=1.0,
        )

    VIEW = {"cookie_id": "sub_a", "action": "View", "clicked_button": 0}
    CLICK = {"cookie_id": "sub_a", "action": "Click", "clicked_button": 1}

    def test_all_as_expected_passes(self) -> None:
        result = self.result([self.VIEW, self.CLICK])
        assert result["ok"] is True and result["equal"] is True

    def test_a_forged_click_that_reached_the_receiver_fails(self) -> None:
        forged = {"cookie_id": "sub_b", "action": "Click", "clicked_button": 2}
        result = self.result([self.VIEW, self.CLICK, forged], clicked=2)
        assert result["forged_accepted"] == 1
        assert result["checks"]["no_forged_accepted"] is False and result["ok"] is False

    def test_a_lost_or_doubled_webhook_fails(self) -> None:
        assert self.result([self.VIEW], clicked=0)["ok"] is False
        doubled = self.result([self.VIEW, self.CLICK, self.CLICK])
        assert doubled["checks"]["every_event_received_once"] is False

    def test_a_report_that_disagrees_with_the_receiver_fails(self) -> None:
        result = self.result([self.VIEW, self.CLICK], viewed=2)
        assert result["equal"] is False and result["ok"] is False

"""A campaign's delivery plan (PreviewCampaign): what a run of it started now would do,
per hour, browser and variant. The run is built as SendCampaignNow builds it (`new_run`;
a variant test's rest as the test starts it, `rest_run`) and described to delivery as
its hand-off would describe it (`handoff_settings`, then the peer client's
start_run_request), so the plan is delivery's own reading of the same audience, sample,
variants, timing, policies and TTL. Nothing is stored, here or in delivery."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from services.campaign.domain import variants
from services.campaign.domain.campaigns import Campaigns, handoff_settings, new_run, rest_run
from services.campaign.domain.ports import (
    DeliveryPlanView,
    DeliveryPort,
    PeerCallFailed,
    PlanRowView,
)
from services.campaign.store import CampaignStore, RunPhase, RunRecord, SiteRecord
from services.kit.clock import Clock
from services.kit.errors import FailedPrecondition, Unavailable

# A rest run planned before its test: no winner known, so no variant is planned.
_UNDECIDED = variants.Decision(winner_variant_id="", z_score=0.0, significant=False, outcomes=())


class CampaignPreviews:
    def __init__(
        self, campaigns: Campaigns, store: CampaignStore, clock: Clock, delivery: DeliveryPort
    ) -> None:
        self._campaigns = campaigns
        self._store = store
        self._clock = clock
        self._delivery = delivery

    async def preview(self, site_id: str, campaign_id: str) -> DeliveryPlanView:
        """The plan of a run started now. With variants each recipient's variant is its
        own; with a variant test, the test share is planned from now with the variants
        and the rest from the end of the test's wait, without a variant (the test
        decides it). FAILED_PRECONDITION for a live campaign (its runs go to whoever an
        event triggers: there is no audience to plan) and when delivery cannot plan
        the audience (segment refused it); UNAVAILABLE when delivery cannot answer."""
        campaign = await self._campaigns.get(site_id, campaign_id)
        if campaign.trigger is not None:
            raise FailedPrecondition(
                "LIVE_CAMPAIGN",
                f"campaign {campaign_id!r} is live: each of its runs goes to the people an "
                "event triggers, so there is no audience to plan before the events come",
                campaign_id=campaign_id,
            )
        now = self._clock.now()
        site = await self._store.get_site(site_id)
        # The run SendCampaignNow would start: a variant test's test run, with its sample.
        run = new_run(campaign, now, with_test_phase=True)
        split = [(variant.variant_id, variant.weight_percent) for variant in run.variants]
        if run.phase is not RunPhase.VARIANT_TEST:
            return await self._plan(run, site, split=split, sample=run.sample)
        assert run.rest_time is not None
        first = await self._plan(run, site, split=split, sample=run.sample)
        # Its rest as the test would start it at its rest time; which variant each gets
        # is the test's to decide, so none is planned.
        rest = rest_run(run, _UNDECIDED, run.rest_time)
        wait = round((run.rest_time - now).total_seconds())
        second = await self._plan(rest, site, sample=rest.sample, start_after_seconds=wait)
        return merged(first, second)

    async def _plan(
        self,
        run: RunRecord,
        site: SiteRecord | None,
        *,
        split: Sequence[tuple[str, int]] = (),
        sample: tuple[int, int] | None = None,
        start_after_seconds: int = 0,
    ) -> DeliveryPlanView:
        default_timezone, policy = handoff_settings(run, site)
        try:
            return await self._delivery.preview_plan(
                run,
                default_timezone,
                policy,
                variants=split,
                sample=sample,
                start_after_seconds=start_after_seconds,
            )
        except PeerCallFailed as failure:
            if failure.permanent:
                raise FailedPrecondition(
                    "PREVIEW_REFUSED",
                    f"delivery could not plan campaign {run.campaign_id!r}: {failure.detail}",
                    campaign_id=run.campaign_id,
                ) from None
            raise Unavailable(
                "DELIVERY_UNAVAILABLE",
                f"the delivery plan could not be made now: {failure}; try again",
                campaign_id=run.campaign_id,
            ) from None


def merged(*plans: DeliveryPlanView) -> DeliveryPlanView:
    """One plan of several runs' (a variant test's share and its rest): rows of the
    same hour, browser and variant added up, in time order, then browser, then variant."""
    sent: Counter[tuple[datetime, int, str]] = Counter()
    suppressed: dict[tuple[datetime, int, str], Counter[int]] = {}
    for plan in plans:
        for row in plan.rows:
            key = (row.hour_start, row.browser, row.variant_id)
            sent[key] += row.sent
            suppressed.setdefault(key, Counter()).update(row.suppressed)
    return DeliveryPlanView(
        snapshot_time=plans[0].snapshot_time,
        audience=sum(plan.audience for plan in plans),
        rows=tuple(
            PlanRowView(*key, sent[key], dict(sorted(suppressed[key].items())))
            for key in sorted(suppressed)
        ),
    )

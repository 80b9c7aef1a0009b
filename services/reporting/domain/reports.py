"""Reporting rules: validate whole batches before anything is stored, then record
idempotently; turn stored totals into a campaign's or a run's report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.kit.clock import Clock
from services.kit.errors import InvalidArgument, NotFound
from services.kit.goals import check_conversion_goal
from services.reporting.models import ID_LENGTH
from services.reporting.store import (
    DeliveryStatus,
    DescriptionRecord,
    EngagementKind,
    EngagementRecord,
    GoalRecord,
    OutcomeRecord,
    ReportingStore,
    ReportTotals,
    RunAudienceRecord,
)

# Delivery reports outcomes in chunks; a bound keeps one call's transaction short.
MAX_BATCH = 10_000
# A conversion goal's window: a minute to 30 days (clarion.common.v1.ConversionGoal).
MAX_VARIANT_LENGTH = 16


@dataclass(frozen=True)
class OutcomeInput:
    """One outcome as a caller sent it; `status` is None when it was left unspecified."""

    run_id: str
    campaign_id: str
    subscriber_id: str
    status: DeliveryStatus | None
    # The stored word of a DeliveryReason ("push_service_410", "" for a sent one);
    # None when the caller sent a value this service does not know.
    reason: str | None
    browser: str
    occur_time: datetime | None
    # Of a test send: stored, and left out of reports.
    test: bool = False
    # The A/B variant it got, and its subscriber's profile; empty: none.
    variant: str = ""
    profile_id: str = ""


@dataclass(frozen=True)
class ConversionGoalInput:
    """A run's conversion goal as a caller sent it."""

    event_name: str
    window_seconds: int
    revenue_property: str = ""


@dataclass(frozen=True)
class EngagementInput:
    """One engagement event as a caller sent it; `kind` is None when left unspecified."""

    run_id: str
    campaign_id: str
    subscriber_id: str
    kind: EngagementKind | None
    button: str
    occur_time: datetime | None


@dataclass(frozen=True)
class VariantReport:
    variant_id: str
    sent: int
    viewed: int
    clicked: int
    click_through_rate: float
    conversions: int
    conversion_rate: float
    revenue: float


@dataclass(frozen=True)
class CampaignReport:
    campaign_id: str
    runs: int
    audience: int
    sent: int
    failed: int
    suppressed: int
    expired: int
    viewed: int
    clicked: int
    closed: int
    click_through_rate: float
    last_sent_time: datetime | None
    conversions: int = 0
    conversion_rate: float = 0.0
    revenue: float = 0.0
    variants: tuple[VariantReport, ...] = ()
    control_group: int = 0
    control_group_conversions: int = 0


@dataclass(frozen=True)
class RunReport:
    run_id: str
    campaign_id: str
    audience: int
    sent: int
    failed: int
    suppressed: int
    expired: int
    viewed: int
    clicked: int
    click_through_rate: float
    conversions: int
    conversion_rate: float
    revenue: float
    variants: tuple[VariantReport, ...]
    test: bool


def _rate(part: int, whole: int) -> float:
    """part / whole, 0 when whole is 0 (nothing sent, nothing to rate)."""
    return part / whole if whole else 0.0


def _variants(totals: ReportTotals) -> tuple[VariantReport, ...]:
    return tuple(
        VariantReport(
            variant_id=v.variant,
            sent=v.sent,
            viewed=v.viewed,
            clicked=v.clicked,
            click_through_rate=_rate(v.clicked, v.sent),
            conversions=v.conversions,
            conversion_rate=_rate(v.conversions, v.sent),
            revenue=v.revenue,
        )
        for v in totals.variants
    )


def _goal_record(goal: ConversionGoalInput) -> GoalRecord:
    """The goal, checked (services/kit/goals.py)."""
    check_conversion_goal(goal.event_name, goal.window_seconds, goal.revenue_property)
    return GoalRecord(goal.event_name, goal.window_seconds, goal.revenue_property)


def _require_id(value: str, field: str) -> None:
    if not value:
        raise InvalidArgument("MISSING_FIELD", f"{field} is required", field=field)
    _require_at_most(value, ID_LENGTH, field)


def _require_at_most(value: str, limit: int, field: str) -> None:
    if len(value) > limit:
        raise InvalidArgument(
            "FIELD_TOO_LONG", f"{field} is longer than {limit} characters", field=field
        )


def _require_batch(size: int, field: str) -> None:
    if size == 0:
        raise InvalidArgument("EMPTY_BATCH", f"{field} is empty; send at least one", field=field)
    if size > MAX_BATCH:
        raise InvalidArgument(
            "BATCH_TOO_LARGE",
            f"{field} has {size} items; send at most {MAX_BATCH} per call",
            field=field,
        )


class Reporting:
    def __init__(
        self,
        store: ReportingStore,
        clock: Clock,
        *,
        on_webhooks_queued: Callable[[], None] | None = None,
    ) -> None:
        """`on_webhooks_queued` is called after engagement queued webhook messages (the
        dispatcher's wake-up, so they go out without waiting for its next round)."""
        self._store = store
        self._clock = clock
        self._on_webhooks_queued = on_webhooks_queued

    async def record_run_audience(
        self,
        site_id: str,
        run_id: str,
        campaign_id: str,
        audience: int,
        *,
        test: bool = False,
        goal: ConversionGoalInput | None = None,
        description: DescriptionRecord | None = None,
    ) -> None:
        """Stores the run's audience (a repeat replaces it) and, when given, the goal its
        conversions are counted by and what webhooks say of it (a repeat without one
        keeps the stored one)."""
        _require_id(run_id, "run_id")
        _require_id(campaign_id, "campaign_id")
        if audience < 0:
            raise InvalidArgument(
                "NEGATIVE_AUDIENCE", f"audience must be 0 or more, got {audience}", field="audience"
            )
        goal_record = _goal_record(goal) if goal is not None else None
        await self._store.upsert_run_audience(
            site_id,
            RunAudienceRecord(run_id, campaign_id, audience, self._clock.now(), test),
            goal_record,
            description,
        )

    async def record_delivery_outcomes(
        self, site_id: str, outcomes: Sequence[OutcomeInput]
    ) -> int:
        """Returns how many outcomes were new; repeats of recorded ones are ignored."""
        _require_batch(len(outcomes), "outcomes")
        now = self._clock.now()
        records = []
        for index, outcome in enumerate(outcomes):
            prefix = f"outcomes[{index}]"
            _require_id(outcome.run_id, f"{prefix}.run_id")
            _require_id(outcome.campaign_id, f"{prefix}.campaign_id")
            _require_id(outcome.subscriber_id, f"{prefix}.subscriber_id")
            if outcome.status is None:
                raise InvalidArgument(
                    "MISSING_STATUS",
                    f"{prefix}.status is unspecified; use SENT, FAILED, SUPPRESSED or EXPIRED",
                    field=f"{prefix}.status",
                )
            if outcome.reason is None:
                raise InvalidArgument(
                    "INVALID_REASON",
                    f"{prefix}.reason is not a DeliveryReason this service knows; "
                    "use one of the DELIVERY_REASON_* values",
                    field=f"{prefix}.reason",
                )
            _require_at_most(outcome.variant, MAX_VARIANT_LENGTH, f"{prefix}.variant")
            _require_at_most(outcome.profile_id, ID_LENGTH, f"{prefix}.profile_id")
            records.append(
                OutcomeRecord(
                    run_id=outcome.run_id,
                    campaign_id=outcome.campaign_id,
                    subscriber_id=outcome.subscriber_id,
                    status=outcome.status,
                    reason=outcome.reason,
                    browser=outcome.browser,
                    occur_time=outcome.occur_time or now,
                    test=outcome.test,
                    variant=outcome.variant,
                    profile_id=outcome.profile_id,
                )
            )
        return await self._store.insert_outcomes(site_id, records)

    async def record_engagement_events(
        self, site_id: str, events: Sequence[EngagementInput]
    ) -> int:
        """Returns how many events were new; repeats of recorded ones are ignored."""
        _require_batch(len(events), "events")
        now = self._clock.now()
        records = []
        for index, event in enumerate(events):
            prefix = f"events[{index}]"
            _require_id(event.run_id, f"{prefix}.run_id")
            _require_id(event.campaign_id, f"{prefix}.campaign_id")
            _require_id(event.subscriber_id, f"{prefix}.subscriber_id")
            if event.kind is None:
                raise InvalidArgument(
                    "MISSING_KIND",
                    f"{prefix}.kind is unspecified; use VIEWED, CLICKED or CLOSED",
                    field=f"{prefix}.kind",
                )
            _require_at_most(event.button, ID_LENGTH, f"{prefix}.button")
            records.append(
                EngagementRecord(
                    run_id=event.run_id,
                    campaign_id=event.campaign_id,
                    subscriber_id=event.subscriber_id,
                    kind=event.kind,
                    button=event.button,
                    occur_time=event.occur_time or now,
                )
            )
        # The browser names the campaign; the run decides it. An event claiming another
        # campaign than its run's is refused, so a genuine token cannot move engagement.
        known = await self._store.campaigns_of_runs(site_id, [r.run_id for r in records])
        for index, record in enumerate(records):
            owner = known.get(record.run_id)
            if owner is not None and owner != record.campaign_id:
                raise InvalidArgument(
                    "CAMPAIGN_MISMATCH",
                    f"events[{index}]: run {record.run_id!r} belongs to campaign {owner!r}, "
                    f"not {record.campaign_id!r}",
                    field=f"events[{index}].campaign_id",
                )
        recorded, queued = await self._store.insert_engagement_events(site_id, records, now)
        if queued and self._on_webhooks_queued is not None:
            self._on_webhooks_queued()
        return recorded

    async def campaign_report(self, site_id: str, campaign_id: str) -> CampaignReport:
        _require_id(campaign_id, "campaign_id")
        totals = await self._store.campaign_totals(site_id, campaign_id)
        if totals.runs == 0:
            raise NotFound(
                "CAMPAIGN_REPORT_NOT_FOUND",
                f"no run was recorded for campaign {campaign_id!r} in this site",
                campaign_id=campaign_id,
            )
        sent = totals.outcomes.get(DeliveryStatus.SENT, 0)
        clicked = totals.engaged.get(EngagementKind.CLICKED, 0)
        return CampaignReport(
            campaign_id=campaign_id,
            runs=totals.runs,
            audience=totals.audience,
            sent=sent,
            failed=totals.outcomes.get(DeliveryStatus.FAILED, 0),
            suppressed=totals.outcomes.get(DeliveryStatus.SUPPRESSED, 0),
            expired=totals.outcomes.get(DeliveryStatus.EXPIRED, 0),
            viewed=totals.engaged.get(EngagementKind.VIEWED, 0),
            clicked=clicked,
            closed=totals.engaged.get(EngagementKind.CLOSED, 0),
            click_through_rate=_rate(clicked, sent),
            last_sent_time=totals.last_sent_time,
            conversions=totals.conversions,
            conversion_rate=_rate(totals.conversions, sent),
            revenue=totals.revenue,
            variants=_variants(totals),
            control_group=totals.control_group,
            control_group_conversions=totals.control_group_conversions,
        )

    async def run_report(self, site_id: str, run_id: str) -> RunReport:
        """One run's totals; a test send's too (marked), since it is asked for by id."""
        _require_id(run_id, "run_id")
        totals = await self._store.run_totals(site_id, run_id)
        if totals is None:
            raise NotFound(
                "RUN_REPORT_NOT_FOUND",
                f"no audience or outcome was recorded for run {run_id!r} in this site",
                run_id=run_id,
            )
        sent = totals.outcomes.get(DeliveryStatus.SENT, 0)
        clicked = totals.engaged.get(EngagementKind.CLICKED, 0)
        return RunReport(
            run_id=run_id,
            campaign_id=totals.campaign_id,
            audience=totals.audience,
            sent=sent,
            failed=totals.outcomes.get(DeliveryStatus.FAILED, 0),
            suppressed=totals.outcomes.get(DeliveryStatus.SUPPRESSED, 0),
            expired=totals.outcomes.get(DeliveryStatus.EXPIRED, 0),
            viewed=totals.engaged.get(EngagementKind.VIEWED, 0),
            clicked=clicked,
            click_through_rate=_rate(clicked, sent),
            conversions=totals.conversions,
            conversion_rate=_rate(totals.conversions, sent),
            revenue=totals.revenue,
            variants=_variants(totals),
            test=totals.test,
        )

"""Reporting rules: validate whole batches before anything is stored, then record
idempotently; turn stored totals into a campaign's or a run's report."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

from services.kit.clock import Clock
from services.kit.errors import InvalidArgument, NotFound
from services.kit.goals import check_conversion_goal
from services.kit.pages import decode_page_token, encode_page_token, page_size
from services.reporting.models import ID_LENGTH
from services.reporting.store import (
    CONTROL_GROUP_REASON,
    UNATTRIBUTED,
    DeliveryStatus,
    DescriptionRecord,
    EngagementKind,
    EngagementRecord,
    GoalRecord,
    OutcomeBatch,
    RecipientActivityRecord,
    ReportingStore,
    ReportTotals,
    RunAudienceRecord,
)

# Delivery reports outcomes in chunks; a bound keeps one call's transaction short.
MAX_BATCH = 10_000
# A conversion goal's window: a minute to 30 days (clarion.common.v1.ConversionGoal).
MAX_VARIANT_LENGTH = 16
# Browsers (stored words) that report no views: legacy Safari (APNs website push) has no
# service worker. Reports say "not measured" for them instead of a measured 0.
# The word is how the Browser value BROWSER_SAFARI_LEGACY is stored.
VIEWS_NOT_MEASURED = frozenset({"safari_legacy"})
# The Wald interval's z for 95 %.
Z_95 = 1.96
MAX_TIMELINE_HOURS = 720
RUN_PAGE_DEFAULT = 20
RUN_PAGE_MAX = 100


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
class OutcomeInputs:
    """Outcomes as a caller sent them, as columns (item i of every list is outcome i):
    a batch of thousands is checked and stored a column at a time. As in OutcomeInput,
    a status is None when unspecified, a reason when unknown, a time when not sent."""

    run_ids: list[str]
    campaign_ids: list[str]
    subscriber_ids: list[str]
    statuses: list[DeliveryStatus | None]
    reasons: list[str | None]
    browsers: list[str]
    occur_times: list[datetime | None]
    tests: list[bool]
    variants: list[str]
    profile_ids: list[str]

    @classmethod
    def of(cls, outcomes: Sequence[OutcomeInput]) -> OutcomeInputs:
        return cls(
            [o.run_id for o in outcomes],
            [o.campaign_id for o in outcomes],
            [o.subscriber_id for o in outcomes],
            [o.status for o in outcomes],
            [o.reason for o in outcomes],
            [o.browser for o in outcomes],
            [o.occur_time for o in outcomes],
            [o.test for o in outcomes],
            [o.variant for o in outcomes],
            [o.profile_id for o in outcomes],
        )

    def item(self, index: int) -> OutcomeInput:
        return OutcomeInput(
            run_id=self.run_ids[index],
            campaign_id=self.campaign_ids[index],
            subscriber_id=self.subscriber_ids[index],
            status=self.statuses[index],
            reason=self.reasons[index],
            browser=self.browsers[index],
            occur_time=self.occur_times[index],
            test=self.tests[index],
            variant=self.variants[index],
            profile_id=self.profile_ids[index],
        )


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
class ReasonCount:
    reason: str
    count: int


@dataclass(frozen=True)
class ButtonClicks:
    button: str
    clicked: int


@dataclass(frozen=True)
class BrowserReport:
    # The stored word ("chrome", ...).
    browser: str
    audience: int
    sent: int
    failed: int
    suppressed: int
    expired: int
    viewed: int
    clicked: int
    closed: int
    click_through_rate: float
    views_measured: bool


@dataclass(frozen=True)
class TimelineHour:
    hour_start_time: datetime
    sent: int
    viewed: int
    clicked: int
    converted: int


@dataclass(frozen=True)
class Lift:
    sent_recipients: int
    sent_converted: int
    control_recipients: int
    control_converted: int
    sent_conversion_rate: float
    control_conversion_rate: float
    difference: float
    difference_low: float
    difference_high: float
    significant: bool


@dataclass(frozen=True)
class Report:
    """A campaign's report over its runs (test sends left out), or one run's."""

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
    failed_by_reason: tuple[ReasonCount, ...] = ()
    suppressed_by_reason: tuple[ReasonCount, ...] = ()
    expired_by_reason: tuple[ReasonCount, ...] = ()
    clicked_by_button: tuple[ButtonClicks, ...] = ()
    browsers: tuple[BrowserReport, ...] = ()
    timeline: tuple[TimelineHour, ...] = ()
    sent_views_not_measured: int = 0
    view_rate: float = 0.0
    unsubscribes_after_push: int = 0
    lift: Lift | None = None
    # Of a run.
    run_id: str = ""
    test: bool = False
    start_time: datetime | None = field(default=None, compare=False)


# A campaign's report and a run's are the same totals over different runs.
CampaignReport = Report
RunReport = Report


@dataclass(frozen=True)
class RunReportPage:
    reports: list[Report]
    next_page_token: str


@dataclass(frozen=True)
class RecipientActivity:
    run_id: str
    subscriber_id: str
    status: DeliveryStatus | None
    reason: str
    viewed_time: datetime | None
    clicked_time: datetime | None
    clicked_button: str
    closed_time: datetime | None
    conversions: int
    revenue: float
    converted_time: datetime | None
    variant: str
    control_group: bool
    browser: str


def _rate(part: int, whole: int) -> float:
    """part / whole, 0 when whole is 0 (nothing sent, nothing to rate)."""
    return part / whole if whole else 0.0


def _by_reason(counts: dict[str, int]) -> tuple[ReasonCount, ...]:
    """Most first; ties by reason."""
    return tuple(
        ReasonCount(reason, n)
        for reason, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if n
    )


def lift(sent: int, sent_converted: int, control: int, control_converted: int) -> Lift:
    """Sent recipients' conversion rate against the control group's, with the Wald 95 %
    interval of the difference of two independent proportions."""
    p1 = _rate(sent_converted, sent)
    p2 = _rate(control_converted, control)
    variance = (p1 * (1 - p1) / sent if sent else 0.0) + (
        p2 * (1 - p2) / control if control else 0.0
    )
    half = Z_95 * math.sqrt(variance)
    difference = p1 - p2
    low, high = difference - half, difference + half
    return Lift(
        sent_recipients=sent,
        sent_converted=sent_converted,
        control_recipients=control,
        control_converted=control_converted,
        sent_conversion_rate=p1,
        control_conversion_rate=p2,
        difference=difference,
        difference_low=low,
        difference_high=high,
        significant=low > 0 or high < 0,
    )


def build_report(totals: ReportTotals) -> Report:
    """A report from summed counters (see services.reporting.models.ReportCounter)."""
    status: dict[str, defaultdict[str, int]] = {s.value: defaultdict(int) for s in DeliveryStatus}
    metric: defaultdict[str, int] = defaultdict(int)
    buttons: defaultdict[str, int] = defaultdict(int)
    by_browser: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_variant: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    revenue = 0.0
    variant_revenue: defaultdict[str, float] = defaultdict(float)
    for row in totals.counters:
        not_measured_view = row.metric == "viewed" and row.browser in VIEWS_NOT_MEASURED
        if row.metric in status:
            status[row.metric][row.key] += row.n
        elif row.metric == "button":
            buttons[row.key] += row.n
        if not not_measured_view:
            metric[row.metric] += row.n
            by_variant[row.variant][row.metric] += row.n
        if row.browser not in ("", UNATTRIBUTED) and row.metric != "button":
            by_browser[row.browser][row.metric] += row.n
        if row.metric == "conversions":
            revenue += row.amount
            variant_revenue[row.variant] += row.amount
    sent = metric["sent"]
    clicked = metric["clicked"]
    not_measured = sum(by_browser[b]["sent"] for b in VIEWS_NOT_MEASURED if b in by_browser)
    control_group = status[DeliveryStatus.SUPPRESSED.value].get(CONTROL_GROUP_REASON, 0)
    browsers = tuple(
        BrowserReport(
            browser=browser,
            audience=sum(counts[s.value] for s in DeliveryStatus),
            sent=counts["sent"],
            failed=counts["failed"],
            suppressed=counts["suppressed"],
            expired=counts["expired"],
            viewed=0 if browser in VIEWS_NOT_MEASURED else counts["viewed"],
            clicked=counts["clicked"],
            closed=counts["closed"],
            click_through_rate=_rate(counts["clicked"], counts["sent"]),
            views_measured=browser not in VIEWS_NOT_MEASURED,
        )
        for browser, counts in sorted(by_browser.items())
        if sum(counts[s.value] for s in DeliveryStatus)
    )
    hours: defaultdict[datetime, dict[str, int]] = defaultdict(dict)
    for hour, name, n in totals.hours:
        hours[hour][name] = hours[hour].get(name, 0) + n
    timeline = tuple(
        TimelineHour(
            hour_start_time=hour,
            sent=counts.get("sent", 0),
            viewed=counts.get("viewed", 0),
            clicked=counts.get("clicked", 0),
            converted=counts.get("converted", 0),
        )
        for hour, counts in sorted(hours.items())[-MAX_TIMELINE_HOURS:]
    )
    variants = tuple(
        VariantReport(
            variant_id=variant,
            sent=by_variant[variant]["sent"],
            viewed=by_variant[variant]["viewed"],
            clicked=by_variant[variant]["clicked"],
            click_through_rate=_rate(by_variant[variant]["clicked"], by_variant[variant]["sent"]),
            conversions=by_variant[variant]["conversions"],
            conversion_rate=_rate(by_variant[variant]["conversions"], by_variant[variant]["sent"]),
            revenue=variant_revenue[variant],
        )
        for variant in totals.variants
    )
    viewed = metric["viewed"]
    return Report(
        campaign_id=totals.campaign_id,
        runs=totals.runs,
        audience=totals.audience,
        sent=sent,
        failed=metric["failed"],
        suppressed=metric["suppressed"],
        expired=metric["expired"],
        viewed=viewed,
        clicked=clicked,
        closed=metric["closed"],
        click_through_rate=_rate(clicked, sent),
        last_sent_time=totals.last_sent_time,
        conversions=metric["conversions"],
        conversion_rate=_rate(metric["conversions"], sent),
        revenue=revenue,
        variants=variants,
        control_group=control_group,
        control_group_conversions=metric["control_converted"],
        failed_by_reason=_by_reason(status[DeliveryStatus.FAILED.value]),
        suppressed_by_reason=_by_reason(status[DeliveryStatus.SUPPRESSED.value]),
        expired_by_reason=_by_reason(status[DeliveryStatus.EXPIRED.value]),
        clicked_by_button=tuple(ButtonClicks(b, n) for b, n in sorted(buttons.items()) if n),
        browsers=browsers,
        timeline=timeline,
        sent_views_not_measured=not_measured,
        view_rate=_rate(viewed, sent - not_measured),
        unsubscribes_after_push=metric["unsubscribed"],
        lift=(
            lift(sent, metric["converted"], control_group, metric["control_converted"])
            if control_group and totals.has_goal
            else None
        ),
        run_id=totals.run_id,
        test=totals.test,
        start_time=totals.start_time,
    )


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _run_position(after: str) -> tuple[datetime, str] | None:
    micros, _, run_id = after.partition(":")
    if not micros.isdigit() or not run_id or len(run_id) > ID_LENGTH:
        return None
    try:
        return EPOCH + timedelta(microseconds=int(micros)), run_id
    except OverflowError:
        return None


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


def _check_outcome(outcome: OutcomeInput, prefix: str) -> None:
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
        self, site_id: str, outcomes: Sequence[OutcomeInput] | OutcomeInputs
    ) -> int:
        """Returns how many outcomes were new; repeats of recorded ones are ignored."""
        columns = outcomes if isinstance(outcomes, OutcomeInputs) else OutcomeInputs.of(outcomes)
        size = len(columns.run_ids)
        _require_batch(size, "outcomes")
        # A column at a time; only a batch with something wrong is walked outcome by
        # outcome, for the first problem and its field.
        ids = (columns.run_ids, columns.campaign_ids, columns.subscriber_ids)
        if (
            any("" in column or max(map(len, column)) > ID_LENGTH for column in ids)
            or None in columns.statuses
            or None in columns.reasons
            or max(map(len, columns.variants)) > MAX_VARIANT_LENGTH
            or max(map(len, columns.profile_ids)) > ID_LENGTH
        ):
            for index in range(size):
                _check_outcome(columns.item(index), f"outcomes[{index}]")
        occur_times = columns.occur_times
        if None in occur_times:
            now = self._clock.now()
            occur_times = [now if at is None else at for at in occur_times]
        batch = OutcomeBatch(
            columns.run_ids,
            columns.campaign_ids,
            columns.subscriber_ids,
            cast(list[DeliveryStatus], columns.statuses),
            cast(list[str], columns.reasons),
            columns.browsers,
            cast(list[datetime], occur_times),
            columns.tests,
            columns.variants,
            columns.profile_ids,
        )
        return await self._store.insert_outcome_batch(site_id, batch)

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

    async def campaign_report(self, site_id: str, campaign_id: str) -> Report:
        _require_id(campaign_id, "campaign_id")
        totals = await self._store.campaign_totals(site_id, campaign_id)
        if totals.runs == 0:
            raise NotFound(
                "CAMPAIGN_REPORT_NOT_FOUND",
                f"no run was recorded for campaign {campaign_id!r} in this site",
                campaign_id=campaign_id,
            )
        return build_report(totals)

    async def run_report(self, site_id: str, run_id: str) -> Report:
        """One run's totals; a test send's too (marked), since it is asked for by id."""
        _require_id(run_id, "run_id")
        totals = await self._store.run_totals(site_id, run_id)
        if totals is None:
            raise NotFound(
                "RUN_REPORT_NOT_FOUND",
                f"no audience or outcome was recorded for run {run_id!r} in this site",
                run_id=run_id,
            )
        return build_report(totals)

    async def list_run_reports(
        self,
        site_id: str,
        campaign_id: str,
        requested_size: int,
        page_token: str,
        *,
        include_test: bool = False,
    ) -> RunReportPage:
        """A campaign's runs' reports, newest run first (by when it started)."""
        _require_id(campaign_id, "campaign_id")
        size = page_size(requested_size, default=RUN_PAGE_DEFAULT, maximum=RUN_PAGE_MAX)
        after = decode_page_token(page_token, valid=_run_position)
        position = _run_position(after) if after is not None else None
        totals = await self._store.run_totals_page(
            site_id, campaign_id, after=position, limit=size + 1, include_test=include_test
        )
        reports = [build_report(t) for t in totals[:size]]
        token = ""
        if len(totals) > size:
            last = totals[size - 1]
            assert last.start_time is not None
            token = encode_page_token(f"{_micros(last.start_time)}:{last.run_id}")
        return RunReportPage(reports, token)

    async def recipient_activity(
        self, site_id: str, run_id: str, subscriber_id: str
    ) -> RecipientActivity:
        _require_id(run_id, "run_id")
        _require_id(subscriber_id, "subscriber_id")
        record: RecipientActivityRecord | None = await self._store.recipient_activity(
            site_id, run_id, subscriber_id
        )
        if record is None:
            raise NotFound(
                "RECIPIENT_ACTIVITY_NOT_FOUND",
                f"nothing was recorded for subscriber {subscriber_id!r} of run {run_id!r} "
                "in this site",
                run_id=run_id,
                subscriber_id=subscriber_id,
            )
        outcome = record.outcome

        def first(kind: EngagementKind) -> datetime | None:
            seen = record.first.get(kind)
            return seen[0] if seen is not None else None

        click = record.first.get(EngagementKind.CLICKED)
        return RecipientActivity(
            run_id=run_id,
            subscriber_id=subscriber_id,
            status=outcome.status if outcome is not None else None,
            reason=outcome.reason if outcome is not None else "",
            viewed_time=first(EngagementKind.VIEWED),
            clicked_time=first(EngagementKind.CLICKED),
            clicked_button=click[1] if click is not None else "",
            closed_time=first(EngagementKind.CLOSED),
            conversions=record.conversions,
            revenue=record.revenue,
            converted_time=record.first_conversion_time,
            variant=outcome.variant if outcome is not None else "",
            control_group=outcome is not None
            and outcome.status is DeliveryStatus.SUPPRESSED
            and outcome.reason == CONTROL_GROUP_REASON,
            browser=outcome.browser if outcome is not None else "",
        )

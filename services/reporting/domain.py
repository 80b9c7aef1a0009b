"""Reporting rules: validate whole batches before anything is stored, then record
idempotently; turn stored totals into a campaign report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.kit.clock import Clock
from services.kit.errors import InvalidArgument, NotFound
from services.reporting.models import ID_LENGTH
from services.reporting.store import (
    DeliveryStatus,
    EngagementKind,
    EngagementRecord,
    OutcomeRecord,
    ReportingStore,
    RunAudienceRecord,
)

# Delivery reports outcomes in chunks; a bound keeps one call's transaction short.
MAX_BATCH = 10_000


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


def _require_id(value: str, field: str) -> None:
    if not value:
        raise InvalidArgument("MISSING_FIELD", f"{field} is required", field=field)
    if len(value) > ID_LENGTH:
        raise InvalidArgument(
            "FIELD_TOO_LONG", f"{field} is longer than {ID_LENGTH} characters", field=field
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
    def __init__(self, store: ReportingStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def record_run_audience(
        self, site_id: str, run_id: str, campaign_id: str, audience: int, *, test: bool = False
    ) -> None:
        _require_id(run_id, "run_id")
        _require_id(campaign_id, "campaign_id")
        if audience < 0:
            raise InvalidArgument(
                "NEGATIVE_AUDIENCE", f"audience must be 0 or more, got {audience}", field="audience"
            )
        await self._store.upsert_run_audience(
            site_id, RunAudienceRecord(run_id, campaign_id, audience, self._clock.now(), test)
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
            if len(event.button) > ID_LENGTH:
                raise InvalidArgument(
                    "FIELD_TOO_LONG",
                    f"{prefix}.button is longer than {ID_LENGTH} characters",
                    field=f"{prefix}.button",
                )
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
        return await self._store.insert_engagement_events(site_id, records)

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
            click_through_rate=clicked / sent if sent else 0.0,
            last_sent_time=totals.last_sent_time,
        )

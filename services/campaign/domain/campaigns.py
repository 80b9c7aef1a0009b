"""Campaigns and their runs: creating and changing campaigns, starting runs and
handing them to delivery, and reading how far they have got."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from clarion.campaign.v1 import campaign_pb2
from clarion.common.v1 import common_pb2
from clarion.segment.v1 import segment_pb2
from services.campaign.domain import content, policies, schedules, timing, triggers, variants
from services.campaign.domain.browsers import ALL_BROWSERS
from services.campaign.domain.outcomes import explain
from services.campaign.domain.pages import page_limit
from services.campaign.domain.ports import (
    AudienceRefused,
    DeliveryPort,
    DeliveryRunView,
    PeerCallFailed,
    RecipientOutcomeView,
    ReportingPort,
    SegmentPort,
)
from services.campaign.store import (
    CampaignRecord,
    CampaignState,
    CampaignStore,
    ListedRecipients,
    MissedReason,
    RestPlan,
    RestState,
    RunContentOptions,
    RunPhase,
    RunProgress,
    RunRecord,
    RunState,
    ScheduledStep,
    SiteRecord,
    Urgency,
)
from services.kit.clock import Clock
from services.kit.errors import (
    Aborted,
    ClarionError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.kit.ids import new_id
from services.kit.logging import get_logger
from services.kit.pages import decode_page_token, encode_page_token

log = get_logger(__name__)

MAX_NAME_LENGTH = 200
MAX_REQUEST_ID_LENGTH = 128
# RFC 8030 TTL; four weeks is what push services keep at most.
MAX_TTL_SECONDS = 4 * 7 * 24 * 3600
DEFAULT_TTL_SECONDS = MAX_TTL_SECONDS
HANDOFF_BATCH = 100
# Hand-offs tried at once, and the backoff between one run's attempts.
HANDOFF_CONCURRENCY = 8
HANDOFF_BACKOFF_SECONDS = (1.0, 300.0)
UPDATE_ATTEMPTS = 5
# How long SendCampaignNow waits for delivery's first answer before leaving the hand-off
# to the background loop: the call returns at once either way.
HANDOFF_WAIT_SECONDS = 2.0
UPDATABLE_PATHS = (
    "name", "notification", "ttl_seconds", "urgency", "audience", "schedule", "trigger",
    "timing", "personalization", "utm", "topic", "labels", "policy", "variants",
    "variant_test", "conversion_goal",
)  # fmt: skip
# The paths whose change asks for the content to be checked again: what it says, what
# it may read (a trigger's event), and which browsers may show it (the audience).
CONTENT_PATHS = ("notification", "personalization", "utm", "trigger", "audience", "variants")
MAX_LABELS = 20
MAX_LABEL_LENGTH = 64
# RFC 8030: a Topic is at most 32 characters of the base64url alphabet.
_TOPIC = re.compile(r"[A-Za-z0-9_-]{0,32}")
# Ids a transactional send may list (profiles and subscribers together).
MAX_LISTED_RECIPIENTS = 10_000
# Request ids Clarion gives the runs it starts itself; a caller's may not look like them.
RESERVED_REQUEST_ID_PREFIX = "clarion:"
# A test send's audience: the site's profiles marked test_profile.
TEST_PROFILES = segment_pb2.AudienceSelector(
    definition=segment_pb2.SegmentDefinition(condition=segment_pb2.Condition(test_profile=True))
)
# Due campaigns one scheduler pass advances (each in its own transaction).
SCHEDULER_BATCH = 100
# An occurrence started later than this after its time was missed by a scheduler that
# was down: past the schedule's end by then, it starts no run.
LATE_START = timedelta(minutes=1)
# A variant test's rest waits this long, doubling, while reporting cannot say how the
# test went.
REST_RETRY_SECONDS = (1.0, 300.0)
# The request id of a test run's rest run (unique per campaign, as any run's).
REST_REQUEST_ID_PREFIX = f"{RESERVED_REQUEST_ID_PREFIX}rest:"


@dataclass(frozen=True)
class CampaignDraft:
    name: str
    notification: content.Notification
    ttl_seconds: int = 0
    urgency: Urgency | None = None
    request_id: str = ""
    # Who its runs go to; None (or a selector with neither kind): every reachable
    # subscriber.
    audience: segment_pb2.AudienceSelector | None = None
    # When its runs start by themselves; None (or no kind set): a draft.
    schedule: campaign_pb2.Schedule | None = None
    # Makes it a live campaign; None: not live.
    trigger: campaign_pb2.Trigger | None = None
    # Local-time delivery and cut-off of its runs; None: all at once.
    timing: campaign_pb2.SendTiming | None = None
    # What a missing template value becomes, and the UTM parameters of click URLs;
    # None: the defaults (an empty text; no parameters).
    personalization: campaign_pb2.Personalization | None = None
    utm: campaign_pb2.UtmParameters | None = None
    topic: str = ""
    labels: Sequence[str] = ()
    # Its delivery policies; None: the site's as they are.
    policy: campaign_pb2.CampaignPolicy | None = None
    # An A/B test: its variants (instead of `notification`), its test phase, and what
    # counts as a conversion; empty / None: none.
    variants: Sequence[campaign_pb2.Variant] = ()
    variant_test: campaign_pb2.VariantTest | None = None
    conversion_goal: common_pb2.ConversionGoal | None = None


@dataclass(frozen=True)
class CampaignWarning:
    """Something stored that is allowed but probably not meant."""

    reason: str
    field: str
    message: str


@dataclass(frozen=True)
class CampaignPage:
    campaigns: list[CampaignRecord]
    next_page_token: str


@dataclass(frozen=True)
class RunPage:
    runs: list[RunRecord]
    next_page_token: str


@dataclass(frozen=True)
class RunRecipient:
    run_id: str
    outcome: RecipientOutcomeView
    # What happened and why, in one sentence.
    explanation: str


class Campaigns:
    def __init__(
        self,
        store: CampaignStore,
        clock: Clock,
        delivery: DeliveryPort,
        segment: SegmentPort,
        reporting: ReportingPort | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._delivery = delivery
        self._segment = segment
        # How a variant test went; None: rests wait until one is given (tests).
        self._reporting = reporting
        self.handoff_wanted = asyncio.Event()

    # Campaigns.

    async def create(
        self, site_id: str, draft: CampaignDraft, *, audience_field: str = "audience"
    ) -> CampaignRecord:
        """Stores a new campaign (create_with_warnings without the warnings)."""
        campaign, _ = await self.create_with_warnings(site_id, draft, audience_field=audience_field)
        return campaign

    async def create_with_warnings(
        self, site_id: str, draft: CampaignDraft, *, audience_field: str = "audience"
    ) -> tuple[CampaignRecord, list[CampaignWarning]]:
        """Stores a new campaign, and says what of its content some browsers will not
        show as written. An audience is checked by segment first (refused: nothing is
        stored), which also says which browsers it may include: the content is checked
        for those (a deeplink is required when Safari may be among them).
        `audience_field` is where the request holds the audience, so a refusal names the
        field as the caller sent it."""
        _check_request_id(draft.request_id)
        campaign_id = new_id("cmp")
        now = self._clock.now()
        schedule = schedules.schedule_from_proto(draft.schedule, now)
        trigger = triggers.trigger_from_proto(draft.trigger, now)
        _check_one_way_to_start(schedule, trigger, field="trigger")
        send_timing = timing.timing_from_proto(draft.timing, now)
        kept_variants = variants.checked_variants(draft.variants, draft.notification)
        campaign = CampaignRecord(
            campaign_id=campaign_id,
            site_id=site_id,
            # A title may be longer than a name; a defaulted name is cut, never refused.
            name=draft.name.strip() or _default_name(draft.notification, kept_variants),
            notification=draft.notification,
            ttl_seconds=draft.ttl_seconds,
            urgency=draft.urgency or Urgency.NORMAL,
            create_time=now,
            update_time=now,
            request_id=draft.request_id or None,
            audience=_kept(draft.audience),
            timing=timing.timing_to_json(send_timing) if send_timing else None,
            personalization=_kept_message(draft.personalization),
            utm=_kept_message(draft.utm),
            topic=_checked_topic(draft.topic, "topic"),
            labels=_checked_labels(draft.labels, "labels"),
            policy=policies.campaign_policy(draft.policy, field="policy"),
            variants=kept_variants,
            variant_test=variants.checked_variant_test(draft.variant_test),
            conversion_goal=variants.checked_conversion_goal(draft.conversion_goal),
            **(_live(trigger, now) if trigger is not None else _scheduled(schedule, now)),
        )
        variants.check_combination(campaign)
        warnings = _content_for_every_browser(campaign)
        campaign = _checked(campaign)
        if draft.request_id:
            campaign = replace(campaign, request_fingerprint=_fingerprint(draft))
            # A repeat returns the first campaign without asking segment again.
            existing = await self._store.campaign_by_request(site_id, draft.request_id)
            if existing is not None:
                first = _same_request(existing, campaign)
                return first, self._repeat_warnings(first)
        browsers = await self._check_audience(site_id, campaign.audience, audience_field)
        if warnings is None or campaign.audience is not None:
            warnings = _content_warnings(campaign, browsers)
        if trigger is not None:
            campaign = replace(campaign, feed_cursor=await self._feed_end(site_id, trigger))
        stored = await self._store.insert_campaign(campaign)
        if stored is None:
            raise NotFound("SITE_NOT_FOUND", f"there is no site {site_id!r}", site_id=site_id)
        if stored.campaign_id == campaign_id:
            log.info("campaign created", campaign_id=campaign_id)
            return stored, warnings
        # A concurrent create with the key won.
        first = _same_request(stored, campaign)
        return first, self._repeat_warnings(first)

    def _repeat_warnings(self, campaign: CampaignRecord) -> list[CampaignWarning]:
        """The content warnings of a campaign a repeated create returns, as far as they
        can be had without asking segment again (a repeat must not depend on it): those
        of a campaign for every subscriber; none for one with an audience."""
        if campaign.audience is not None:
            return []
        try:
            return _content_warnings(campaign, ALL_BROWSERS)
        except ClarionError:  # content rules changed since the first create
            return []

    async def get(self, site_id: str, campaign_id: str) -> CampaignRecord:
        if not campaign_id:
            raise InvalidArgument(
                "MISSING_CAMPAIGN_ID", "campaign_id is required", field="campaign_id"
            )
        campaign = await self._store.get_campaign(site_id, campaign_id)
        if campaign is None:
            raise NotFound(
                "CAMPAIGN_NOT_FOUND",
                f"there is no campaign {campaign_id!r} in this site",
                campaign_id=campaign_id,
            )
        return campaign

    async def update(
        self, site_id: str, campaign_id: str, changes: CampaignDraft, paths: Sequence[str]
    ) -> CampaignRecord:
        """Replaces the fields named in `paths` (update_with_warnings without the
        warnings)."""
        campaign, _ = await self.update_with_warnings(site_id, campaign_id, changes, paths)
        return campaign

    async def update_with_warnings(
        self, site_id: str, campaign_id: str, changes: CampaignDraft, paths: Sequence[str]
    ) -> tuple[CampaignRecord, list[CampaignWarning]]:
        """Replaces the fields named in `paths` (update_mask); runs already started keep
        the content they had. A change of what the content says, reads or reaches
        (CONTENT_PATHS) checks it again, for the browsers the audience may include
        (segment says, as for a new audience); the warnings are that check's."""
        if not paths:
            raise InvalidArgument(
                "MISSING_UPDATE_MASK",
                f"update_mask must name the fields to change: {', '.join(UPDATABLE_PATHS)}",
                field="update_mask",
            )
        # Optimistic: apply the mask to the version read, store it only if that is still
        # the current one, else read again (so two updates of different fields both land).
        browsers_of: dict[bytes, Collection[int]] = {}
        content_changed = any(path.split(".")[0] in CONTENT_PATHS for path in paths)
        for _ in range(UPDATE_ATTEMPTS):
            campaign = await self.get(site_id, campaign_id)
            updated = self._applied(campaign, changes, paths)
            warnings: list[CampaignWarning] = []
            if content_changed:
                every_browser = _content_for_every_browser(updated, prefix="campaign.")
                if updated.audience is None and every_browser is not None:
                    warnings = every_browser
                else:
                    # Before anything is stored; once per audience, not per attempt.
                    key = _audience_key(updated.audience)
                    if key not in browsers_of:
                        browsers_of[key] = await self._check_audience(
                            site_id, updated.audience, "campaign.audience"
                        )
                    warnings = _content_warnings(updated, browsers_of[key], prefix="campaign.")
            # A new trigger reads the feed from now: events before it are not its own.
            retriggered = "trigger" in paths and updated.trigger is not None
            if retriggered:
                trigger = triggers.trigger_from_json(updated.trigger or "")
                updated = replace(updated, feed_cursor=await self._feed_end(site_id, trigger))
            if await self._store.update_campaign(updated, feed_cursor_changed=retriggered):
                log.info("campaign updated", campaign_id=campaign_id, paths=",".join(paths))
                return replace(updated, version=updated.version + 1), warnings
        raise Aborted(
            "CONCURRENT_UPDATE",
            f"campaign {campaign_id!r} kept changing while this update was applied; try again",
            campaign_id=campaign_id,
        )

    def _applied(
        self, campaign: CampaignRecord, changes: CampaignDraft, paths: Sequence[str]
    ) -> CampaignRecord:
        notification = type(campaign.notification)()
        notification.CopyFrom(campaign.notification)
        updated = campaign
        for path in paths:
            if path == "name":
                updated = replace(updated, name=changes.name.strip())
            elif path == "notification":
                notification.CopyFrom(changes.notification)
            elif path.startswith("notification.") and path[13:] in _notification_fields():
                _copy_field(notification, changes.notification, path[13:])
            elif path == "ttl_seconds":
                updated = replace(updated, ttl_seconds=changes.ttl_seconds)
            elif path == "urgency":
                updated = replace(updated, urgency=changes.urgency or Urgency.NORMAL)
            elif path == "audience":
                updated = replace(updated, audience=_kept(changes.audience))
            elif path == "schedule":
                updated = self._rescheduled(updated, changes.schedule)
            elif path == "trigger":
                updated = self._retriggered(updated, changes.trigger)
            elif path == "timing":
                asked = timing.timing_from_proto(
                    changes.timing, self._clock.now(), field="campaign.timing"
                )
                updated = replace(updated, timing=timing.timing_to_json(asked) if asked else None)
            elif path == "personalization":
                updated = replace(updated, personalization=_kept_message(changes.personalization))
            elif path == "utm":
                updated = replace(updated, utm=_kept_message(changes.utm))
            elif path == "topic":
                updated = replace(updated, topic=_checked_topic(changes.topic, "campaign.topic"))
            elif path == "labels":
                labels = _checked_labels(changes.labels, "campaign.labels")
                updated = replace(updated, labels=labels)
            elif path == "policy":
                policy = policies.campaign_policy(changes.policy, field="campaign.policy")
                updated = replace(updated, policy=policy)
            elif path == "variants":
                # Checked below, against the notification the mask leaves.
                updated = replace(updated, variants=tuple(changes.variants))
            elif path == "variant_test":
                test = variants.checked_variant_test(
                    changes.variant_test, field="campaign.variant_test"
                )
                updated = replace(updated, variant_test=test)
            elif path == "conversion_goal":
                goal = variants.checked_conversion_goal(
                    changes.conversion_goal, field="campaign.conversion_goal"
                )
                updated = replace(updated, conversion_goal=goal)
            else:
                raise InvalidArgument(
                    "INVALID_UPDATE_MASK",
                    f"update_mask path {path!r} is not a field that can change; use "
                    f"{', '.join(UPDATABLE_PATHS)} or notification.<field>",
                    field="update_mask",
                )
        kept_variants = variants.checked_variants(
            updated.variants,
            notification,
            field="campaign.variants",
            notification_field="campaign.notification",
        )
        updated = replace(updated, variants=kept_variants)
        if not updated.name:
            updated = replace(updated, name=_default_name(notification, kept_variants))
        if updated.schedule is not None and updated.trigger is not None:
            raise InvalidArgument(
                "SCHEDULE_AND_TRIGGER",
                "a campaign has a schedule or a trigger, not both: clear one (name both in "
                "update_mask, one of them unset)",
                field="campaign.trigger" if "trigger" in paths else "campaign.schedule",
            )
        updated = replace(updated, notification=notification, update_time=self._clock.now())
        variants.check_combination(updated, prefix="campaign.")
        return _checked(updated)

    async def shown(self, site_id: str, campaigns: list[CampaignRecord]) -> list[CampaignRecord]:
        """The campaigns as a caller sees them: a completed one whose run is still
        sending, or whose variant test's rest is still to come, is running (delivery
        asked once for all their unfinished runs)."""
        completed = [c.campaign_id for c in campaigns if c.state is CampaignState.COMPLETED]
        if not completed:
            return campaigns
        runs = await self._refreshed_many(
            site_id, await self._store.unfinished_runs(site_id, *completed)
        )
        sending = {run.campaign_id for run in runs if run.finish_time is None}
        sending |= await self._store.campaigns_with_pending_rests(site_id, *completed)
        return [replace(c, running=c.campaign_id in sending) for c in campaigns]

    async def list(
        self, site_id: str, page_size: int, page_token: str, *, label: str = ""
    ) -> CampaignPage:
        """The site's campaigns by id, a page at a time; with `label`, only those carrying
        it (compared with the labels as stored: trimmed)."""
        limit = page_limit(page_size)
        after = decode_page_token(page_token) or ""
        rows = await self._store.list_campaigns(site_id, after, limit + 1, label=label.strip())
        page = rows[:limit]
        next_token = encode_page_token(page[-1].campaign_id) if len(rows) > limit else ""
        return CampaignPage(campaigns=page, next_page_token=next_token)

    def _rescheduled(
        self, campaign: CampaignRecord, message: campaign_pb2.Schedule | None
    ) -> CampaignRecord:
        """The campaign with a new schedule, counted from now: runs already started keep
        theirs. A paused campaign stays paused; a cancelled one cannot be rescheduled."""
        if campaign.state is CampaignState.CANCELLED:
            raise FailedPrecondition(
                "CAMPAIGN_CANCELLED",
                f"campaign {campaign.campaign_id!r} is cancelled; create a new campaign",
                campaign_id=campaign.campaign_id,
            )
        now = self._clock.now()
        schedule = schedules.schedule_from_proto(message, now, field="campaign.schedule")
        changes = _scheduled(schedule, now)
        if campaign.state is CampaignState.PAUSED and schedule is not None:
            changes["state"] = CampaignState.PAUSED
        return replace(campaign, **changes)

    async def warnings(
        self, campaign: CampaignRecord, *, prefix: str = ""
    ) -> list[CampaignWarning]:
        """What is worth a look in a campaign just stored: a trigger on an event the
        site never sent (a typo, or an event not wired up yet). Best effort: none when
        segment cannot say."""
        if campaign.trigger is None:
            return []
        trigger = triggers.trigger_from_json(campaign.trigger)
        try:
            unseen = await self._segment.unseen_event_names(
                campaign.site_id, triggers.event_names(trigger)
            )
        except PeerCallFailed as failure:
            log.warning("could not check the trigger's event names", error=str(failure))
            return []
        fields = {trigger.event_name: "trigger.event_name"}
        if isinstance(trigger.wait, triggers.Inaction):
            fields.setdefault(trigger.wait.event_name, "trigger.inaction.event_name")
        return [
            CampaignWarning(
                "UNKNOWN_EVENT",
                prefix + fields[name],
                f"no {name!r} event has reached this site yet: the campaign is live and "
                "acts on such events when they come; check the name if none are expected "
                "to be sent already",
            )
            for name in unseen
            if name in fields
        ]

    def _retriggered(
        self, campaign: CampaignRecord, message: campaign_pb2.Trigger | None
    ) -> CampaignRecord:
        """The campaign with a new trigger (or none: a draft), live from now; a paused
        campaign stays paused; a cancelled one cannot be changed so."""
        if campaign.state is CampaignState.CANCELLED:
            raise FailedPrecondition(
                "CAMPAIGN_CANCELLED",
                f"campaign {campaign.campaign_id!r} is cancelled; create a new campaign",
                campaign_id=campaign.campaign_id,
            )
        now = self._clock.now()
        trigger = triggers.trigger_from_proto(message, now, field="campaign.trigger")
        if trigger is None:
            if campaign.trigger is None:
                return campaign
            return replace(campaign, trigger=None, state=CampaignState.DRAFT, next_run_time=None)
        changes = _live(trigger, now)
        if campaign.state is CampaignState.PAUSED:
            changes["state"] = CampaignState.PAUSED
        return replace(campaign, **changes)

    async def _feed_end(self, site_id: str, trigger: triggers.Trigger) -> str:
        """The event feed's cursor as of now, where a new trigger starts reading."""
        try:
            page = await self._segment.event_feed(
                site_id, "", triggers.event_names(trigger), 1, start_at_end=True
            )
        except PeerCallFailed as failure:
            raise Unavailable(
                "SEGMENT_UNAVAILABLE",
                f"the trigger could not be set up, so nothing was stored: {failure}; try again",
                field="trigger",
            ) from None
        return page.next_cursor

    # Schedules.

    async def pause(self, site_id: str, campaign_id: str) -> CampaignRecord:
        """The schedule starts nothing until resumed (occurrences falling due meanwhile
        are recorded as missed); runs already started go on."""
        return await self._change_state(
            site_id, campaign_id, "pause",
            lambda campaign: replace(campaign, state=CampaignState.PAUSED)
            if campaign.state is CampaignState.SCHEDULED else campaign,
            allowed=(CampaignState.SCHEDULED, CampaignState.PAUSED),
        )  # fmt: skip

    async def resume(self, site_id: str, campaign_id: str) -> CampaignRecord:
        """A paused schedule starts runs again, from its next occurrence after now."""

        def resumed(campaign: CampaignRecord) -> CampaignRecord:
            if campaign.state is not CampaignState.PAUSED:
                return campaign
            if campaign.trigger is not None:
                return replace(campaign, state=CampaignState.SCHEDULED)
            now = self._clock.now()
            schedule = schedules.schedule_from_json(campaign.schedule or "")
            upcoming = schedules.next_occurrence(schedule, now)
            if upcoming is None:
                return replace(campaign, state=CampaignState.COMPLETED, next_run_time=None)
            return replace(campaign, state=CampaignState.SCHEDULED, next_run_time=upcoming)

        return await self._change_state(
            site_id, campaign_id, "resume", resumed,
            allowed=(CampaignState.PAUSED, CampaignState.SCHEDULED),
        )  # fmt: skip

    async def cancel(self, site_id: str, campaign_id: str) -> CampaignRecord:
        """Ends the schedule (or trigger) for good, and cancels every run of the campaign
        still sending: their unsent recipients end suppressed (cancelled). Asking again
        retries the runs delivery could not be reached for."""
        cancelled = await self._change_state(
            site_id, campaign_id, "cancel",
            lambda campaign: replace(campaign, state=CampaignState.CANCELLED, next_run_time=None),
            allowed=tuple(CampaignState),
        )  # fmt: skip
        # Pending rests of variant tests start nothing either (a rest starting meanwhile
        # is stored by then, and among the unfinished runs below).
        await self._store.cancel_rests(site_id, campaign_id, self._clock.now())
        unreached = []
        for run in await self._store.unfinished_runs(site_id, campaign_id):
            try:
                await self.cancel_run(site_id, run.run_id)
            except Unavailable:
                unreached.append(run.run_id)
        if unreached:
            raise Unavailable(
                "DELIVERY_UNAVAILABLE",
                f"campaign {campaign_id!r} is cancelled and starts no more runs, but "
                f"{len(unreached)} of its runs could not be stopped yet (delivery "
                f"unreachable): {', '.join(unreached[:5])}; call CancelCampaign again",
                campaign_id=campaign_id,
            )
        return cancelled

    async def _change_state(
        self,
        site_id: str,
        campaign_id: str,
        verb: str,
        change: Callable[[CampaignRecord], CampaignRecord],
        allowed: tuple[CampaignState, ...],
    ) -> CampaignRecord:
        for _ in range(UPDATE_ATTEMPTS):
            campaign = await self.get(site_id, campaign_id)
            if campaign.state not in allowed:
                raise FailedPrecondition(
                    "CAMPAIGN_NOT_SCHEDULED",
                    f"campaign {campaign_id!r} is {campaign.state.value}: only a scheduled or "
                    f"paused campaign can {verb}",
                    campaign_id=campaign_id,
                    state=campaign.state.value,
                )
            changed = change(campaign)
            if changed == campaign:
                return campaign
            changed = replace(changed, update_time=self._clock.now())
            if await self._store.update_campaign(changed):
                log.info(f"campaign {verb}d", campaign_id=campaign_id, state=changed.state.value)
                return await self.get(site_id, campaign_id)
        raise Aborted(
            "CONCURRENT_UPDATE",
            f"campaign {campaign_id!r} kept changing while it was asked to {verb}; try again",
            campaign_id=campaign_id,
        )

    async def start_due(self) -> int:
        """The scheduler's round: the rests of variant tests that fell due
        (start_due_rests), then a run for each campaign whose schedule fell due,
        recording the occurrences that start none and moving each schedule on. Returns
        the runs started; the hand-off loop then gives them to delivery."""
        # One moment for both; the rests first, so a schedule that cannot advance does
        # not hold up a test's rest.
        now = self._clock.now()
        rests = await self.start_due_rests(now)
        return rests + await self._start_due_occurrences(now)

    async def _start_due_occurrences(self, now: datetime) -> int:

        def step(campaign: CampaignRecord) -> ScheduledStep:
            schedule = schedules.schedule_from_json(campaign.schedule or "")
            assert campaign.next_run_time is not None
            due = schedules.occurrences_between(
                schedule, campaign.next_run_time - timedelta(microseconds=1), now
            )
            upcoming = schedules.next_occurrence(schedule, now)
            if campaign.state is CampaignState.PAUSED:
                run = None
                missed = [(time, MissedReason.PAUSED) for time in due]
            elif due:
                # A scheduler that was down for several occurrences starts the latest,
                # unless even that one is too late now.
                latest = due[-1]
                missed = [(time, MissedReason.SUPERSEDED) for time in due[:-1]]
                late = _too_late(campaign, schedule, latest, now)
                if late is not None:
                    run = None
                    missed.append((latest, late))
                else:
                    run = _scheduled_run(campaign, now, latest)
            else:
                run, missed = None, []
            state = campaign.state if upcoming is not None else CampaignState.COMPLETED
            return ScheduledStep(run, tuple(missed), state, upcoming)

        started = await self._store.advance_due_campaigns(now, SCHEDULER_BATCH, step)
        for run in started:
            log.info("scheduled run started", run_id=run.run_id, campaign_id=run.campaign_id)
        if started:
            self.handoff_wanted.set()
        return len(started)

    async def start_due_rests(self, now: datetime | None = None) -> int:
        """Starts the rest run of each variant test whose rest_time has come: reporting
        says how the test run's variants did, the decision picks the winner (or none),
        and the rest run is stored once, whichever replica gets there first. A rest
        reporting cannot answer for waits and is tried again. Returns the rests
        started; the hand-off loop then gives them to delivery."""
        if self._reporting is None:
            return 0
        now = now or self._clock.now()
        # Side by side: a reporting that does not answer costs the round about one call's
        # timeout, not one per rest.
        slots = asyncio.Semaphore(HANDOFF_CONCURRENCY)

        async def start(test: RunRecord) -> bool:
            async with slots:
                try:
                    return await self._start_rest(test, now)
                except Exception:
                    # One bad rest does not hold up the others; tried again next round.
                    log.exception("starting a variant test's rest failed", run_id=test.run_id)
                    return False

        due = await self._store.due_rests(now, SCHEDULER_BATCH)
        started = sum(await asyncio.gather(*(start(test) for test in due)))
        if started:
            self.handoff_wanted.set()
        return started

    async def _start_rest(self, test: RunRecord, now: datetime) -> bool:
        assert self._reporting is not None and test.rest_plan is not None
        plan = test.rest_plan
        try:
            tallies = await self._reporting.run_variant_tallies(test.site_id, test.run_id)
        except PeerCallFailed as failure:
            first, most = REST_RETRY_SECONDS
            delay = min(most, first * 2 ** min(test.rest_attempts, 20))
            await self._store.postpone_rest(
                test.site_id, test.run_id, now, now + timedelta(seconds=delay)
            )
            log.warning(
                "reporting could not say how the variant test went; its rest waits",
                run_id=test.run_id,
                retry_in_seconds=delay,
                error=str(failure),
            )
            return False
        by_variant = {tally.variant_id: tally for tally in tallies}
        conversions = plan.metric == campaign_pb2.WINNER_METRIC_CONVERSION_RATE
        outcomes = []
        for variant in plan.variants:  # in the campaign's order
            tally = by_variant.get(variant.variant_id)
            sent = tally.sent if tally else 0
            successes = (tally.conversions if conversions else tally.clicked) if tally else 0
            outcomes.append(variants.VariantOutcome(variant.variant_id, sent, successes))
        decision = variants.decide(outcomes)
        try:
            rest = rest_run(test, decision, now)
        except InvalidArgument as error:
            # Content stored before a rule it breaks: said, and tried again later rather
            # than every round (a fix of the rule lets it through).
            await self._store.postpone_rest(
                test.site_id, test.run_id, now, now + timedelta(seconds=REST_RETRY_SECONDS[1])
            )
            log.error(
                "variant test's rest not started: its content is invalid",
                run_id=test.run_id,
                reason=error.reason,
                error=error.message,
            )
            return False
        became = await self._store.start_rest(test, rest)
        if became is RestState.STARTED:
            log.info(
                "variant test's rest started",
                run_id=rest.run_id,
                test_run_id=test.run_id,
                campaign_id=test.campaign_id,
                winner=decision.winner_variant_id or "none",
                z_score=round(decision.z_score, 3),
            )
            return True
        if became is RestState.CANCELLED:
            log.info("variant test's rest not started: campaign cancelled", run_id=test.run_id)
        return False

    async def send_now(
        self,
        site_id: str,
        campaign_id: str,
        request_id: str = "",
        recipients: ListedRecipients | None = None,
    ) -> RunRecord:
        """Starts a run of the campaign and returns it PREPARING, at once; with
        `recipients`, a transactional send to them instead of the audience. A campaign
        with a variant test starts its test run (to the audience; listed recipients
        each get their variant at once).

        The run (with its rendered content) is stored before delivery hears of it; the
        hand-off to delivery is idempotent and retried in the background until it lands,
        so no step depends on this call staying open.
        """
        _check_request_id(request_id)
        recipients = _listed(recipients) if recipients is not None else None
        campaign = await self.get(site_id, campaign_id)
        if recipients is not None and campaign.audience is not None:
            # Its content was checked for the browsers of its audience; listed people
            # may use any browser (a deeplink is needed if Safari may be among them).
            _content_warnings(campaign, ALL_BROWSERS)
        return await self._start(
            new_run(
                campaign,
                self._clock.now(),
                request_id,
                recipients,
                with_test_phase=recipients is None,
            )
        )

    async def _start(self, planned: RunRecord) -> RunRecord:
        """Stores the run and hands it to delivery, waiting at most HANDOFF_WAIT_SECONDS
        (the hand-off loop finishes a slower one); a repeated request_id returns the first
        call's run instead."""
        run_id = planned.run_id
        run = await self._store.insert_run(planned)
        if run.run_id != run_id:
            return await self._refreshed(run)  # a repeat: the first call's run
        log.info("run started", run_id=run_id, campaign_id=run.campaign_id, test=run.test)
        try:
            await asyncio.wait_for(asyncio.shield(self._hand_off(run)), HANDOFF_WAIT_SECONDS)
        except TimeoutError:
            self.handoff_wanted.set()
        return await self.get_run(run.site_id, run_id)

    async def send_test(
        self, site_id: str, campaign_id: str, request_id: str = "", variant_id: str = ""
    ) -> RunRecord:
        """A test send: the campaign's content as it is now, at once, to the reachable
        subscribers of the site's test profiles, without the campaign's audience, timing
        or policies (nor a variant test's phases); returns the run PREPARING. With
        `variant_id`, every test recipient gets that variant; without, each its own in
        the campaign's split. The campaign itself (state, schedule) is left as it is,
        whatever its state."""
        _check_request_id(request_id)
        campaign = await self.get(site_id, campaign_id)
        if variant_id and variant_id not in {v.variant_id for v in campaign.variants}:
            has = ", ".join(v.variant_id for v in campaign.variants) or "none"
            raise NotFound(
                "VARIANT_NOT_FOUND",
                f"campaign {campaign_id!r} has no variant {variant_id!r} (its variants: "
                f"{has})",
                campaign_id=campaign_id,
                variant_id=variant_id,
            )
        if campaign.audience is not None:
            # Checked for its audience's browsers; test profiles may use any browser.
            _content_warnings(campaign, ALL_BROWSERS)
        return await self._start(test_run(campaign, self._clock.now(), request_id, variant_id))

    async def send_notification(
        self, site_id: str, draft: CampaignDraft, recipients: ListedRecipients | None
    ) -> RunRecord:
        """A one-off notification to listed recipients: a campaign for it, and its run.
        Everything is checked before anything is stored; a repeated request_id returns
        the first call's run."""
        if recipients is None:
            raise InvalidArgument(
                "MISSING_RECIPIENTS",
                "recipients is required: a one-off notification goes to listed profiles "
                "or subscribers (to send to an audience, create a campaign)",
                field="recipients",
            )
        recipients = _listed(recipients)
        _check_request_id(draft.request_id)
        campaign = await self.create(site_id, draft)
        return await self.send_now(site_id, campaign.campaign_id, draft.request_id, recipients)

    async def get_run(self, site_id: str, run_id: str) -> RunRecord:
        return await self._refreshed(await self._stored_run(site_id, run_id))

    async def list_runs(
        self, site_id: str, campaign_id: str, page_size: int, page_token: str
    ) -> RunPage:
        await self.get(site_id, campaign_id)
        limit = page_limit(page_size)
        before = decode_page_token(page_token) or ""
        rows = await self._store.list_runs(site_id, campaign_id, before, limit + 1)
        page = rows[:limit]
        next_token = encode_page_token(page[-1].run_id) if len(rows) > limit else ""
        return RunPage(runs=await self._refreshed_many(site_id, page), next_page_token=next_token)

    async def cancel_run(self, site_id: str, run_id: str) -> RunRecord:
        """Cancels the run: delivery stops preparing and sending it and ends every
        recipient without an outcome suppressed (cancelled). A finished or already
        cancelled run is returned unchanged."""
        run = await self._stored_run(site_id, run_id)
        if run.rest_state is RestState.PENDING:
            # A variant test's rest goes with its test, sending or not: first, so a rest
            # falling due meanwhile does not start.
            await self._store.cancel_rests(
                site_id, run.campaign_id, self._clock.now(), run_id=run_id
            )
            log.info("variant test's rest cancelled", run_id=run_id)
            run = await self._stored_run(site_id, run_id)
        if run.finish_time is not None:
            return run
        # Delivery may already have a run whose hand-off is pending (an answer lost), or
        # take it any moment: hand it over first (idempotent), so the cancel reaches the
        # run that would send.
        if run.handoff_pending and not await self._hand_off(run):
            run = await self._stored_run(site_id, run_id)
            if run.finish_time is not None:  # delivery refused it: it never sends
                return run
            raise Unavailable(
                "DELIVERY_UNAVAILABLE",
                f"delivery could not be reached to cancel run {run_id!r}; try again",
                run_id=run_id,
            )
        try:
            view = await self._delivery.cancel_run(site_id, run_id)
        except PeerCallFailed as failure:
            raise Unavailable(
                "DELIVERY_UNAVAILABLE",
                f"run {run_id!r} was not cancelled: {failure}; try again",
                run_id=run_id,
            ) from None
        await self._store.update_run(
            site_id, run_id, self._clock.now(), unfinished_only=True, **_view_changes(view)
        )
        log.info("run cancel asked", run_id=run_id, state=view.state.value)
        return await self._stored_run(site_id, run_id)

    async def run_recipient(self, site_id: str, run_id: str, subscriber_id: str) -> RunRecipient:
        """What happened to one subscriber of the run, and why."""
        if not subscriber_id:
            raise InvalidArgument(
                "MISSING_SUBSCRIBER_ID", "subscriber_id is required", field="subscriber_id"
            )
        run = await self._stored_run(site_id, run_id)
        outcome = None
        if not run.handoff_pending:
            try:
                outcome = await self._delivery.recipient_outcome(site_id, run_id, subscriber_id)
            except PeerCallFailed as failure:
                raise Unavailable(
                    "DELIVERY_UNAVAILABLE",
                    f"delivery could not say what happened to {subscriber_id!r}: {failure}",
                    run_id=run_id,
                ) from None
        if outcome is None:
            still = " (its audience is still being resolved)" if run.finish_time is None else ""
            raise NotFound(
                "RECIPIENT_NOT_FOUND",
                f"subscriber {subscriber_id!r} is not in the audience of run {run_id!r}{still}: "
                "it was not subscribed when the run started, or is another site's",
                run_id=run_id,
                subscriber_id=subscriber_id,
            )
        return RunRecipient(
            run_id=run_id, outcome=outcome, explanation=explain(outcome.status, outcome.reason)
        )

    async def _check_audience(
        self, site_id: str, audience: segment_pb2.AudienceSelector | None, field: str
    ) -> Collection[int]:
        """The browsers (clarion.common.v1.Browser) the audience may include, as segment
        says; its refusal as the caller's error: the reason segment gave, and the field
        it named relative to `field` (where the request holds the audience). Every
        subscriber (None) needs no check and may use any browser."""
        if audience is None:
            return ALL_BROWSERS
        try:
            # Segment names none when nothing narrows them (or it predates the answer).
            return await self._segment.validate_audience(site_id, audience) or ALL_BROWSERS
        except AudienceRefused as refused:
            inner = refused.field
            inside = inner == "audience" or inner.startswith(("audience.", "audience["))
            named = field + inner.removeprefix("audience") if inside else field
            message = refused.message
            if inside and inner in message:
                message = message.replace(inner, named)
            elif named not in message:
                message = f"{named}: {message}"
            metadata = {"field": named}
            if refused.segment_id:
                metadata["segment_id"] = refused.segment_id
            error = NotFound if refused.not_found else InvalidArgument
            raise error(refused.reason, message, **metadata) from None
        except PeerCallFailed as failure:
            raise Unavailable(
                "SEGMENT_UNAVAILABLE",
                f"the audience could not be checked, so nothing was stored: {failure}; "
                "try again",
                field=field,
            ) from None

    async def _stored_run(self, site_id: str, run_id: str) -> RunRecord:
        if not run_id:
            raise InvalidArgument("MISSING_RUN_ID", "run_id is required", field="run_id")
        run = await self._store.get_run(site_id, run_id)
        if run is None:
            raise NotFound(
                "RUN_NOT_FOUND", f"there is no run {run_id!r} in this site", run_id=run_id
            )
        return run

    async def hand_off_pending(self) -> int:
        """Hands every run delivery has not confirmed to it; returns how many landed."""
        runs = await self._store.runs_awaiting_handoff(self._clock.now(), HANDOFF_BATCH)
        slots = asyncio.Semaphore(HANDOFF_CONCURRENCY)

        async def hand_off(run: RunRecord) -> bool:
            async with slots:
                return await self._hand_off(run)

        return sum(await asyncio.gather(*(hand_off(run) for run in runs)))

    async def _hand_off(self, run: RunRecord) -> bool:
        site = await self._store.get_site(run.site_id)
        default_timezone, policy = handoff_settings(run, site)
        # The run's description carries the campaign's UTM parameters (its title is
        # the run's own, fixed when it started).
        campaign = await self._store.get_campaign(run.site_id, run.campaign_id)
        utm = campaign.utm if campaign is not None else None
        try:
            view = await self._delivery.start_run(run, default_timezone, policy, utm)
        except PeerCallFailed as failure:
            if not failure.permanent:
                first, most = HANDOFF_BACKOFF_SECONDS
                delay = min(most, first * 2 ** min(run.handoff_attempts, 20))
                await self._store.update_run(
                    run.site_id,
                    run.run_id,
                    self._clock.now(),
                    handoff_retry_at=self._clock.now() + timedelta(seconds=delay),
                )
                log.warning(
                    "delivery did not take the run yet; will retry",
                    run_id=run.run_id,
                    retry_in_seconds=delay,
                    error=str(failure),
                )
                return False
            # Delivery refused the run itself: it will never send it.
            await self._store.update_run(
                run.site_id,
                run.run_id,
                self._clock.now(),
                state=RunState.FAILED,
                failure_reason=f"delivery refused the run: {failure.detail}"[:1000],
                finish_time=self._clock.now(),
                handed_off=True,
            )
            log.warning("run failed", run_id=run.run_id, error=str(failure))
            return False
        await self._store.update_run(
            run.site_id, run.run_id, self._clock.now(), handed_off=True, **_view_changes(view)
        )
        return True

    async def _refreshed(self, run: RunRecord) -> RunRecord:
        return (await self._refreshed_many(run.site_id, [run]))[0]

    async def _refreshed_many(self, site_id: str, runs: list[RunRecord]) -> list[RunRecord]:
        """Runs with delivery's current progress; as last stored when delivery cannot say."""
        # A run changes until delivery gives it a finish time (a FAILED preparation still
        # sends what it queued).
        live = [r.run_id for r in runs if not r.handoff_pending and r.finish_time is None]
        if not live:
            return runs
        try:
            views = await self._delivery.get_runs(site_id, live)
        except PeerCallFailed as failure:
            log.warning("delivery unavailable; showing the last known progress", error=str(failure))
            return runs
        refreshed = []
        for run in runs:
            view = views.get(run.run_id)
            if view is not None:
                changes = _view_changes(view)
                latest = replace(run, **changes)
                if latest != run:  # a poll of an unchanged run writes nothing
                    # Never over a finish stored meanwhile (a cancel, another poll).
                    await self._store.update_run(
                        site_id, run.run_id, self._clock.now(), unfinished_only=True, **changes
                    )
                run = replace(latest, held_push_services=view.held_push_services)
            refreshed.append(run)
        return refreshed


def handoff_settings(
    run: RunRecord, site: SiteRecord | None
) -> tuple[str, policies.RunPolicy | None]:
    """What a run is handed to delivery with beside itself: the site's time zone for
    recipients without one when it delivers at a local time ("" otherwise), and the
    site's policy as it is now merged with the campaign's as the run started (None for
    a test send, which goes out under none). The delivery plan preview uses the same."""
    default_timezone = ""
    if run.timing is not None and timing.run_timing_from_json(run.timing).local_time:
        default_timezone = site.timezone if site is not None else ""
    policy = (
        None
        if run.test
        else policies.run_policy(
            site.delivery_policy if site else None,
            run.policy,
            default_timezone=site.timezone if site is not None else "",
        )
    )
    return default_timezone, policy


def new_run(
    campaign: CampaignRecord,
    now: datetime,
    request_id: str = "",
    recipients: ListedRecipients | None = None,
    *,
    timing_from: datetime | None = None,
    test: bool = False,
    variant_id: str = "",
    with_test_phase: bool = False,
) -> RunRecord:
    """A run of the campaign starting now, PREPARING and waiting for its hand-off: to
    `recipients` when given, else to the campaign's audience as it is now. Its content
    (payloads, what the templates read, the topic; each variant's, with its split, for
    an A/B test, or only `variant_id`'s for everyone) and the campaign's policy and
    conversion goal are fixed now. A relative cut-off counts from `timing_from` (a
    scheduled occurrence), else from now. `with_test_phase`: a campaign with a variant
    test starts its test run, and plans its rest."""
    run_id = new_id("run")
    payload, options, run_variants = b"", None, variants.run_variants(
        campaign, run_id, test=test, only=variant_id
    )
    if not run_variants:
        parts = content.run_content(
            campaign.notification,
            campaign.campaign_id,
            run_id,
            site_id=campaign.site_id,
            personalization=campaign.personalization,
            utm=campaign.utm,
            topic=campaign.topic,
            test=test,
        )
        payload = parts.payload
        options = RunContentOptions(
            browser_payloads=dict(parts.browser_payloads),
            profile_properties=parts.profile_properties,
            event_properties=parts.event_properties,
            suppress_missing_values=parts.suppress_missing_values,
            missing_value_text=parts.missing_value_text,
            topic=parts.topic,
        )
    phase: dict[str, Any] = {}
    variant_test = campaign.variant_test
    if with_test_phase and variant_test is not None and campaign.variants and not variant_id:
        phase = {
            "phase": RunPhase.VARIANT_TEST,
            "sample": variants.sample_for_test(variant_test.test_percent),
            "rest_time": now + timedelta(seconds=variant_test.wait_seconds),
            "rest_state": RestState.PENDING,
            # The rest sends what was tested (the variants as they are now), rendered
            # for its own run when it starts.
            "rest_plan": RestPlan(
                variants=campaign.variants,
                personalization=campaign.personalization,
                utm=campaign.utm,
                topic=campaign.topic,
                timing=campaign.timing,
                metric=variant_test.metric or campaign_pb2.WINNER_METRIC_CLICK_THROUGH_RATE,
            ),
        }
    return RunRecord(
        run_id=run_id,
        site_id=campaign.site_id,
        campaign_id=campaign.campaign_id,
        state=RunState.PREPARING,
        failure_reason="",
        progress=RunProgress(),
        payload=payload,
        content_options=options,
        variants=run_variants,
        conversion_goal=campaign.conversion_goal,
        **phase,
        policy=campaign.policy,
        ttl_seconds=campaign.ttl_seconds,
        urgency=campaign.urgency,
        handoff_pending=True,
        create_time=now,
        request_id=request_id or None,
        # Fixed now: a later change of the campaign's audience is not this run's.
        audience=campaign.audience,
        recipients=recipients,
        timing=timing.run_timing_to_json(
            timing.for_run(timing.timing_from_json(campaign.timing), timing_from or now)
        )
        if campaign.timing
        else None,
        test=test,
    )


def test_run(
    campaign: CampaignRecord, now: datetime, request_id: str = "", variant_id: str = ""
) -> RunRecord:
    """A test send of the campaign starting now: its content rendered as test (with
    variants: only `variant_id`'s, else each in its split), to the site's test
    profiles, all at once and under no policy."""
    run = new_run(campaign, now, request_id, test=True, variant_id=variant_id)
    return replace(run, audience=TEST_PROFILES, timing=None, policy=None)


def rest_run(test: RunRecord, decision: variants.Decision, now: datetime) -> RunRecord:
    """The rest run of a variant test run starting now: the rest of the audience (as it
    is resolved now), every recipient the winner, or with no winner the test's split;
    otherwise as the test run (audience, policy, TTL, urgency, goal), with the
    campaign's timing as the test started counted from now."""
    plan = test.rest_plan
    assert plan is not None and test.sample is not None
    run_id = new_id("run")
    chosen = variants.variant_contents(
        plan.variants,
        test.campaign_id,
        run_id,
        site_id=test.site_id,
        personalization=plan.personalization,
        utm=plan.utm,
        topic=plan.topic,
        only=decision.winner_variant_id,
    )
    return RunRecord(
        run_id=run_id,
        site_id=test.site_id,
        campaign_id=test.campaign_id,
        state=RunState.PREPARING,
        failure_reason="",
        progress=RunProgress(),
        payload=b"",
        ttl_seconds=test.ttl_seconds,
        urgency=test.urgency,
        handoff_pending=True,
        create_time=now,
        request_id=f"{REST_REQUEST_ID_PREFIX}{test.run_id}",
        audience=test.audience,
        timing=timing.run_timing_to_json(
            timing.for_run(timing.timing_from_json(plan.timing), now)
        )
        if plan.timing
        else None,
        policy=test.policy,
        variants=chosen,
        conversion_goal=test.conversion_goal,
        phase=RunPhase.VARIANT_REST,
        sample=variants.sample_for_rest(test.sample[1]),
        related_run_id=test.run_id,
        variant_decision=decision_to_proto(decision, plan.metric, now),
    )


def decision_to_proto(
    decision: variants.Decision, metric: int, now: datetime
) -> campaign_pb2.VariantDecision:
    shown = campaign_pb2.VariantDecision(
        metric=metric,  # type: ignore[arg-type]
        winner_variant_id=decision.winner_variant_id,
        results=[
            campaign_pb2.VariantResult(
                variant_id=o.variant_id, sent=o.sent, successes=o.successes, rate=o.rate
            )
            for o in decision.outcomes
        ],
        z_score=decision.z_score,
        significant=decision.significant,
    )
    shown.decide_time.FromDatetime(now)
    return shown


def _scheduled_run(
    campaign: CampaignRecord, now: datetime, occurrence: datetime
) -> RunRecord | None:
    """The run of a due occurrence; None when the campaign's content can no longer make
    one (stored before a rule it breaks): logged, and the schedule moves on rather than
    holding up every campaign due after it."""
    try:
        return new_run(
            campaign,
            now,
            f"{RESERVED_REQUEST_ID_PREFIX}schedule:{occurrence.isoformat()}",
            # A cut-off N seconds "after the run starts" counts from the occurrence, not
            # from a late start.
            timing_from=occurrence,
            with_test_phase=True,
        )
    except InvalidArgument as error:
        log.error(
            "scheduled run not started: its content is invalid",
            campaign_id=campaign.campaign_id,
            reason=error.reason,
            error=error.message,
        )
        return None


def _view_changes(view: DeliveryRunView) -> dict[str, object]:
    return {
        "state": view.state,
        "progress": view.progress,
        "failure_reason": view.failure_reason,
        "finish_time": view.finish_time,
    }


def _kept(audience: segment_pb2.AudienceSelector | None) -> segment_pb2.AudienceSelector | None:
    """The audience as a campaign keeps it: None for every subscriber (a selector with
    neither kind set means that too), else a copy the caller cannot change."""
    if audience is None or audience.WhichOneof("kind") is None:
        return None
    kept = segment_pb2.AudienceSelector()
    kept.CopyFrom(audience)
    return kept


def _notification_fields() -> set[str]:
    return {f.name for f in content.Notification.DESCRIPTOR.fields}


def _copy_field(target: Any, source: Any, name: str) -> None:
    """Sets one field of `target` to `source`'s value: a list (the buttons) or a message
    is replaced whole, since neither can be assigned."""
    described = source.DESCRIPTOR.fields_by_name[name]
    if described.is_repeated:
        target.ClearField(name)
        getattr(target, name).extend(getattr(source, name))
    elif described.message_type is not None:
        target.ClearField(name)
        if source.HasField(name):
            getattr(target, name).CopyFrom(getattr(source, name))
    else:
        setattr(target, name, getattr(source, name))


def _kept_message(message: Any) -> Any:
    """A message as a campaign keeps it: None when unset or every field is at its
    default (the same), else a copy the caller cannot change."""
    if message is None or message.ByteSize() == 0:
        return None
    kept = type(message)()
    kept.CopyFrom(message)
    return kept


def _audience_key(audience: segment_pb2.AudienceSelector | None) -> bytes:
    return audience.SerializeToString(deterministic=True) if audience is not None else b""


def _checked_topic(topic: str, field: str) -> str:
    if not _TOPIC.fullmatch(topic):
        raise InvalidArgument(
            "INVALID_TOPIC",
            f"{field} is {topic[:40]!r}; a topic is at most 32 characters of A-Z a-z 0-9 - _ "
            "(RFC 8030), or empty for one per run",
            field=field,
        )
    return topic


def _checked_labels(labels: Sequence[str], field: str) -> tuple[str, ...]:
    """The labels as kept: trimmed, in the order given, repeats dropped; an empty one
    (or one that is not one printable line) is InvalidArgument naming it."""
    kept: list[str] = []
    for index, label in enumerate(labels):
        trimmed = label.strip()
        if not trimmed:
            raise InvalidArgument(
                "INVALID_LABEL",
                f"{field}[{index}] is empty; a label needs some text",
                field=f"{field}[{index}]",
            )
        if len(trimmed) > MAX_LABEL_LENGTH or not trimmed.isprintable():
            raise InvalidArgument(
                "INVALID_LABEL",
                f"{field}[{index}] must be one printable line of at most {MAX_LABEL_LENGTH} "
                "characters",
                field=f"{field}[{index}]",
            )
        kept.append(trimmed)
    unique = tuple(dict.fromkeys(kept))
    if len(unique) > MAX_LABELS:
        raise InvalidArgument(
            "TOO_MANY_LABELS",
            f"{field} has {len(unique)} labels; at most {MAX_LABELS}",
            field=field,
        )
    return unique


def _content_warnings(
    campaign: CampaignRecord, possible_browsers: Collection[int], *, prefix: str = ""
) -> list[CampaignWarning]:
    """The campaign's content (its notification, or each variant's) checked for
    recipients of these browsers: InvalidArgument naming the first field that is wrong,
    else what some browsers will not show."""
    warnings = []
    for where, notification in variants.notifications(campaign):
        try:
            found = content.validate(
                notification,
                campaign.campaign_id,
                site_id=campaign.site_id,
                personalization=campaign.personalization,
                utm=campaign.utm,
                live=campaign.trigger is not None,
                possible_browsers=possible_browsers,
            )
        except InvalidArgument as error:
            raise variants.relocated(error, where) from None
        warnings += [
            CampaignWarning(
                w.reason,
                prefix + variants.relocated_field(w.field, where),
                variants.relocated_message(w.message, where),
            )
            for w in found
        ]
    return warnings


def _default_name(
    notification: common_pb2.Notification, kept_variants: Sequence[campaign_pb2.Variant]
) -> str:
    """A campaign's name when none is given: its title (the first variant's)."""
    title = kept_variants[0].notification.title if kept_variants else notification.title
    return title.strip()[:MAX_NAME_LENGTH]


def _content_for_every_browser(
    campaign: CampaignRecord, *, prefix: str = ""
) -> list[CampaignWarning] | None:
    """The content checked for every browser, before segment is asked which ones the
    audience may include: its warnings, or None when only a missing deeplink is wrong
    and the audience may rule out the browsers that need one (checked again then)."""
    try:
        return _content_warnings(campaign, ALL_BROWSERS, prefix=prefix)
    except InvalidArgument as error:
        if error.reason == "MISSING_DEEPLINK" and campaign.audience is not None:
            return None
        raise


def _checked(campaign: CampaignRecord) -> CampaignRecord:
    """The campaign with defaults applied, or InvalidArgument naming what is wrong
    (its content is checked apart: _content_warnings)."""
    if len(campaign.name) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            "INVALID_NAME",
            f"the campaign name is {len(campaign.name)} characters; "
            f"at most {MAX_NAME_LENGTH} are allowed",
            field="name",
        )
    ttl_seconds = campaign.ttl_seconds or DEFAULT_TTL_SECONDS
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidArgument(
            "INVALID_TTL",
            f"ttl_seconds is {campaign.ttl_seconds}; give 1 to {MAX_TTL_SECONDS} (4 weeks), "
            "or 0 for the default of 4 weeks",
            field="ttl_seconds",
        )
    return replace(campaign, ttl_seconds=ttl_seconds)


def _fingerprint(draft: CampaignDraft) -> str:
    """What a create asks for, as a hash: equal for the same request sent again."""
    digest = hashlib.sha256()
    audience = _kept(draft.audience)
    for part in (
        draft.name.encode(),
        draft.notification.SerializeToString(deterministic=True),
        str(draft.ttl_seconds).encode(),
        (draft.urgency.value if draft.urgency else "").encode(),
        audience.SerializeToString(deterministic=True) if audience else b"",
        draft.schedule.SerializeToString(deterministic=True) if draft.schedule else b"",
        draft.trigger.SerializeToString(deterministic=True) if draft.trigger else b"",
        draft.timing.SerializeToString(deterministic=True) if draft.timing else b"",
    ):
        digest.update(len(part).to_bytes(8, "big") + part)
    later = (
        draft.personalization.SerializeToString(deterministic=True)
        if draft.personalization
        else b"",
        draft.utm.SerializeToString(deterministic=True) if draft.utm else b"",
        draft.topic.encode(),
        "\n".join(draft.labels).encode(),
        draft.policy.SerializeToString(deterministic=True) if draft.policy else b"",
    )
    # Fields added later count only when given, so a request kept before them hashes
    # as it did.
    if any(later):
        for part in later:
            digest.update(len(part).to_bytes(8, "big") + part)
    newest = (
        b"".join(
            len(v).to_bytes(8, "big") + v
            for v in (v.SerializeToString(deterministic=True) for v in draft.variants)
        ),
        draft.variant_test.SerializeToString(deterministic=True) if draft.variant_test else b"",
        draft.conversion_goal.SerializeToString(deterministic=True)
        if draft.conversion_goal
        else b"",
    )
    if any(newest):
        for part in newest:
            digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _same_request(existing: CampaignRecord, asked: CampaignRecord) -> CampaignRecord:
    """The campaign a repeated request_id created, unless this request asks for another
    one (a campaign created before fingerprints were kept is not compared)."""
    if existing.request_fingerprint not in (None, asked.request_fingerprint):
        raise InvalidArgument(
            "REQUEST_ID_REUSED",
            f"request_id {existing.request_id!r} already created campaign "
            f"{existing.campaign_id!r} from a different request; a repeat must send the same "
            "request, and a new campaign needs a new request_id",
            field="request_id",
            campaign_id=existing.campaign_id,
        )
    return existing


def _scheduled(schedule: schedules.Schedule | None, now: datetime) -> dict[str, Any]:
    """A campaign's schedule fields for a schedule set now: a draft without one, else
    scheduled from its next occurrence (checked to exist), or completed."""
    if schedule is None:
        return {"schedule": None, "state": CampaignState.DRAFT, "next_run_time": None}
    upcoming = schedules.next_occurrence(schedule, now)
    return {
        "schedule": schedules.schedule_to_json(schedule),
        "state": CampaignState.SCHEDULED if upcoming is not None else CampaignState.COMPLETED,
        "next_run_time": upcoming,
    }


def _check_request_id(request_id: str) -> None:
    if request_id.startswith(RESERVED_REQUEST_ID_PREFIX):
        raise InvalidArgument(
            "RESERVED_REQUEST_ID",
            f"request_id may not start with {RESERVED_REQUEST_ID_PREFIX!r}: Clarion names the "
            "runs its schedules start that way",
            field="request_id",
        )
    if len(request_id) > MAX_REQUEST_ID_LENGTH:
        raise InvalidArgument(
            "INVALID_REQUEST_ID",
            f"request_id is {len(request_id)} characters; at most {MAX_REQUEST_ID_LENGTH}",
            field="request_id",
        )


def _too_late(
    campaign: CampaignRecord, schedule: schedules.Schedule, occurrence: datetime, now: datetime
) -> MissedReason | None:
    """Why a due occurrence the scheduler gets to only now starts no run: its cut-off
    has passed (the run would send nothing), or the schedule ended meanwhile."""
    if campaign.timing is not None:
        given = timing.timing_from_json(campaign.timing)
        cut_off = timing.for_run(given, occurrence).cut_off_time
        if cut_off is not None and cut_off <= now:
            return MissedReason.CUT_OFF
    # The scheduler's own second of delay is not being late.
    late = now - occurrence > LATE_START
    if late and schedule.end is not None and schedule.end < now:
        return MissedReason.ENDED
    return None


def _listed(recipients: ListedRecipients) -> ListedRecipients:
    """The listed recipients without repeats, or InvalidArgument when they name nobody
    or too many."""
    listed = ListedRecipients(
        profile_ids=tuple(dict.fromkeys(recipients.profile_ids)),
        subscriber_ids=tuple(dict.fromkeys(recipients.subscriber_ids)),
    )
    if not listed:
        raise InvalidArgument(
            "MISSING_RECIPIENTS",
            "recipients names nobody: give profile_ids or subscriber_ids, or leave "
            "recipients unset to send to the campaign's audience",
            field="recipients",
        )
    if len(listed) > MAX_LISTED_RECIPIENTS:
        raise InvalidArgument(
            "TOO_MANY_RECIPIENTS",
            f"recipients names {len(listed)} profiles and subscribers; at most "
            f"{MAX_LISTED_RECIPIENTS} a call (send the rest in another call)",
            field="recipients",
        )
    lists = (("profile_ids", listed.profile_ids), ("subscriber_ids", listed.subscriber_ids))
    for name, ids in lists:
        for index, value in enumerate(ids):
            # Segment's rule for the ids a site chooses: printable, one line, not blank.
            if not value.strip() or not value.isprintable():
                field = f"recipients.{name}[{index}]"
                raise InvalidArgument(
                    "INVALID_PROFILE_ID" if name == "profile_ids" else "INVALID_ID",
                    f"{field} is {'empty' if not value.strip() else 'not printable text'}",
                    field=field,
                )
    return listed


def _check_one_way_to_start(
    schedule: schedules.Schedule | None, trigger: triggers.Trigger | None, *, field: str
) -> None:
    if schedule is not None and trigger is not None:
        raise InvalidArgument(
            "SCHEDULE_AND_TRIGGER",
            "a campaign has a schedule or a trigger, not both: a live campaign starts its "
            "runs when people do something",
            field=field,
        )


def _live(trigger: triggers.Trigger, now: datetime) -> dict[str, Any]:
    """A campaign's state fields for a trigger set now: live (scheduled) until its end
    time, or completed if that has passed."""
    ended = trigger.end_time is not None and trigger.end_time <= now
    return {
        "trigger": triggers.trigger_to_json(trigger),
        "schedule": None,
        "state": CampaignState.COMPLETED if ended else CampaignState.SCHEDULED,
        "next_run_time": None,
    }

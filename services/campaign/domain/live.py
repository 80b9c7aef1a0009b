"""Live campaigns: reading segment's event feed for each campaign with a trigger, and
turning triggering events into pushes — at once, after a wait without the inaction
event, or at a reminder's time.

Every page of the feed is acted on exactly once: what it did (waits opened, moved or
ended, firings and their runs) is stored in the transaction that moves the campaign's
cursor past it, and only if the cursor is still where the page was read from (another
replica may have got there first). A wait ends in one transaction too, deleted only
if it is still the wait that was read, so two replicas never push it twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.campaign.domain import content, triggers, variants
from services.campaign.domain.campaigns import new_run
from services.campaign.domain.ports import FeedEventView, PeerCallFailed, SegmentPort
from services.campaign.store import (
    CampaignRecord,
    CampaignState,
    CampaignStore,
    FeedStep,
    FiringOutcome,
    FiringRecord,
    ListedRecipients,
    RunRecord,
    WaitRecord,
)
from services.kit.clock import Clock
from services.kit.logging import get_logger

log = get_logger(__name__)

# Events one feed read asks for; a campaign reads on until a read finds nothing new, up
# to FEED_PAGES_PER_PASS reads a pass, so one busy campaign does not hold up the others.
FEED_PAGE_SIZE = 1000
FEED_PAGES_PER_PASS = 5
# A wait falls due this long after its time: an inaction event that happened just
# before then has reached the feed by the time the wait is looked at.
WAIT_GRACE = timedelta(seconds=2)
# Waits ended a pass, and campaigns (and audience checks) worked on at once.
WAITS_PER_PASS = 1000
CAMPAIGN_CONCURRENCY = 8
MATCH_CONCURRENCY = 16


def person_key(profile_id: str, subscriber_id: str) -> str:
    """Who did an event: its profile, else (an anonymous browser) its subscriber."""
    return f"p:{profile_id}" if profile_id else f"s:{subscriber_id}"


@dataclass(frozen=True)
class _Due:
    """A push that is due: the event it is for and who gets it."""

    event_id: str
    profile_id: str
    subscriber_id: str
    # What of the event its push's templates read (triggers.event_properties_json).
    event_properties: str = ""

    @property
    def person_key(self) -> str:
        return person_key(self.profile_id, self.subscriber_id)


@dataclass(frozen=True)
class _Decision:
    due: _Due
    outcome: FiringOutcome
    # Whom the push goes to, when pushed.
    recipients: ListedRecipients | None


class LiveCampaigns:
    def __init__(
        self,
        store: CampaignStore,
        clock: Clock,
        segment: SegmentPort,
        *,
        on_runs: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._segment = segment
        # Called when runs were stored, so the hand-off loop takes them at once.
        self._on_runs = on_runs

    async def run_once(self) -> int:
        """One pass: every live campaign reads its feed on and acts on what it reads,
        then the waits that fell due end. Returns the runs started."""
        campaigns = await self._store.live_campaigns()
        slots = asyncio.Semaphore(CAMPAIGN_CONCURRENCY)
        now = self._clock.now()

        caught_up: set[str] = set()

        async def read(campaign: CampaignRecord) -> int:
            async with slots:
                try:
                    started, done = await self._read_feed(campaign, now)
                    if done:
                        caught_up.add(campaign.campaign_id)
                    return started
                except PeerCallFailed as failure:
                    # The cursor did not move: the same events are read next pass.
                    log.warning(
                        "live campaign could not read its events; will retry",
                        campaign_id=campaign.campaign_id,
                        error=str(failure),
                    )
                    return 0

        started = sum(await asyncio.gather(*(read(c) for c in campaigns)))
        # Only a campaign that has read every event so far ends its waits: an inaction
        # event still unread (a backlog) must get the chance to end the wait first.
        by_id = {c.campaign_id: c for c in campaigns if c.campaign_id in caught_up}
        started += await self._end_due_waits(by_id, now)
        for campaign in campaigns:
            await self._complete_if_ended(campaign, now)
        if started:
            self._on_runs()
        return started

    # The feed.

    async def _read_feed(self, campaign: CampaignRecord, now: datetime) -> tuple[int, bool]:
        """Reads the campaign's events on (up to FEED_PAGES_PER_PASS pages) and acts on
        them; returns the runs started and whether it read up to the feed's end."""
        trigger = triggers.trigger_from_json(campaign.trigger or "")
        names = triggers.event_names(trigger)
        cursor = campaign.feed_cursor
        started = 0
        for _ in range(FEED_PAGES_PER_PASS):
            page = await self._segment.event_feed(campaign.site_id, cursor, names, FEED_PAGE_SIZE)
            if not page.events and page.next_cursor == cursor:
                return started, True
            step = await self._feed_step(
                campaign, trigger, cursor, page.next_cursor, page.events, now
            )
            if not await self._store.apply_feed_step(campaign.campaign_id, step):
                return started, False  # another replica read this page first; it acted on it
            started += len(step.runs)
            for run in step.runs:
                log.info("triggered run started", run_id=run.run_id, campaign_id=run.campaign_id)
            # On until a read finds nothing new: a short page may have stopped at the
            # feed's scan limit, not at its end.
            cursor = page.next_cursor
        return started, False

    async def _feed_step(
        self,
        campaign: CampaignRecord,
        trigger: triggers.Trigger,
        cursor_from: str,
        cursor_to: str,
        events: Sequence[FeedEventView],
        now: datetime,
    ) -> FeedStep:
        """What a page of events does to the campaign: read in feed order, each event
        may end a person's wait (the inaction event), open, re-arm or move one, or be
        due at once."""
        live = [
            event
            for event in events
            if event.occur_time >= trigger.start_time
            and (trigger.end_time is None or event.occur_time <= trigger.end_time)
            and (event.profile_id or event.subscriber_id)
        ]
        if campaign.state is not CampaignState.SCHEDULED or not live:
            # Paused: the events pass by; nothing they would have started starts later.
            return FeedStep(cursor_from=cursor_from, cursor_to=cursor_to)
        wait = trigger.wait
        waits: dict[str, WaitRecord | None] = {}
        if wait is not None:
            keys = [person_key(event.profile_id, event.subscriber_id) for event in live]
            waits.update(await self._store.waits_for(campaign.campaign_id, keys))
        opened = dict(waits)
        due_now: list[_Due] = []
        reads = _event_properties_read(campaign)
        for event in live:
            key = person_key(event.profile_id, event.subscriber_id)
            if (
                isinstance(wait, triggers.Inaction)
                and event.name == wait.event_name
                and triggers.matches(wait.filters, event.properties, now)
            ):
                # Only within the window: a purchase after the push was due does not
                # take it back (the wait may still be open for the grace).
                current = waits.get(key)
                if (
                    current is not None
                    and current.event_time <= event.occur_time <= current.due_time
                ):
                    waits[key] = None
            if event.name != trigger.event_name or not triggers.matches(
                trigger.filters, event.properties, now
            ):
                continue
            if wait is None:
                due_now.append(
                    _Due(
                        event.event_id,
                        event.profile_id,
                        event.subscriber_id,
                        triggers.event_properties_json(event.properties, reads),
                    )
                )
                continue
            if isinstance(wait, triggers.Inaction):
                if waits.get(key) is not None and wait.keep_first_wait:
                    continue
                due_time = event.occur_time + wait.window
            else:
                reminder = triggers.reminder_time(wait, event.properties)
                if reminder is None or reminder < now:
                    # A date moved into the past (or taken away) ends the reminder.
                    waits[key] = None
                    continue
                due_time = reminder
            waits[key] = WaitRecord(
                campaign_id=campaign.campaign_id,
                site_id=campaign.site_id,
                person_key=key,
                event_id=event.event_id,
                event_time=event.occur_time,
                profile_id=event.profile_id,
                subscriber_id=event.subscriber_id,
                due_time=due_time,
                event_properties=triggers.event_properties_json(event.properties, reads),
            )
        waits_set = tuple(
            record
            for key, record in waits.items()
            if record is not None and record != opened.get(key)
        )
        waits_cleared = tuple(
            (key, before.event_id)
            for key, before in opened.items()
            if before is not None and waits.get(key) is None
        )
        # Decided at the clock's time now, not the pass's start: the page may hold events
        # that came after the pass began, and a cooldown must be measured to them.
        decided_at = max(now, self._clock.now())
        decisions = await self._decide(campaign, trigger, due_now, decided_at)
        firings, runs = _fired(campaign, decisions, decided_at)
        return FeedStep(
            cursor_from=cursor_from,
            cursor_to=cursor_to,
            waits_set=waits_set,
            waits_cleared=waits_cleared,
            firings=firings,
            runs=runs,
        )

    # Waits.

    async def _end_due_waits(self, campaigns: dict[str, CampaignRecord], now: datetime) -> int:
        waits = await self._store.due_waits(now - WAIT_GRACE, WAITS_PER_PASS)
        by_campaign: dict[str, list[WaitRecord]] = {}
        for wait in waits:
            by_campaign.setdefault(wait.campaign_id, []).append(wait)
        started = 0
        for campaign_id, due_waits in by_campaign.items():
            campaign = campaigns.get(campaign_id)
            if campaign is None:
                continue  # behind on its events (or no longer live: its waits went with it)
            trigger = triggers.trigger_from_json(campaign.trigger or "")
            dues = [
                _Due(w.event_id, w.profile_id, w.subscriber_id, w.event_properties)
                for w in due_waits
            ]
            if campaign.state is CampaignState.PAUSED:
                decisions = [_Decision(due, FiringOutcome.PAUSED, None) for due in dues]
            else:
                try:
                    decisions = await self._decide(campaign, trigger, dues, now)
                except PeerCallFailed as failure:
                    log.warning(
                        "due pushes of a live campaign wait for segment",
                        campaign_id=campaign_id,
                        error=str(failure),
                    )
                    continue
            decided = {decision.due.event_id: decision for decision in decisions}

            def plan(
                taken: list[WaitRecord],
                campaign: CampaignRecord = campaign,
                decided: dict[str, _Decision] = decided,
            ) -> tuple[tuple[FiringRecord, ...], tuple[RunRecord, ...]]:
                return _fired(campaign, [decided[wait.event_id] for wait in taken], now)

            runs = await self._store.end_waits(due_waits, plan)
            started += len(runs)
            for run in runs:
                log.info("triggered run started", run_id=run.run_id, campaign_id=campaign_id)
        return started

    # Deciding.

    async def _decide(
        self,
        campaign: CampaignRecord,
        trigger: triggers.Trigger,
        dues: Sequence[_Due],
        now: datetime,
    ) -> list[_Decision]:
        """Whether each due push goes, and to whom: not within the person's cooldown,
        only to a person the campaign's audience matches now (and only to the
        subscribers it reaches). Raises PeerCallFailed when segment cannot say."""
        if not dues:
            return []
        last: dict[str, datetime] = {}
        if trigger.person_cooldown:
            last = await self._store.last_pushes(
                campaign.campaign_id, [due.person_key for due in dues]
            )
        matched: dict[str, tuple[bool, tuple[str, ...]]] = {}
        if campaign.audience is not None:
            audience = campaign.audience
            slots = asyncio.Semaphore(MATCH_CONCURRENCY)

            async def match(due: _Due) -> None:
                async with slots:
                    found = await self._segment.match_person(
                        campaign.site_id,
                        audience,
                        profile_id=due.profile_id,
                        subscriber_id=due.subscriber_id,
                    )
                matched[due.person_key] = (found.matches, found.reachable_subscriber_ids)

            people = {due.person_key: due for due in dues}
            await asyncio.gather(*(match(due) for due in people.values()))
        decisions = []
        for due in dues:
            key = due.person_key
            cooling = key in last and now - last[key] < trigger.person_cooldown
            if trigger.person_cooldown and cooling:
                decisions.append(_Decision(due, FiringOutcome.COOLDOWN, None))
                continue
            if campaign.audience is not None:
                matches, reachable = matched[key]
                if not matches:
                    decisions.append(_Decision(due, FiringOutcome.NOT_IN_AUDIENCE, None))
                    continue
                if not reachable:
                    decisions.append(_Decision(due, FiringOutcome.UNREACHABLE, None))
                    continue
                recipients = ListedRecipients(subscriber_ids=reachable)
            elif due.profile_id:
                recipients = ListedRecipients(profile_ids=(due.profile_id,))
            else:
                recipients = ListedRecipients(subscriber_ids=(due.subscriber_id,))
            decisions.append(_Decision(due, FiringOutcome.PUSHED, recipients))
            if trigger.person_cooldown:
                last[key] = now
        return decisions

    async def _complete_if_ended(self, campaign: CampaignRecord, now: datetime) -> None:
        """A live campaign past its end time completes; its open waits end unsent."""
        trigger = triggers.trigger_from_json(campaign.trigger or "")
        if trigger.end_time is None or trigger.end_time > now:
            return
        ended = replace(campaign, state=CampaignState.COMPLETED)
        if await self._store.update_campaign(ended):
            log.info("live campaign completed", campaign_id=campaign.campaign_id)


def _event_properties_read(campaign: CampaignRecord) -> frozenset[str]:
    """The triggering event's properties the campaign's templates read (any variant's)."""
    return frozenset().union(
        *(
            content.template_variables(notification).event
            for _, notification in variants.notifications(campaign)
        )
    )


def _fired(
    campaign: CampaignRecord, decisions: Sequence[_Decision], now: datetime
) -> tuple[tuple[FiringRecord, ...], tuple[RunRecord, ...]]:
    """The firings of these decisions, and the runs that push them: the pushes decided
    together share runs, each person at most once per run (a person pushed twice at
    once is in two runs)."""
    rounds: list[dict[str, _Decision]] = []
    run_of: dict[str, int] = {}
    for decision in decisions:
        if decision.outcome is not FiringOutcome.PUSHED:
            continue
        key = decision.due.person_key
        index = next((i for i, people in enumerate(rounds) if key not in people), len(rounds))
        if index == len(rounds):
            rounds.append({})
        rounds[index][key] = decision
        run_of[decision.due.event_id] = index
    runs = []
    for people in rounds:
        profile_ids: list[str] = []
        subscriber_ids: list[str] = []
        contexts: list[tuple[str, str, str]] = []
        for decision in people.values():
            assert decision.recipients is not None
            profile_ids.extend(decision.recipients.profile_ids)
            subscriber_ids.extend(decision.recipients.subscriber_ids)
            due = decision.due
            if due.event_properties:
                # One per person (a round holds each person once); delivery finds it by
                # the recipient's profile, else its subscriber.
                contexts.append((due.profile_id, due.subscriber_id, due.event_properties))
        runs.append(
            new_run(
                campaign,
                now,
                recipients=ListedRecipients(
                    tuple(dict.fromkeys(profile_ids)),
                    tuple(dict.fromkeys(subscriber_ids)),
                    tuple(contexts),
                ),
            )
        )
    firings = tuple(
        FiringRecord(
            campaign_id=campaign.campaign_id,
            site_id=campaign.site_id,
            event_id=decision.due.event_id,
            person_key=decision.due.person_key,
            outcome=decision.outcome,
            run_id=runs[run_of[decision.due.event_id]].run_id
            if decision.outcome is FiringOutcome.PUSHED
            else None,
            fire_time=now,
        )
        for decision in decisions
    )
    return firings, tuple(runs)

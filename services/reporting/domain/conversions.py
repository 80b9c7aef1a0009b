"""Conversions: crediting goal events, read from segment's event feed, to the pushes that
led to them (clarion.common.v1.ConversionGoal).

For every site and goal event name with a run whose goal is still open, the follower
reads the site's events of that name from a cursor reporting keeps. An event of a
profile is credited to at most one push: of the profile's pushes sent within their
run's window before the event, by runs whose goal is this event, the last one clicked
(before the event), else the last one viewed, else the last one sent. The run's goal
gives the revenue property; a value that is no number (or none) counts with revenue 0.
A profile held out of such a run (its control group) within the window before the event
counts once for that run's control group conversions.

A page of events is acted on once: what it credited is stored in the transaction that
moves the cursor, compare-and-set, so of two replicas reading the same page only the
first stores anything. Conversions are keyed by the event id and control conversions by
(run, profile), so an event read again (a cursor moved back, a second replica) never
counts twice.

Unsubscribes after a push: for every site that sent a push (not a test send) in the
last UNSUBSCRIBE_WINDOW, the UnsubscribeFollower reads segment's "Unsubscribed" events
from a cursor of its own per site, and credits each to the subscriber's last push sent
within UNSUBSCRIBE_WINDOW before it (none: not credited). Same once-only rules: the page
is stored in the transaction that moves the cursor, and credits are keyed by event id.

An event is read only once it has been in segment for SETTLE: the outcome of the push
it converts (relayed by delivery's outbox) and its click (from the gateway) come within
about a second of the push, and must be in before the event is credited.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from services.kit.clock import Clock
from services.kit.logging import OncePer, get_logger
from services.reporting.store import (
    UNSUBSCRIBE_CURSOR,
    ControlConversionRecord,
    ConversionRecord,
    FollowedGoal,
    GoalTouch,
    ReportingStore,
    UnsubscribeRecord,
)

log = get_logger(__name__)

# Events one feed read asks for; a name is read on until a read finds nothing new, up
# to FEED_PAGES_PER_PASS reads a pass, so one busy site does not hold up the others.
FEED_PAGE_SIZE = 500
FEED_PAGES_PER_PASS = 5
FOLLOW_CONCURRENCY = 8
SETTLE = timedelta(seconds=5)
# A name's feed is still read this long after its last goal closed: an event may be
# tracked late (its time in the window, stored later), and a campaign sent again within
# the week goes on from the same cursor instead of from the feed's end.
FOLLOW_AFTER_WINDOW = timedelta(days=7)
# A segment that stays away is said once a minute per site, not every pass.
FAILURE_LOG_SECONDS = 60.0
# Segment's own event for a subscriber that unsubscribed, and how long after a push an
# unsubscribe is counted as following it.
UNSUBSCRIBED_EVENT = "Unsubscribed"
UNSUBSCRIBE_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class GoalEvent:
    """An event of a goal's name, as the feed gives it."""

    event_id: str
    # Empty for an anonymous event: it cannot be credited (pushes are known by profile).
    profile_id: str
    occur_time: datetime
    receive_time: datetime
    # The event's numeric properties by name (finite values only).
    numbers: Mapping[str, float]
    # The subscriber it names; empty when none.
    subscriber_id: str = ""


@dataclass(frozen=True)
class GoalEventPage:
    events: list[GoalEvent]
    # Where the next read starts; equal to the cursor read from when nothing came.
    next_cursor: str


class FeedUnavailable(Exception):
    """Segment's feed could not be read; the cursor did not move."""


class CursorRefused(Exception):
    """Segment does not know the stored cursor (its events were restored or reset)."""


class EventFeedPort(Protocol):
    async def read(
        self,
        site_id: str,
        event_name: str,
        cursor: str,
        page_size: int,
        *,
        start_at_end: bool = False,
    ) -> GoalEventPage: ...


@dataclass(frozen=True)
class Credits:
    conversions: list[ConversionRecord]
    controls: list[ControlConversionRecord]


def _engagement_rank(touch: GoalTouch, event_time: datetime) -> int:
    """2 when the push was clicked before the event, 1 when only viewed, 0 when neither."""
    if touch.first_click_time is not None and touch.first_click_time <= event_time:
        return 2
    if touch.first_view_time is not None and touch.first_view_time <= event_time:
        return 1
    return 0


def credit(events: Sequence[GoalEvent], touches: Sequence[GoalTouch]) -> Credits:
    """What these events credit, by the rule in the module's docstring; `touches` are
    the pushes and held-out ones of the events' profiles around their times."""
    by_profile: defaultdict[str, list[GoalTouch]] = defaultdict(list)
    for touch in touches:
        by_profile[touch.profile_id].append(touch)
    conversions: list[ConversionRecord] = []
    controls: dict[tuple[str, str], ControlConversionRecord] = {}
    for event in events:
        if not event.profile_id:
            continue
        within = [
            touch
            for touch in by_profile.get(event.profile_id, ())
            if event.occur_time - touch.window <= touch.push_time <= event.occur_time
        ]
        pushes = [touch for touch in within if not touch.held_out]
        if pushes:
            # Ties (one run to two browsers of the profile) broken by id, so every
            # replica credits the same push.
            best = max(
                pushes,
                key=lambda touch: (
                    _engagement_rank(touch, event.occur_time),
                    touch.push_time,
                    touch.run_id,
                    touch.subscriber_id,
                ),
            )
            revenue = (
                event.numbers.get(best.revenue_property, 0.0) if best.revenue_property else 0.0
            )
            conversions.append(
                ConversionRecord(
                    event_id=event.event_id,
                    run_id=best.run_id,
                    subscriber_id=best.subscriber_id,
                    campaign_id=best.campaign_id,
                    variant=best.variant,
                    profile_id=event.profile_id,
                    revenue=revenue,
                    occur_time=event.occur_time,
                )
            )
        for touch in within:
            key = (touch.run_id, event.profile_id)
            if touch.held_out and key not in controls:
                controls[key] = ControlConversionRecord(
                    run_id=touch.run_id,
                    profile_id=event.profile_id,
                    campaign_id=touch.campaign_id,
                    event_id=event.event_id,
                    occur_time=event.occur_time,
                )
    return Credits(conversions, list(controls.values()))


class _FeedFollower:
    """Reads a site's events of one name from a cursor reporting keeps, a page of settled
    events at a time; each page's credits are stored in the transaction that moves the
    cursor (see the module docstring)."""

    def __init__(
        self,
        store: ReportingStore,
        clock: Clock,
        feed: EventFeedPort,
        *,
        settle: timedelta = SETTLE,
    ) -> None:
        self._store = store
        self._clock = clock
        self._feed = feed
        self._settle = settle
        self._failure_logged = OncePer(FAILURE_LOG_SECONDS, max_keys=256)

    async def _follow_feed(
        self,
        site_id: str,
        event_name: str,
        cursor_name: str,
        now: datetime,
        store_page: Callable[[str, GoalEventPage], Awaitable[int | None]],
        *,
        warn_refused: bool = False,
    ) -> int:
        """Reads `event_name`'s events on from the cursor `cursor_name`, up to
        FEED_PAGES_PER_PASS pages. `store_page(cursor, page)` stores what a page credits
        and moves the cursor from `cursor` past it: the number credited, or None when
        another replica acted on the page first. Returns the number credited."""
        cursor = await self._store.feed_cursor(site_id, cursor_name)
        if cursor is None:
            # A new cursor: its events from now on (the feed cannot be read from a time,
            # and the site's whole history is not worth reading for it).
            start = await self._feed.read(site_id, event_name, "", 1, start_at_end=True)
            cursor = await self._store.start_feed_cursor(
                site_id, cursor_name, start.next_cursor, now
            )
        settled = now - self._settle
        credited = 0
        for _ in range(FEED_PAGES_PER_PASS):
            try:
                page = await self._feed.read(site_id, event_name, cursor, FEED_PAGE_SIZE)
            except CursorRefused:
                if warn_refused:
                    log.warning(
                        "segment refused the stored feed cursor; reading goal events from now on",
                        site_id=site_id,
                        event_name=event_name,
                    )
                await self._store.forget_feed_cursor(site_id, cursor_name, cursor)
                return credited
            if not page.events and page.next_cursor == cursor:
                break
            ready = 0
            while ready < len(page.events) and page.events[ready].receive_time <= settled:
                ready += 1
            partial = ready < len(page.events)
            if partial:
                if ready == 0:
                    break
                # Only the settled events: read them again as a page of their own, for
                # the cursor just after them.
                head = page.events[:ready]
                page = await self._feed.read(site_id, event_name, cursor, ready)
                if [e.event_id for e in page.events] != [
                    e.event_id for e in head[: len(page.events)]
                ]:
                    break  # not the events read a moment ago; try again next pass
            stored = await store_page(cursor, page)
            if stored is None:
                break  # another replica acted on this page first
            credited += stored
            cursor = page.next_cursor
            if partial:
                break
        return credited


class ConversionFollower(_FeedFollower):
    async def run_once(self) -> int:
        """One pass: every followed goal name reads its events on and credits them.
        Returns the conversions credited."""
        now = self._clock.now()
        since = now - FOLLOW_AFTER_WINDOW
        await self._store.drop_unfollowed_cursors(since)
        goals = await self._store.followed_goals(since)
        slots = asyncio.Semaphore(FOLLOW_CONCURRENCY)

        async def follow(goal: FollowedGoal) -> int:
            async with slots:
                try:
                    return await self._follow(goal, now)
                except FeedUnavailable as failure:
                    # The cursor did not move: the same events are read next pass.
                    if self._failure_logged(goal.site_id):
                        log.warning(
                            "could not read goal events from segment; will retry",
                            site_id=goal.site_id,
                            event_name=goal.event_name,
                            error=str(failure),
                        )
                    return 0

        return sum(await asyncio.gather(*(follow(goal) for goal in goals)))

    async def _follow(self, goal: FollowedGoal, now: datetime) -> int:
        async def store_page(cursor: str, page: GoalEventPage) -> int | None:
            credits = await self._credit(goal, page.events)
            applied = await self._store.apply_conversion_page(
                goal.site_id,
                goal.event_name,
                cursor,
                page.next_cursor,
                credits.conversions,
                credits.controls,
                now,
            )
            return len(credits.conversions) if applied else None

        return await self._follow_feed(
            goal.site_id, goal.event_name, goal.event_name, now, store_page, warn_refused=True
        )

    async def _credit(self, goal: FollowedGoal, events: Sequence[GoalEvent]) -> Credits:
        known = [event for event in events if event.profile_id]
        if not known:
            return Credits([], [])
        touches = await self._store.goal_touches(
            goal.site_id,
            goal.event_name,
            [event.profile_id for event in known],
            min(event.occur_time for event in known),
            max(event.occur_time for event in known),
        )
        return credit(known, touches)


def credit_unsubscribes(
    events: Sequence[GoalEvent], pushes: Sequence[tuple[str, str, datetime]]
) -> list[UnsubscribeRecord]:
    """Each event of a subscriber credited to its last push sent within
    UNSUBSCRIBE_WINDOW before it; `pushes` are (run, subscriber, sent time)."""
    by_subscriber: defaultdict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for run_id, subscriber_id, sent_time in pushes:
        by_subscriber[subscriber_id].append((sent_time, run_id))
    credits = []
    for event in events:
        within = [
            push
            for push in by_subscriber.get(event.subscriber_id, ())
            if event.occur_time - UNSUBSCRIBE_WINDOW <= push[0] <= event.occur_time
        ]
        if within:
            _, run_id = max(within)
            credits.append(
                UnsubscribeRecord(event.event_id, run_id, event.subscriber_id, event.occur_time)
            )
    return credits


class UnsubscribeFollower(_FeedFollower):
    """Follows every sending site's "Unsubscribed" events (see the module docstring)."""

    async def run_once(self) -> int:
        """One pass over the sites that sent in the window; returns the credits stored."""
        now = self._clock.now()
        since = now - UNSUBSCRIBE_WINDOW
        await self._store.drop_unsubscribe_cursors(since)
        slots = asyncio.Semaphore(FOLLOW_CONCURRENCY)

        async def follow(site_id: str) -> int:
            async with slots:
                try:
                    return await self._follow(site_id, now)
                except FeedUnavailable as failure:
                    if self._failure_logged(site_id):
                        log.warning(
                            "could not read unsubscribes from segment; will retry",
                            site_id=site_id,
                            error=str(failure),
                        )
                    return 0

        sites = await self._store.sites_sending_since(since)
        return sum(await asyncio.gather(*(follow(site_id) for site_id in sites)))

    async def _follow(self, site_id: str, now: datetime) -> int:
        async def store_page(cursor: str, page: GoalEventPage) -> int | None:
            known = [event for event in page.events if event.subscriber_id]
            pushes = (
                await self._store.pushes_before(
                    site_id,
                    [event.subscriber_id for event in known],
                    min(event.occur_time for event in known) - UNSUBSCRIBE_WINDOW,
                    max(event.occur_time for event in known),
                )
                if known
                else []
            )
            credits = credit_unsubscribes(known, pushes)
            if not await self._store.apply_unsubscribe_page(
                site_id, cursor, page.next_cursor, credits, now
            ):
                return None
            return len(credits)

        return await self._follow_feed(
            site_id, UNSUBSCRIBED_EVENT, UNSUBSCRIBE_CURSOR, now, store_page
        )

"""Who an audience selects: reach estimates, one person's match, validation before a
campaign keeps an audience, and a run's audience kept once as of its snapshot.

An audience (AudienceSelector) is a saved segment's id, an ad-hoc definition already
checked for shape (wire.audience_from_proto), or None for every subscriber.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from services.kit.clock import Clock
from services.kit.errors import InvalidArgument, NotFound
from services.kit.logging import get_logger
from services.segment.definition import Condition, possible_browsers
from services.segment.models import Browser
from services.segment.segments import Segments
from services.segment.store import SubscriberStore

log = get_logger(__name__)

# An estimate reads the people of this many of the 100 sample buckets (10%)...
SAMPLE_BUCKETS = 10
# ... and is answered when its 95% interval is this tight; else reach is counted.
MAX_MARGIN_OF_ERROR_PCT = 5.0

Selector = str | Condition | None


@dataclass(frozen=True)
class Reach:
    people: int
    reachable: int
    # Largest first.
    by_browser: list[tuple[Browser, int]]
    exact: bool
    sample_fraction: float
    margin_of_error_pct: float


@dataclass(frozen=True)
class Match:
    matches: bool
    reachable_subscriber_ids: list[str]


def _largest_first(by_browser: dict[Browser, int]) -> list[tuple[Browser, int]]:
    return sorted(by_browser.items(), key=lambda item: (-item[1], item[0].value))


class Audiences:
    def __init__(self, store: SubscriberStore, segments: Segments, clock: Clock) -> None:
        self._store = store
        self._segments = segments
        self._clock = clock

    async def definition_of(
        self, site_id: str, selector: Selector, field: str = "audience"
    ) -> Condition | None:
        """The condition an audience stands for (None: everyone), type-checked against
        what the site stores."""
        if selector is None:
            return None
        if isinstance(selector, str):
            segment = await self._segments.get(site_id, selector, f"{field}.segment_id")
            return segment.definition
        await self._segments.check_definition_types(
            site_id, selector, f"{field}.definition.condition"
        )
        return selector

    async def validate(self, site_id: str, selector: Selector) -> frozenset[Browser]:
        """Checks the audience; answers the browsers its definition does not rule out."""
        return possible_browsers(await self.definition_of(site_id, selector))

    async def estimate(self, site_id: str, selector: Selector, *, exact: bool) -> Reach:
        """Reach from a sample of people when that is close enough, else exact.

        The sample is the people in SAMPLE_BUCKETS of the 100 sample buckets (a hash of
        their id, so a person and all their subscribers are in or out together), each
        count scaled by 100 / SAMPLE_BUCKETS. With f the sampled share and r_i a sampled
        person's active subscriptions, the estimate's variance is (1 - f) / f^2 * sum r_i^2
        (each person drawn independently with probability f); its 95% interval's half
        width, as a share of the estimate, is margin_of_error_pct. Over
        MAX_MARGIN_OF_ERROR_PCT (a small segment: few sampled people), or on SQLite,
        which has no hash to sample by, every person is counted instead."""
        condition = await self.definition_of(site_id, selector)
        now = self._clock.now()
        if not exact and self._store.samples:
            sampled = await self._store.reach(site_id, condition, now, sample_below=SAMPLE_BUCKETS)
            share = SAMPLE_BUCKETS / 100
            estimate = sampled.reachable / share
            if estimate:
                variance = (1 - share) / share**2 * sampled.reachable_squares
                margin = 100 * 1.96 * math.sqrt(variance) / estimate
                if margin <= MAX_MARGIN_OF_ERROR_PCT:
                    return Reach(
                        people=round(sampled.people / share),
                        reachable=round(estimate),
                        by_browser=_largest_first(
                            {b: round(n / share) for b, n in sampled.by_browser.items()}
                        ),
                        exact=False,
                        sample_fraction=share,
                        margin_of_error_pct=round(margin, 2),
                    )
        counts = await self._store.reach(site_id, condition, now)
        return Reach(
            people=counts.people,
            reachable=counts.reachable,
            by_browser=_largest_first(counts.by_browser),
            exact=True,
            sample_fraction=1.0,
            margin_of_error_pct=0.0,
        )

    async def match(
        self, site_id: str, selector: Selector, *, profile_id: str, subscriber_id: str
    ) -> Match:
        if bool(profile_id) == bool(subscriber_id):
            raise InvalidArgument(
                "MISSING_PERSON",
                "name the person: profile_id, or subscriber_id for an anonymous browser",
                field="person",
            )
        condition = await self.definition_of(site_id, selector)
        found = await self._store.match_one(
            site_id,
            profile_id=profile_id or None,
            subscriber_id=subscriber_id or None,
            condition=condition,
            now=self._clock.now(),
        )
        if found is None:
            field = "profile_id" if profile_id else "subscriber_id"
            reason = "PROFILE_NOT_FOUND" if profile_id else "SUBSCRIBER_NOT_FOUND"
            raise NotFound(
                reason,
                f"{field} {(profile_id or subscriber_id)[:128]!r} is not known to this site",
                field=field,
            )
        matches, reachable = found
        return Match(matches, reachable)

    async def keep_for_run(
        self, site_id: str, audience_key: str, selector: Selector, snapshot_time: datetime
    ) -> None:
        """Evaluates the audience once, as of snapshot_time, and keeps who matched under
        audience_key; a second call for the same key keeps the first result."""
        if await self._store.audience_kept(site_id, audience_key):
            return
        condition = await self.definition_of(site_id, selector)
        kept = await self._store.keep_audience(
            site_id, audience_key, condition, snapshot_time, self._clock.now()
        )
        log.info("audience kept", audience_key=audience_key, members=kept)

"""Why a person got (or did not get) a run's push: ExplainRecipient.

For each run in scope (one run, or a campaign's newest runs) and each subscriber of the
person (one subscriber, or every subscriber of a profile): delivery's outcome when the
run queued it, else the reason it was not targeted (from the run and segment's view of
the subscriber), and what reporting recorded of the push (viewed, clicked, closed,
conversions).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from services.campaign.domain.outcomes import explain
from services.campaign.domain.ports import (
    ActivityView,
    DeliveryPort,
    PeerCallFailed,
    RecipientOutcomeView,
    ReportingPort,
    SegmentPort,
    SubscriberView,
)
from services.campaign.store import CampaignStore, RunRecord
from services.kit.errors import InvalidArgument, NotFound, Unavailable

T = TypeVar("T")

# A campaign's runs explained at most (its newest).
MAX_RUNS = 50
# A profile's subscribers explained at most.
MAX_SUBSCRIBERS = 50
# Peer calls in flight at once for one request.
CONCURRENCY = 8
# Unsubscribe reasons that mean the push service, not the person, ended the subscription.
_GONE_REASONS = frozenset({"push_service_404", "push_service_410", "apns_unregistered"})


class NotTargeted(StrEnum):
    """Why a subscriber was not among a run's recipients (campaign.proto's
    NotTargetedReason, without its prefix, in lower case)."""

    NOT_IN_SEGMENT = "not_in_segment"
    UNSUBSCRIBED = "unsubscribed"
    JOINED_AFTER_RUN = "joined_after_run"
    UNREACHABLE = "unreachable"
    TEST_SEND_ONLY = "test_send_only"
    UNKNOWN_SUBSCRIBER = "unknown_subscriber"
    NOT_IN_SAMPLE = "not_in_sample"


SENTENCES: dict[NotTargeted, str] = {
    NotTargeted.NOT_IN_SEGMENT: (
        "not targeted: the subscriber was not in the run's audience when the run started"
    ),
    NotTargeted.UNSUBSCRIBED: "not targeted: the subscriber had unsubscribed before the run",
    NotTargeted.JOINED_AFTER_RUN: (
        "not targeted: the subscriber subscribed after the run started (a run's audience "
        "is fixed when it starts)"
    ),
    NotTargeted.UNREACHABLE: (
        "not targeted: the subscription could not be sent to (no push keys, or its push "
        "service had said it is gone)"
    ),
    NotTargeted.TEST_SEND_ONLY: (
        "not targeted: the run was a test send, to the site's test profiles only"
    ),
    NotTargeted.UNKNOWN_SUBSCRIBER: "not targeted: the site has no such subscriber",
    NotTargeted.NOT_IN_SAMPLE: (
        "not targeted: the run went to a sample of the audience (a variant test's share) "
        "and the subscriber was not in it"
    ),
}
_STILL_RESOLVING = " (the run's audience is still being resolved: this may change)"


@dataclass(frozen=True)
class Explanation:
    """One (run, subscriber): targeted with delivery's outcome, or why not; and what
    the person did with the push."""

    run_id: str
    subscriber_id: str
    run_start_time: datetime
    # Set when targeted.
    outcome: RecipientOutcomeView | None
    # Set when not targeted.
    not_targeted: NotTargeted | None
    # A sentence for a person: delivery's when targeted, else why not.
    sentence: str
    activity: ActivityView | None

    @property
    def targeted(self) -> bool:
        return self.outcome is not None


class RecipientExplainer:
    def __init__(
        self,
        store: CampaignStore,
        delivery: DeliveryPort,
        segment: SegmentPort,
        reporting: ReportingPort,
    ) -> None:
        self._store = store
        self._delivery = delivery
        self._segment = segment
        self._reporting = reporting

    async def explain(
        self,
        site_id: str,
        *,
        campaign_id: str = "",
        run_id: str = "",
        subscriber_id: str = "",
        profile_id: str = "",
    ) -> list[Explanation]:
        """Every (run, subscriber) in scope, runs newest first, each run's subscribers in
        the profile's order."""
        if not (campaign_id or run_id):
            raise InvalidArgument(
                "MISSING_SCOPE",
                "name the runs: run_id, or campaign_id for the campaign's newest runs",
                field="run_id",
            )
        if not (subscriber_id or profile_id):
            raise InvalidArgument(
                "MISSING_PERSON",
                "name the person: subscriber_id, or profile_id for every subscriber of a profile",
                field="subscriber_id",
            )
        runs = await self._runs(site_id, campaign_id, run_id)
        if subscriber_id:
            subscriber_ids = [subscriber_id]
        else:
            found = await self._peer(
                "SEGMENT_UNAVAILABLE",
                f"segment could not list the subscribers of profile {profile_id!r}",
                lambda: self._segment.profile_subscriber_ids(site_id, profile_id),
            )
            if found is None:
                raise NotFound(
                    "PROFILE_NOT_FOUND",
                    f"there is no profile {profile_id[:128]!r} in this site",
                    field="profile_id",
                )
            subscriber_ids = found[:MAX_SUBSCRIBERS]
        limit = asyncio.Semaphore(CONCURRENCY)
        subscribers: dict[str, asyncio.Task[SubscriberView | None]] = {}

        def subscriber(sid: str) -> asyncio.Task[SubscriberView | None]:
            # Read once per request, and only for a subscriber some run did not target.
            if sid not in subscribers:
                subscribers[sid] = asyncio.ensure_future(
                    self._bounded(
                        limit,
                        lambda: self._peer(
                            "SEGMENT_UNAVAILABLE",
                            f"segment could not say who subscriber {sid!r} is",
                            lambda: self._segment.subscriber(site_id, sid),
                        ),
                    )
                )
            return subscribers[sid]

        async def one(run: RunRecord, sid: str) -> Explanation:
            return await self._explain_one(site_id, run, sid, limit, subscriber)

        # Every call ends before the answer (or the first failure) goes back.
        answers = await asyncio.gather(
            *(one(run, sid) for run in runs for sid in subscriber_ids), return_exceptions=True
        )
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return answers  # type: ignore[return-value]

    async def _runs(self, site_id: str, campaign_id: str, run_id: str) -> list[RunRecord]:
        if run_id:
            run = await self._store.get_run(site_id, run_id)
            if run is None:
                raise NotFound(
                    "RUN_NOT_FOUND", f"there is no run {run_id!r} in this site", run_id=run_id
                )
            return [run]
        if await self._store.get_campaign(site_id, campaign_id) is None:
            raise NotFound(
                "CAMPAIGN_NOT_FOUND",
                f"there is no campaign {campaign_id!r} in this site",
                campaign_id=campaign_id,
            )
        return await self._store.list_runs(site_id, campaign_id, "", MAX_RUNS)

    async def _explain_one(
        self,
        site_id: str,
        run: RunRecord,
        subscriber_id: str,
        limit: asyncio.Semaphore,
        subscriber: Callable[[str], Awaitable[SubscriberView | None]],
    ) -> Explanation:
        outcome = None
        # A run delivery does not have yet queued no one.
        if not run.handoff_pending:
            outcome = await self._bounded(
                limit,
                lambda: self._peer(
                    "DELIVERY_UNAVAILABLE",
                    f"delivery could not say what happened to {subscriber_id!r} "
                    f"in run {run.run_id!r}",
                    lambda: self._delivery.recipient_outcome(site_id, run.run_id, subscriber_id),
                ),
            )
        if outcome is not None:
            activity = await self._bounded(
                limit,
                lambda: self._peer(
                    "REPORTING_UNAVAILABLE",
                    f"reporting could not say what {subscriber_id!r} did with run "
                    f"{run.run_id!r}'s push",
                    lambda: self._reporting.recipient_activity(site_id, run.run_id, subscriber_id),
                ),
            )
            return Explanation(
                run_id=run.run_id,
                subscriber_id=subscriber_id,
                run_start_time=run.create_time,
                outcome=outcome,
                not_targeted=None,
                sentence=explain(outcome.status, outcome.reason),
                activity=activity,
            )
        reason = await self._why_not(run, subscriber_id, subscriber)
        sentence = SENTENCES[reason]
        if run.finish_time is None and reason in (
            NotTargeted.NOT_IN_SEGMENT,
            NotTargeted.NOT_IN_SAMPLE,
        ):
            sentence += _STILL_RESOLVING
        return Explanation(
            run_id=run.run_id,
            subscriber_id=subscriber_id,
            run_start_time=run.create_time,
            outcome=None,
            not_targeted=reason,
            sentence=sentence,
            activity=None,
        )

    async def _why_not(
        self,
        run: RunRecord,
        subscriber_id: str,
        subscriber: Callable[[str], Awaitable[SubscriberView | None]],
    ) -> NotTargeted:
        if run.test:
            return NotTargeted.TEST_SEND_ONLY
        found = await subscriber(subscriber_id)
        if found is None:
            return NotTargeted.UNKNOWN_SUBSCRIBER
        start = run.create_time
        if found.create_time is not None and found.create_time > start:
            return NotTargeted.JOINED_AFTER_RUN
        if not found.active and (found.update_time is None or found.update_time <= start):
            if found.unsubscribe_reason in _GONE_REASONS:
                return NotTargeted.UNREACHABLE
            return NotTargeted.UNSUBSCRIBED
        if not found.reachable:
            return NotTargeted.UNREACHABLE
        if run.sample is not None:
            return NotTargeted.NOT_IN_SAMPLE
        return NotTargeted.NOT_IN_SEGMENT

    @staticmethod
    async def _bounded(limit: asyncio.Semaphore, call: Callable[[], Awaitable[T]]) -> T:
        async with limit:
            return await call()

    @staticmethod
    async def _peer(reason: str, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """The peer's answer; its failure as UNAVAILABLE naming the service."""
        try:
            return await call()
        except PeerCallFailed as failure:
            raise Unavailable(reason, f"{what}: {failure}; try again") from None

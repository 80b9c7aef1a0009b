"""What campaign needs from delivery, segment and reporting, as the domain sees it.

The gRPC implementations live in services.campaign.peer_clients; unit tests use
in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from clarion.campaign.v1 import campaign_pb2
from clarion.segment.v1 import segment_pb2
from services.campaign.domain.policies import RunPolicy
from services.campaign.store import RunProgress, RunRecord, RunState


class PeerCallFailed(Exception):
    """A call to another service failed; `step` names it, e.g. 'delivery.StartDeliveryRun'.
    `permanent` when the peer refused the request itself (asking again cannot help)."""

    def __init__(self, step: str, detail: str, *, permanent: bool = False) -> None:
        super().__init__(f"{step} failed: {detail}")
        self.step = step
        self.detail = detail
        self.permanent = permanent


class AudienceRefused(Exception):
    """Segment refused an audience: the saved segment does not exist (`not_found`) or the
    definition is invalid. `reason` is segment's ErrorInfo reason; `field` the field
    inside the audience it named ("audience.definition.condition..."), "" for none."""

    def __init__(
        self, message: str, *, reason: str, not_found: bool, field: str = "", segment_id: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.not_found = not_found
        self.field = field
        self.segment_id = segment_id


@dataclass(frozen=True)
class DeliveryRunView:
    """A run as delivery sees it."""

    run_id: str
    state: RunState
    progress: RunProgress
    failure_reason: str
    finish_time: datetime | None
    # Push services holding the site's sends (they refuse its VAPID signature).
    held_push_services: tuple[Any, ...] = ()


class RecipientStatus(StrEnum):
    """Where one recipient of a run stands, as delivery holds it."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class RecipientOutcomeView:
    """One recipient of a run as delivery sees it."""

    subscriber_id: str
    status: RecipientStatus
    # A DeliveryReason word ("push_service_410"); "" for none (a sent recipient).
    reason: str
    attempts: int
    finish_time: datetime | None
    # The A/B test variant it got ("" for none), every request made to its push
    # service (oldest first) and when the run queued it; () and None from a delivery
    # that does not say.
    variant: str = ""
    attempt_history: tuple[AttemptView, ...] = ()
    queue_time: datetime | None = None


@dataclass(frozen=True)
class AttemptView:
    """One request delivery made to a recipient's push service."""

    attempt_time: datetime | None
    # The push service's HTTP status; 0 when it did not answer.
    http_status: int
    # A DeliveryReason word for what the answer meant; "" for an accepted one.
    reason: str
    # The push service's host ("fcm.googleapis.com").
    push_service: str


class DeliveryPort(Protocol):
    async def start_run(
        self,
        run: RunRecord,
        default_timezone: str = "",
        policy: RunPolicy | None = None,
        utm: campaign_pb2.UtmParameters | None = None,
    ) -> DeliveryRunView:
        """Hands the run to delivery (idempotent per run); `default_timezone` is the
        site's, for recipients without one when the run delivers at a local time;
        `policy` the site's and the campaign's delivery policies merged (None: none);
        `utm` the campaign's UTM parameters, for the run's description in reporting.
        Raises PeerCallFailed."""

    async def get_runs(self, site_id: str, run_ids: Sequence[str]) -> dict[str, DeliveryRunView]:
        """Delivery's view of these runs (unknown ones left out). Raises PeerCallFailed."""

    async def cancel_run(self, site_id: str, run_id: str) -> DeliveryRunView:
        """Cancels the run in delivery (idempotent). Raises PeerCallFailed."""

    async def recipient_outcome(
        self, site_id: str, run_id: str, subscriber_id: str
    ) -> RecipientOutcomeView | None:
        """One recipient of the run; None when delivery did not queue it (not in the
        run's audience, or the audience not resolved that far). Raises PeerCallFailed."""

    async def preview_plan(
        self,
        run: RunRecord,
        default_timezone: str = "",
        policy: RunPolicy | None = None,
        *,
        variants: Sequence[tuple[str, int]] = (),
        sample: tuple[int, int] | None = None,
        start_after_seconds: int = 0,
    ) -> DeliveryPlanView:
        """What delivery would do with the run were it handed over now (as start_run
        hands it), with only `variants` (id, weight percent) and the `sample` of its
        audience, starting `start_after_seconds` from now. Stores nothing. Raises
        PeerCallFailed (permanent when delivery or segment refused the request)."""


@dataclass(frozen=True)
class PlanRowView:
    """One hour, browser and variant of a delivery plan."""

    hour_start: datetime
    # clarion.common.v1.Browser.
    browser: int
    variant_id: str
    sent: int
    # clarion.common.v1.DeliveryReason -> recipients suppressed (or expired) in the hour.
    suppressed: dict[int, int]


@dataclass(frozen=True)
class DeliveryPlanView:
    snapshot_time: datetime
    audience: int
    # In time order, then browser, then variant.
    rows: tuple[PlanRowView, ...]


@dataclass(frozen=True)
class VariantTally:
    """One variant's counts in a run, as reporting has them."""

    variant_id: str
    sent: int
    clicked: int
    conversions: int


@dataclass(frozen=True)
class ActivityView:
    """What one recipient of a run did with its push, as reporting recorded it."""

    viewed_time: datetime | None = None
    clicked_time: datetime | None = None
    # The first click's button: "" for the body, else the action's id.
    clicked_button: str = ""
    closed_time: datetime | None = None
    conversions: int = 0
    revenue: float = 0.0
    converted_time: datetime | None = None


class ReportingPort(Protocol):
    async def run_variant_tallies(self, site_id: str, run_id: str) -> list[VariantTally]:
        """The run's counts per variant (empty when reporting has nothing of the run).
        Raises PeerCallFailed when reporting cannot answer."""

    async def recipient_activity(
        self, site_id: str, run_id: str, subscriber_id: str
    ) -> ActivityView | None:
        """What the recipient did with the run's push; None when reporting recorded
        nothing of it. Raises PeerCallFailed when reporting cannot answer."""


@dataclass(frozen=True)
class FeedEventView:
    """An event of segment's event feed, as a live campaign reads it."""

    event_id: str
    name: str
    # The profile it belongs to when read (""), and the browser it came from ("").
    profile_id: str
    subscriber_id: str
    occur_time: datetime
    # By name: str, float, bool, datetime or a tuple of str (triggers.EventValue).
    properties: dict[str, Any]


@dataclass(frozen=True)
class FeedPageView:
    events: list[FeedEventView]
    # Where to read on from (never behind the cursor the page was read from).
    next_cursor: str


@dataclass(frozen=True)
class SubscriberView:
    """One subscriber as segment holds it now, as `why` reads it."""

    subscriber_id: str
    active: bool
    # Whether it has what a push needs (an endpoint and its keys).
    reachable: bool
    # Why it was unsubscribed ("push_service_410", or the reason given); "" when active.
    unsubscribe_reason: str
    create_time: datetime | None
    # Its last change: for an unsubscribed subscriber, when it was unsubscribed.
    update_time: datetime | None


@dataclass(frozen=True)
class PersonMatch:
    """Whether a person matches an audience, and its subscribers the audience reaches."""

    matches: bool
    reachable_subscriber_ids: tuple[str, ...]


class SegmentPort(Protocol):
    async def validate_audience(
        self, site_id: str, audience: segment_pb2.AudienceSelector
    ) -> Sequence[int]:
        """The browsers (clarion.common.v1.Browser) the audience may include when
        segment accepts it (empty: segment did not narrow them, so any); raises
        AudienceRefused when it refuses it, PeerCallFailed when it could not say."""

    async def event_feed(
        self,
        site_id: str,
        cursor: str,
        event_names: Sequence[str],
        page_size: int,
        *,
        start_at_end: bool = False,
    ) -> FeedPageView:
        """The site's events with these names after `cursor` (empty with start_at_end:
        none yet, and the cursor of the feed's end). Raises PeerCallFailed."""

    async def match_person(
        self,
        site_id: str,
        audience: segment_pb2.AudienceSelector,
        *,
        profile_id: str = "",
        subscriber_id: str = "",
    ) -> PersonMatch:
        """Whether the person (a profile, else an anonymous subscriber) matches the
        audience now. Raises PeerCallFailed (also when segment refuses the audience, as
        a saved segment deleted since: permanent)."""

    async def unseen_event_names(self, site_id: str, event_names: Sequence[str]) -> list[str]:
        """The names the site never had an event of. Raises PeerCallFailed."""

    async def subscriber(self, site_id: str, subscriber_id: str) -> SubscriberView | None:
        """The subscriber as segment holds it now; None when the site has no such
        subscriber. Raises PeerCallFailed."""

    async def profile_subscriber_ids(self, site_id: str, profile_id: str) -> list[str] | None:
        """The profile's subscribers; None when the site has no such profile. Raises
        PeerCallFailed."""

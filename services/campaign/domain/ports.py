"""What a run needs from the other services, as the domain sees it.

The gRPC implementations live in services.campaign.peer_clients; unit tests use
in-memory fakes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.campaign.store import CampaignRecord


@dataclass(frozen=True)
class Recipient:
    """One reachable subscriber, handed from segment to delivery unchanged."""

    subscriber_id: str
    endpoint: str
    p256dh: bytes
    auth: bytes
    # A clarion.common.v1.Browser number, passed through.
    browser: int

    def __repr__(self) -> str:  # the auth secret stays out of logs
        return f"Recipient(subscriber_id={self.subscriber_id!r})"


class PeerCallFailed(Exception):
    """A call to another service failed; `step` names it, e.g. 'delivery.StartDeliveryRun'."""

    def __init__(self, step: str, detail: str, *, may_have_started: bool = False) -> None:
        super().__init__(f"{step} failed: {detail}")
        self.step = step
        self.detail = detail
        # True when delivery may be sending the run anyway (its start could not be checked).
        self.may_have_started = may_have_started


class AudienceSource(Protocol):
    def reachable_pages(
        self, site_id: str, page_size: int
    ) -> AsyncGenerator[Sequence[Recipient], None]:
        """The site's reachable subscribers, a page at a time. Raises PeerCallFailed."""


class DeliveryQueue(Protocol):
    async def open_run(self, site_id: str, run_id: str, campaign: CampaignRecord) -> None:
        """Opens the run in delivery (nothing is sent yet). Raises PeerCallFailed."""

    async def enqueue(self, site_id: str, run_id: str, recipients: Sequence[Recipient]) -> None:
        """Durably queues recipients of the run. Raises PeerCallFailed."""

    async def start(self, site_id: str, run_id: str) -> None:
        """Lets delivery send the run. Raises PeerCallFailed."""

    async def started(self, site_id: str, run_id: str) -> bool:
        """Whether delivery has started the run (a start whose reply was lost may have
        landed). Raises PeerCallFailed."""


class RunAudienceRecorder(Protocol):
    async def record_audience(
        self, site_id: str, run_id: str, campaign_id: str, audience: int
    ) -> None:
        """Tells reporting how many recipients the run targets. Raises PeerCallFailed."""

"""What delivery needs from its peers, as small ports; grpc_peers.py implements them over
gRPC, unit tests with in-memory fakes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from services.delivery.store import ReportableOutcome


@dataclass(frozen=True)
class SiteCredentials:
    site_id: str
    vapid_private_key: bytes = field(repr=False)
    vapid_public_key: bytes
    vapid_subject: str


class CredentialsUnavailable(Exception):
    """The site's VAPID credentials could not be had. `permanent` when the site has none
    (its recipients fail); otherwise the chunk is tried again later."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class SiteCredentialsSource(Protocol):
    async def site_credentials(self, site_id: str) -> SiteCredentials: ...


class SubscriberPruner(Protocol):
    async def unsubscribe(self, site_id: str, subscriber_id: str, reason: str) -> None: ...


class OutcomeSink(Protocol):
    async def record_outcomes(self, site_id: str, outcomes: Sequence[ReportableOutcome]) -> None:
        """Raises when the outcomes were not recorded; repeats are ignored by the sink."""
        ...

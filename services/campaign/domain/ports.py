"""What campaign needs from delivery, as the domain sees it.

The gRPC implementation lives in services.campaign.peer_clients; unit tests use
in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.campaign.store import RunProgress, RunRecord, RunState


class PeerCallFailed(Exception):
    """A call to another service failed; `step` names it, e.g. 'delivery.StartDeliveryRun'.
    `permanent` when the peer refused the request itself (asking again cannot help)."""

    def __init__(self, step: str, detail: str, *, permanent: bool = False) -> None:
        super().__init__(f"{step} failed: {detail}")
        self.step = step
        self.detail = detail
        self.permanent = permanent


@dataclass(frozen=True)
class DeliveryRunView:
    """A run as delivery sees it."""

    run_id: str
    state: RunState
    progress: RunProgress
    failure_reason: str
    finish_time: datetime | None


class DeliveryPort(Protocol):
    async def start_run(self, run: RunRecord) -> DeliveryRunView:
        """Hands the run to delivery (idempotent per run). Raises PeerCallFailed."""

    async def get_runs(self, site_id: str, run_ids: Sequence[str]) -> dict[str, DeliveryRunView]:
        """Delivery's view of these runs (unknown ones left out). Raises PeerCallFailed."""

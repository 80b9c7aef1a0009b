"""Persistence for delivery: the only module that speaks SQL.

Claiming is the heart of it. PostgreSQL picks a chunk with `FOR UPDATE SKIP LOCKED`, so
concurrent workers pass over each other's rows; SQLite has one writer, so a worker
proposes a candidate and an atomic conditional UPDATE (lease free or expired) decides
who won. Either way a chunk has one lease holder until the lease expires.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from services.delivery.models import (
    ChunkState,
    DeliveryChunkRow,
    DeliveryRecipientRow,
    DeliveryRunRow,
    RecipientState,
    RunState,
)
from services.kit.db import session_factory

TERMINAL_STATES = (
    RecipientState.SENT,
    RecipientState.FAILED,
    RecipientState.SUPPRESSED,
    RecipientState.EXPIRED,
)


@dataclass(frozen=True)
class NewRun:
    site_id: str
    run_id: str
    campaign_id: str
    title: str
    body: str
    icon_url: str
    image_url: str
    target_url: str
    ttl_seconds: int
    urgency: str


@dataclass(frozen=True)
class Run:
    site_id: str
    run_id: str
    campaign_id: str
    title: str
    body: str
    icon_url: str
    image_url: str
    target_url: str
    ttl_seconds: int
    urgency: str
    state: RunState
    create_time: datetime
    start_time: datetime | None
    finish_time: datetime | None


@dataclass(frozen=True)
class RunCounts:
    total: int = 0
    pending: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    expired: int = 0


@dataclass(frozen=True)
class NewRecipient:
    subscriber_id: str
    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: int


@dataclass(frozen=True)
class EnqueueResult:
    # The run's state before the call; None when the site has no such run.
    run_state: RunState | None
    queued: int


@dataclass(frozen=True)
class ClaimedChunk:
    chunk_id: str
    site_id: str
    run_id: str
    lease_owner: str


@dataclass(frozen=True)
class PendingRecipient:
    recipient_id: int
    subscriber_id: str
    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: int
    attempts: int


@dataclass(frozen=True)
class PendingUnsubscribe:
    """A subscriber a push service called gone, not yet unsubscribed in segment."""

    recipient_id: int
    site_id: str
    subscriber_id: str
    reason: str


@dataclass(frozen=True)
class Terminal:
    """A recipient's final state; `attempted` counts the send that led to it."""

    recipient_id: int
    state: RecipientState
    reason: str
    attempted: bool = True
    # The push service said the subscription is gone: unsubscribe it in segment.
    unsubscribe: bool = False


@dataclass(frozen=True)
class Retry:
    recipient_id: int
    reason: str
    not_before: datetime


@dataclass(frozen=True)
class ReportableOutcome:
    recipient_id: int
    site_id: str
    run_id: str
    campaign_id: str
    subscriber_id: str
    state: RecipientState
    reason: str
    browser: int
    finish_time: datetime


@dataclass(frozen=True)
class RecipientView:
    subscriber_id: str
    state: RecipientState
    reason: str
    attempts: int
    not_before: datetime | None
    finish_time: datetime | None


def _run(row: DeliveryRunRow) -> Run:
    return Run(
        site_id=row.site_id,
        run_id=row.run_id,
        campaign_id=row.campaign_id,
        title=row.title,
        body=row.body,
        icon_url=row.icon_url,
        image_url=row.image_url,
        target_url=row.target_url,
        ttl_seconds=row.ttl_seconds,
        urgency=row.urgency,
        state=RunState(row.state),
        create_time=row.create_time,
        start_time=row.start_time,
        finish_time=row.finish_time,
    )


def _lease_free(now: datetime) -> Any:
    return or_(DeliveryChunkRow.lease_expires_at.is_(None), DeliveryChunkRow.lease_expires_at < now)


def _due(now: datetime) -> Any:
    return or_(DeliveryChunkRow.not_before.is_(None), DeliveryChunkRow.not_before <= now)


class DeliveryStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = session_factory(engine)
        self._postgres = engine.dialect.name == "postgresql"

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self._postgres else sqlite.insert)(table)

    # Runs.

    async def create_run(self, run: NewRun, now: datetime) -> tuple[Run, bool]:
        """Inserts the run unless (site, run_id) exists; returns the stored run and
        whether this call created it."""
        statement = (
            self._insert(DeliveryRunRow)
            .values(
                **run.__dict__,
                state=RunState.QUEUEING,
                create_time=now,
            )
            .on_conflict_do_nothing(index_elements=["site_id", "run_id"])
        )
        async with self._sessions.begin() as session:
            created = (await session.execute(statement)).rowcount == 1
            row = await session.get_one(DeliveryRunRow, (run.site_id, run.run_id))
            return _run(row), created

    async def get_run(self, site_id: str, run_id: str) -> Run | None:
        async with self._sessions() as session:
            row = await session.get(DeliveryRunRow, (site_id, run_id))
            return _run(row) if row else None

    async def run_counts(self, site_id: str, run_id: str) -> RunCounts:
        statement = (
            select(DeliveryRecipientRow.state, func.count())
            .where(DeliveryRecipientRow.site_id == site_id, DeliveryRecipientRow.run_id == run_id)
            .group_by(DeliveryRecipientRow.state)
        )
        async with self._sessions() as session:
            by_state = {state: count for state, count in (await session.execute(statement)).all()}
        return RunCounts(
            total=sum(by_state.values()),
            **{state.value: by_state.get(state.value, 0) for state in RecipientState},
        )

    async def enqueue(
        self,
        site_id: str,
        run_id: str,
        recipients: Sequence[NewRecipient],
        chunk_size: int,
        now: datetime,
    ) -> EnqueueResult:
        """Queues the recipients not yet queued for the run, in chunks, in one transaction,
        and only while the run is QUEUEING."""
        async with self._sessions.begin() as session:
            # Writing first takes the run's row lock (PostgreSQL) or the write lock
            # (SQLite), so StartDeliveryRun cannot slip in between check and insert.
            locked = await session.execute(
                update(DeliveryRunRow)
                .where(
                    DeliveryRunRow.site_id == site_id,
                    DeliveryRunRow.run_id == run_id,
                    DeliveryRunRow.state == RunState.QUEUEING,
                )
                .values(state=RunState.QUEUEING)
            )
            if locked.rowcount != 1:
                row = await session.get(DeliveryRunRow, (site_id, run_id))
                return EnqueueResult(RunState(row.state) if row else None, 0)
            wanted = {r.subscriber_id: r for r in recipients}  # first wins within a call
            existing = set(
                (
                    await session.scalars(
                        select(DeliveryRecipientRow.subscriber_id).where(
                            DeliveryRecipientRow.site_id == site_id,
                            DeliveryRecipientRow.run_id == run_id,
                            DeliveryRecipientRow.subscriber_id.in_(list(wanted)),
                        )
                    )
                ).all()
            )
            fresh = [r for sid, r in wanted.items() if sid not in existing]
            for start in range(0, len(fresh), chunk_size):
                chunk_id = uuid.uuid4().hex
                await session.execute(
                    self._insert(DeliveryChunkRow).values(
                        chunk_id=chunk_id,
                        site_id=site_id,
                        run_id=run_id,
                        state=ChunkState.PENDING,
                        create_time=now,
                    )
                )
                await session.execute(
                    self._insert(DeliveryRecipientRow).on_conflict_do_nothing(
                        index_elements=["site_id", "run_id", "subscriber_id"]
                    ),
                    [
                        {
                            "site_id": site_id,
                            "run_id": run_id,
                            "chunk_id": chunk_id,
                            "subscriber_id": r.subscriber_id,
                            "endpoint": r.endpoint,
                            "p256dh": r.p256dh,
                            "auth": r.auth,
                            "browser": r.browser,
                            "state": RecipientState.PENDING,
                            "reason": "",
                            "attempts": 0,
                            "reported": False,
                        }
                        for r in fresh[start : start + chunk_size]
                    ],
                )
            return EnqueueResult(RunState.QUEUEING, len(fresh))

    async def start_run(self, site_id: str, run_id: str, now: datetime) -> Run | None:
        """QUEUEING -> SENDING (a no-op for a started run); a run with nothing pending
        is DONE at once."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(DeliveryRunRow)
                .where(
                    DeliveryRunRow.site_id == site_id,
                    DeliveryRunRow.run_id == run_id,
                    DeliveryRunRow.state == RunState.QUEUEING,
                )
                .values(state=RunState.SENDING, start_time=now)
            )
        await self.finish_run_if_complete(site_id, run_id, now)
        return await self.get_run(site_id, run_id)

    async def finish_run_if_complete(self, site_id: str, run_id: str, now: datetime) -> bool:
        pending = (
            select(DeliveryRecipientRow.recipient_id)
            .where(
                DeliveryRecipientRow.site_id == site_id,
                DeliveryRecipientRow.run_id == run_id,
                DeliveryRecipientRow.state == RecipientState.PENDING,
            )
            .exists()
        )
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(DeliveryRunRow)
                .where(
                    DeliveryRunRow.site_id == site_id,
                    DeliveryRunRow.run_id == run_id,
                    DeliveryRunRow.state == RunState.SENDING,
                    ~pending,
                )
                .values(state=RunState.DONE, finish_time=now)
            )
            return result.rowcount == 1

    # Chunks and leases.

    async def claim_chunk(
        self, owner: str, now: datetime, lease_seconds: float
    ) -> ClaimedChunk | None:
        """Leases one due chunk of a SENDING run to `owner`, or returns None."""
        expires = now + timedelta(seconds=lease_seconds)
        candidates = (
            select(DeliveryChunkRow.chunk_id, DeliveryChunkRow.site_id, DeliveryChunkRow.run_id)
            .join(
                DeliveryRunRow,
                and_(
                    DeliveryRunRow.site_id == DeliveryChunkRow.site_id,
                    DeliveryRunRow.run_id == DeliveryChunkRow.run_id,
                ),
            )
            .where(
                DeliveryChunkRow.state == ChunkState.PENDING,
                DeliveryRunRow.state == RunState.SENDING,
                _due(now),
                _lease_free(now),
            )
            .order_by(DeliveryChunkRow.not_before.is_not(None), DeliveryChunkRow.create_time)
        )
        if self._postgres:
            async with self._sessions.begin() as session:
                row = (
                    await session.execute(
                        candidates.limit(1).with_for_update(skip_locked=True, of=DeliveryChunkRow)
                    )
                ).first()
                if row is None:
                    return None
                await session.execute(
                    update(DeliveryChunkRow)
                    .where(DeliveryChunkRow.chunk_id == row.chunk_id)
                    .values(lease_owner=owner, lease_expires_at=expires)
                )
                return ClaimedChunk(row.chunk_id, row.site_id, row.run_id, owner)
        async with self._sessions() as session:
            rows = (await session.execute(candidates.limit(8))).all()
        for row in rows:
            async with self._sessions.begin() as session:
                won = await session.execute(
                    update(DeliveryChunkRow)
                    .where(
                        DeliveryChunkRow.chunk_id == row.chunk_id,
                        DeliveryChunkRow.state == ChunkState.PENDING,
                        _lease_free(now),
                    )
                    .values(lease_owner=owner, lease_expires_at=expires)
                )
            if won.rowcount == 1:
                return ClaimedChunk(row.chunk_id, row.site_id, row.run_id, owner)
        return None

    async def renew_lease(self, chunk: ClaimedChunk, now: datetime, lease_seconds: float) -> bool:
        """Extends a held lease; False means it was lost (expired and taken over)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(DeliveryChunkRow)
                .where(
                    DeliveryChunkRow.chunk_id == chunk.chunk_id,
                    DeliveryChunkRow.lease_owner == chunk.lease_owner,
                    DeliveryChunkRow.state == ChunkState.PENDING,
                )
                .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
            return result.rowcount == 1

    async def release_chunk(self, chunk: ClaimedChunk, not_before: datetime | None) -> None:
        """Gives the chunk back untouched, claimable again from `not_before`."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(DeliveryChunkRow)
                .where(
                    DeliveryChunkRow.chunk_id == chunk.chunk_id,
                    DeliveryChunkRow.lease_owner == chunk.lease_owner,
                )
                .values(lease_owner=None, lease_expires_at=None, not_before=not_before)
            )

    async def due_recipients(self, chunk: ClaimedChunk, now: datetime) -> list[PendingRecipient]:
        statement = (
            select(DeliveryRecipientRow)
            .where(
                DeliveryRecipientRow.chunk_id == chunk.chunk_id,
                DeliveryRecipientRow.site_id == chunk.site_id,
                DeliveryRecipientRow.state == RecipientState.PENDING,
                or_(
                    DeliveryRecipientRow.not_before.is_(None),
                    DeliveryRecipientRow.not_before <= now,
                ),
            )
            .order_by(DeliveryRecipientRow.recipient_id)
        )
        async with self._sessions() as session:
            return [
                PendingRecipient(
                    recipient_id=row.recipient_id,
                    subscriber_id=row.subscriber_id,
                    endpoint=row.endpoint,
                    p256dh=row.p256dh,
                    auth=row.auth,
                    browser=row.browser,
                    attempts=row.attempts,
                )
                for row in await session.scalars(statement)
            ]

    async def record_results(
        self,
        chunk: ClaimedChunk,
        terminal: Sequence[Terminal],
        retries: Sequence[Retry],
        now: datetime,
    ) -> list[ReportableOutcome]:
        """Stores a round's results and releases the chunk (done, or claimable again at
        its earliest retry time). An outcome already recorded is never overwritten.
        Returns the outcomes this call made terminal."""
        scope = (
            DeliveryRecipientRow.site_id == chunk.site_id,
            DeliveryRecipientRow.chunk_id == chunk.chunk_id,
            DeliveryRecipientRow.state == RecipientState.PENDING,
        )
        groups: dict[tuple[RecipientState, str, bool, bool], list[int]] = defaultdict(list)
        for result in terminal:
            key = (result.state, result.reason, result.attempted, result.unsubscribe)
            groups[key].append(result.recipient_id)
        finished: list[int] = []
        async with self._sessions.begin() as session:
            for (state, reason, attempted, unsubscribe), ids in groups.items():
                finished += (
                    await session.scalars(
                        update(DeliveryRecipientRow)
                        .where(DeliveryRecipientRow.recipient_id.in_(ids), *scope)
                        .values(
                            state=state,
                            reason=reason,
                            finish_time=now,
                            not_before=None,
                            attempts=DeliveryRecipientRow.attempts + (1 if attempted else 0),
                            unsubscribe_pending=unsubscribe,
                        )
                        .returning(DeliveryRecipientRow.recipient_id)
                        .execution_options(synchronize_session=False)
                    )
                ).all()
            for retry in retries:
                await session.execute(
                    update(DeliveryRecipientRow)
                    .where(DeliveryRecipientRow.recipient_id == retry.recipient_id, *scope)
                    .values(
                        reason=retry.reason,
                        not_before=retry.not_before,
                        attempts=DeliveryRecipientRow.attempts + 1,
                    )
                )
            still_pending, next_due = (
                await session.execute(
                    select(func.count(), func.min(DeliveryRecipientRow.not_before)).where(*scope)
                )
            ).one()
            await session.execute(
                update(DeliveryChunkRow)
                .where(DeliveryChunkRow.chunk_id == chunk.chunk_id)
                .values(
                    state=ChunkState.PENDING if still_pending else ChunkState.DONE,
                    not_before=next_due if still_pending else None,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            run = await session.get_one(DeliveryRunRow, (chunk.site_id, chunk.run_id))
            campaign_id = run.campaign_id
            rows = (
                (
                    await session.scalars(
                        select(DeliveryRecipientRow).where(
                            DeliveryRecipientRow.recipient_id.in_(finished)
                        )
                    )
                ).all()
                if finished
                else []
            )
            outcomes = [_outcome(row, campaign_id) for row in rows]
        await self.finish_run_if_complete(chunk.site_id, chunk.run_id, now)
        return outcomes

    # Reporting.

    async def unreported_outcomes(self, limit: int) -> list[ReportableOutcome]:
        statement = (
            select(DeliveryRecipientRow, DeliveryRunRow.campaign_id)
            .join(
                DeliveryRunRow,
                and_(
                    DeliveryRunRow.site_id == DeliveryRecipientRow.site_id,
                    DeliveryRunRow.run_id == DeliveryRecipientRow.run_id,
                ),
            )
            .where(
                DeliveryRecipientRow.reported.is_(False),
                DeliveryRecipientRow.state.in_(TERMINAL_STATES),
            )
            .order_by(DeliveryRecipientRow.recipient_id)
            .limit(limit)
        )
        async with self._sessions() as session:
            return [
                _outcome(row, campaign_id)
                for row, campaign_id in (await session.execute(statement)).all()
            ]

    async def mark_reported(self, recipient_ids: Sequence[int]) -> None:
        await self._set_recipient_flags(recipient_ids, reported=True)

    async def _set_recipient_flags(self, recipient_ids: Sequence[int], **flags: bool) -> None:
        if not recipient_ids:
            return
        async with self._sessions.begin() as session:
            await session.execute(
                update(DeliveryRecipientRow)
                .where(DeliveryRecipientRow.recipient_id.in_(list(recipient_ids)))
                .values(**flags)
            )

    # Pruning gone subscribers.

    async def pending_unsubscribes(self, limit: int) -> list[PendingUnsubscribe]:
        statement = (
            select(
                DeliveryRecipientRow.recipient_id,
                DeliveryRecipientRow.site_id,
                DeliveryRecipientRow.subscriber_id,
                DeliveryRecipientRow.reason,
            )
            .where(DeliveryRecipientRow.unsubscribe_pending.is_(True))
            .order_by(DeliveryRecipientRow.recipient_id)
            .limit(limit)
        )
        async with self._sessions() as session:
            return [PendingUnsubscribe(*row) for row in (await session.execute(statement)).all()]

    async def mark_unsubscribed(self, recipient_ids: Sequence[int]) -> None:
        await self._set_recipient_flags(recipient_ids, unsubscribe_pending=False)

    async def recipient(
        self, site_id: str, run_id: str, subscriber_id: str
    ) -> RecipientView | None:
        statement = select(DeliveryRecipientRow).where(
            DeliveryRecipientRow.site_id == site_id,
            DeliveryRecipientRow.run_id == run_id,
            DeliveryRecipientRow.subscriber_id == subscriber_id,
        )
        async with self._sessions() as session:
            row = (await session.scalars(statement)).first()
            if row is None:
                return None
            return RecipientView(
                subscriber_id=row.subscriber_id,
                state=RecipientState(row.state),
                reason=row.reason,
                attempts=row.attempts,
                not_before=row.not_before,
                finish_time=row.finish_time,
            )


def _outcome(row: DeliveryRecipientRow, campaign_id: str) -> ReportableOutcome:
    assert row.finish_time is not None
    return ReportableOutcome(
        recipient_id=row.recipient_id,
        site_id=row.site_id,
        run_id=row.run_id,
        campaign_id=campaign_id,
        subscriber_id=row.subscriber_id,
        state=RecipientState(row.state),
        reason=row.reason,
        browser=row.browser,
        finish_time=row.finish_time,
    )

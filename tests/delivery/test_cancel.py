"""Cancelling a run in the store: one transaction that stops its preparation, fences its
senders out and ends every pending recipient suppressed (cancelled), exactly once, on a
private database per backend (no workers but the test's)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.delivery.models import (
    DeliveryChunkRow,
    DeliveryOutboxRow,
    DeliveryRecipientRow,
    OutboxKind,
    RecipientState,
    RunState,
)
from services.delivery.store import DeliveryStore, NewRun, Terminal
from services.kit.clock import FrozenClock
from tests.delivery.conftest import LEASE, members, outbox_outcomes, shared_payload

pytestmark = pytest.mark.usefixtures("store")

CANCELLED = ("suppressed", "cancelled")


async def new_run(store: DeliveryStore, clock: FrozenClock) -> tuple[str, str]:
    site_id, run_id = f"site_{uuid.uuid4().hex}", f"run_{uuid.uuid4().hex}"
    _, created = await store.create_run(
        NewRun(site_id, run_id, "cmp_1", shared_payload(), 3600, "normal", ()), clock.now()
    )
    assert created
    return site_id, run_id


async def prepared(store: DeliveryStore, clock: FrozenClock, size: int, chunk_size: int = 10):  # type: ignore[no-untyped-def]
    site_id, run_id = await new_run(store, clock)
    lease = await store.claim_preparation("prep", clock.now(), LEASE)
    assert lease is not None and lease.run_id == run_id
    assert await store.queue_page(
        lease, members(size), "", chunk_size=chunk_size, now=clock.now(), lease_seconds=LEASE
    )
    return site_id, run_id


async def recipient_states(engine: AsyncEngine, run_id: str) -> Counter[tuple[str, str]]:
    table = DeliveryRecipientRow.__table__
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(table.c.state, table.c.reason).where(table.c.run_id == run_id)
        )
        return Counter((state, reason) for state, reason in rows)


async def chunk_totals(engine: AsyncEngine, run_id: str) -> dict[str, int]:
    """The run's progress as GetDeliveryRun sums it: the chunks' counters."""
    table = DeliveryChunkRow.__table__
    names = ("pending", "sent", "failed", "suppressed", "expired")
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(*(table.c[n] for n in names)).where(table.c.run_id == run_id))
        ).all()
    return {name: sum(row[i] for row in rows) for i, name in enumerate(names)}


async def audience_rows(engine: AsyncEngine, run_id: str) -> list[int]:
    table = DeliveryOutboxRow.__table__
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(table.c.count).where(
                table.c.run_id == run_id, table.c.kind == OutboxKind.AUDIENCE.value
            )
        )
        return [count for (count,) in rows]


async def cancelled_in_outbox(engine: AsyncEngine, run_id: str) -> Counter[str]:
    table = DeliveryOutboxRow.__table__
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(table.c.entries).where(
                table.c.run_id == run_id, table.c.kind == OutboxKind.OUTCOME.value
            )
        )
        return Counter(
            sid
            for (entries,) in rows
            for sid, state, reason, *_ in json.loads(entries)
            if (state, reason) == CANCELLED
        )


def sent(recipient) -> Terminal:  # type: ignore[no-untyped-def]
    return Terminal(
        recipient.recipient_id, recipient.subscriber_id, recipient.browser, RecipientState.SENT, ""
    )


class TestCancelWhilePreparing:
    async def test_a_page_queued_after_the_cancel_is_refused(
        self, store: DeliveryStore, engine: AsyncEngine
    ) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(store, clock)
        lease = await store.claim_preparation("prep", clock.now(), LEASE)
        assert lease is not None
        first = members(25)
        assert await store.queue_page(
            lease, first, "25", chunk_size=10, now=clock.now(), lease_seconds=LEASE
        )

        cancelled = await store.cancel_run(site_id, run_id, clock.now())
        # The preparer had the next page in hand: its queueing transaction is refused.
        queued_late = await store.queue_page(
            lease, members(25), "50", chunk_size=10, now=clock.now(), lease_seconds=LEASE
        )

        assert cancelled is not None
        run, ended = cancelled
        assert (run.state, run.finish_time, run.resolved) == (RunState.CANCELLED, clock.now(), 25)
        assert ended == 25
        assert queued_late is False
        assert await recipient_states(engine, run_id) == Counter({CANCELLED: 25})
        assert await chunk_totals(engine, run_id) == {
            "pending": 0, "sent": 0, "failed": 0, "suppressed": 25, "expired": 0,
        }  # fmt: skip
        # Reporting hears the audience resolved so far, and each recipient once.
        assert await audience_rows(engine, run_id) == [25]
        assert await cancelled_in_outbox(engine, run_id) == Counter(
            {m.subscriber_id: 1 for m in first}
        )
        # Nothing of the run is claimable any more: no preparation, no chunk.
        assert await store.claim_preparation("other", clock.now(), LEASE) is None
        assert await store.claim_chunk("w", clock.now(), LEASE) is None


class TestCancelWhileSending:
    async def test_a_sender_holding_a_chunk_is_fenced_out_and_outcomes_are_kept(
        self, store: DeliveryStore, engine: AsyncEngine
    ) -> None:
        clock = FrozenClock()
        site_id, run_id = await prepared(store, clock, 30)
        chunk = await store.claim_chunk("w", clock.now(), LEASE)
        assert chunk is not None
        recipients = await store.due_recipients(chunk, clock.now())
        assert await store.record_progress(
            chunk,
            "cmp_1",
            terminal=[sent(r) for r in recipients[:4]],
            attempting=[r.recipient_id for r in recipients[4:]],
            now=clock.now(),
            lease_seconds=LEASE,
        )

        cancelled = await store.cancel_run(site_id, run_id, clock.now())
        # The sender's answers arrive after the cancel: its commit is refused.
        late = await store.record_progress(
            chunk,
            "cmp_1",
            terminal=[sent(r) for r in recipients[4:]],
            now=clock.now(),
            lease_seconds=LEASE,
        )
        released = await store.release_chunk(chunk, clock.now())

        assert cancelled is not None and cancelled[1] == 26
        assert (late, released) == (False, False)
        assert await recipient_states(engine, run_id) == Counter(
            {("sent", ""): 4, CANCELLED: 26}
        )
        assert await chunk_totals(engine, run_id) == {
            "pending": 0, "sent": 4, "failed": 0, "suppressed": 26, "expired": 0,
        }  # fmt: skip
        # Every recipient is reported exactly once, whichever way it ended.
        assert set((await outbox_outcomes(engine, run_id)).values()) == {1}
        assert sum((await outbox_outcomes(engine, run_id)).values()) == 30
        # The audience was reported when preparation ended, not again by the cancel.
        assert await audience_rows(engine, run_id) == [30]
        assert await store.claim_chunk("w2", clock.now(), LEASE) is None

    @pytest.mark.parametrize("senders", [1, 3])
    async def test_a_cancel_racing_commits_counts_every_recipient_once(
        self, store: DeliveryStore, engine: AsyncEngine, senders: int
    ) -> None:
        """Senders commit one answer at a time (and release their chunks) while the
        cancel lands: nothing deadlocks with it, no commit is half applied, and the
        counters match the rows."""
        clock = FrozenClock()
        site_id, run_id = await prepared(store, clock, 60, chunk_size=20)
        chunks = [await store.claim_chunk(f"w{n}", clock.now(), LEASE) for n in range(senders)]
        stopped: list[int] = []

        async def send(chunk) -> None:  # type: ignore[no-untyped-def]
            for recipient in await store.due_recipients(chunk, clock.now()):
                if not await store.record_progress(
                    chunk,
                    "cmp_1",
                    attempting=[recipient.recipient_id],
                    terminal=[sent(recipient)],
                    now=clock.now(),
                    lease_seconds=LEASE,
                ):
                    stopped.append(chunk.chunk_id)
                    return
            # Releasing the last chunk finishes the run: it takes the run's row too.
            await store.release_chunk(chunk, clock.now())

        async def cancel():  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.01)
            return await store.cancel_run(site_id, run_id, clock.now())

        *_, cancelled = await asyncio.gather(*(send(c) for c in chunks), cancel())

        assert cancelled is not None
        states = await recipient_states(engine, run_id)
        totals = await chunk_totals(engine, run_id)
        assert sum(states.values()) == 60 and set(states) <= {("sent", ""), CANCELLED}
        assert cancelled[1] == states[CANCELLED]
        assert (totals["pending"], totals["sent"], totals["suppressed"]) == (
            0,
            states[("sent", "")],
            states[CANCELLED],
        )
        assert set((await outbox_outcomes(engine, run_id)).values()) == {1}
        assert sum((await outbox_outcomes(engine, run_id)).values()) == 60


class TestCancelIsIdempotent:
    async def test_cancelling_again_changes_nothing(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await prepared(store, clock, 5)
        first = await store.cancel_run(site_id, run_id, clock.now())
        clock.advance(seconds=5)

        again = await store.cancel_run(site_id, run_id, clock.now())

        assert first is not None and again is not None
        assert again == (first[0], 0)

    async def test_a_finished_run_keeps_its_state(
        self, store: DeliveryStore, engine: AsyncEngine
    ) -> None:
        clock = FrozenClock()
        site_id, run_id = await prepared(store, clock, 3)
        chunk = await store.claim_chunk("w", clock.now(), LEASE)
        assert chunk is not None
        recipients = await store.due_recipients(chunk, clock.now())
        await store.record_progress(
            chunk, "cmp_1", terminal=[sent(r) for r in recipients], now=clock.now(),
            lease_seconds=LEASE,
        )  # fmt: skip
        await store.release_chunk(chunk, clock.now())
        done = await store.get_run(site_id, run_id)
        assert done is not None and done.state == RunState.DONE

        cancelled = await store.cancel_run(site_id, run_id, clock.now())

        assert cancelled == (done, 0)
        assert await recipient_states(engine, run_id) == Counter({("sent", ""): 3})

    async def test_another_sites_run_is_not_found(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        _, run_id = await prepared(store, clock, 2)

        assert await store.cancel_run(f"site_{uuid.uuid4().hex}", run_id, clock.now()) is None
        assert await store.cancel_run("site_x", "run_nope", clock.now()) is None

"""The durable queue in the store: runs, preparation leases, chunks, fenced commits and the
outbox, on a private database per backend and a FrozenClock (no workers but the test's)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.delivery.models import OutboxKind, RecipientState, RunFailure, RunState
from services.delivery.store import (
    DeliveryStore,
    Member,
    NewRun,
    PreparationLease,
    Retry,
    Terminal,
    attempt_entry,
)
from services.kit.clock import FrozenClock
from tests.delivery.conftest import LEASE, members, outbox_outcomes, recipient_rows, shared_payload

pytestmark = pytest.mark.usefixtures("store")


async def new_run(
    store: DeliveryStore,
    clock: FrozenClock,
    *,
    site_id: str | None = None,
    run_id: str | None = None,
) -> tuple[str, str]:
    site_id = site_id or f"site_{uuid.uuid4().hex}"
    run_id = run_id or f"run_{uuid.uuid4().hex}"
    _, created = await store.create_run(
        NewRun(site_id, run_id, "cmp_1", shared_payload(), 3600, "normal", ()), clock.now()
    )
    assert created
    return site_id, run_id


async def prepared(
    store: DeliveryStore, clock: FrozenClock, audience: list[Member], chunk_size: int = 10
) -> tuple[str, str]:
    """A run whose whole audience is queued in one page."""
    site_id, run_id = await new_run(store, clock)
    lease = await store.claim_preparation("prep", clock.now(), LEASE)
    assert lease is not None and lease.run_id == run_id
    assert await store.queue_page(
        lease, audience, "", chunk_size=chunk_size, now=clock.now(), lease_seconds=LEASE
    )
    return site_id, run_id


async def start_relayed(store: DeliveryStore, clock: FrozenClock) -> None:
    """Relays the runs' START rows (which go before anything else of their runs)."""
    starts = await store.claim_outbox((OutboxKind.START,), "starts", clock.now(), LEASE, 100)
    await store.settle_outbox("starts", [i.outbox_id for i in starts])


def terminal(recipient, state: RecipientState, reason: str = "") -> Terminal:  # type: ignore[no-untyped-def]
    return Terminal(
        recipient.recipient_id, recipient.subscriber_id, recipient.browser, state, reason
    )


class TestCreateRun:
    async def test_a_second_create_returns_the_first_run(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(store, clock)
        clock.advance(seconds=5)

        again, created = await store.create_run(
            NewRun(site_id, run_id, "cmp_other", b'{"x":1}', 60, "high", ()), clock.now()
        )

        assert not created
        assert (again.campaign_id, again.ttl_seconds, again.state) == (
            "cmp_1",
            3600,
            RunState.PREPARING,
        )
        assert again.snapshot_time == again.create_time == clock.now() - timedelta(seconds=5)

    async def test_concurrent_creates_make_one_run(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = f"site_{uuid.uuid4().hex}", f"run_{uuid.uuid4().hex}"
        new = NewRun(site_id, run_id, "cmp_1", shared_payload(), 3600, "normal", ())

        answers = await asyncio.gather(*[store.create_run(new, clock.now()) for _ in range(6)])

        assert [created for _, created in answers].count(True) == 1
        assert {run.run_id for run, _ in answers} == {run_id}

    async def test_the_same_run_id_in_another_site_is_another_run(
        self, store: DeliveryStore
    ) -> None:
        clock = FrozenClock()
        _, run_id = await new_run(store, clock)
        await new_run(store, clock, run_id=run_id)


class TestPreparation:
    async def test_pages_are_queued_in_chunks_with_the_token(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(store, clock)
        lease = await store.claim_preparation("prep", clock.now(), LEASE)
        assert lease is not None and lease.page_token == ""

        assert await store.queue_page(
            lease, members(25), "page2", chunk_size=10, now=clock.now(), lease_seconds=LEASE
        )

        run = await store.get_run(site_id, run_id)
        assert run is not None
        assert (run.state, run.resolved, run.queued) == (RunState.PREPARING, 25, 25)
        assert (await store.run_counts(site_id, [run_id]))[run_id].pending == 25
        # Three chunks (10, 10, 5), claimable while the run is still preparing.
        claimed = []
        while (chunk := await store.claim_chunk("w", clock.now(), LEASE)) is not None:
            claimed.append(len(await store.due_recipients(chunk, clock.now())))
        assert sorted(claimed) == [5, 10, 10]

    async def test_the_last_page_ends_preparation(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await prepared(store, clock, members(3))
        run = await store.get_run(site_id, run_id)
        assert run is not None
        assert (run.state, run.resolved, run.prepare_time) == (RunState.SENDING, 3, clock.now())
        assert await store.claim_preparation("other", clock.now(), LEASE) is None

    async def test_an_empty_audience_is_done_at_once(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await prepared(store, clock, [])
        run = await store.get_run(site_id, run_id)
        assert run is not None and (run.state, run.finish_time) == (RunState.DONE, clock.now())

    async def test_members_unsubscribed_since_the_snapshot_are_suppressed(
        self, store: DeliveryStore, engine: AsyncEngine
    ) -> None:
        clock = FrozenClock()
        audience = members(3, unsubscribed=[1])
        site_id, run_id = await prepared(store, clock, audience)

        run = await store.get_run(site_id, run_id)
        assert run is not None and (run.resolved, run.queued) == (3, 2)
        view = await store.recipient(site_id, run_id, audience[1].subscriber_id)
        assert view is not None
        assert (view.state, view.reason, view.attempts) == (
            RecipientState.SUPPRESSED,
            "unsubscribed",
            0,
        )
        assert await outbox_outcomes(engine, run_id) == {audience[1].subscriber_id: 1}

    async def test_a_member_queued_again_is_ignored(
        self, store: DeliveryStore, engine: AsyncEngine
    ) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(store, clock)
        lease = await store.claim_preparation("prep", clock.now(), LEASE)
        assert lease is not None
        audience = members(3)
        assert await store.queue_page(
            lease, audience[:2], "2", chunk_size=10, now=clock.now(), lease_seconds=LEASE
        )

        # Segment's pages overlap (e.g. a subscriber re-registered between two pages).
        assert await store.queue_page(
            lease, audience[1:], "", chunk_size=10, now=clock.now(), lease_seconds=LEASE
        )

        assert await recipient_rows(engine, run_id) == {m.subscriber_id: 1 for m in audience}
        run = await store.get_run(site_id, run_id)
        assert run is not None and run.queued == 3

    async def test_a_live_lease_is_not_taken_an_expired_one_is(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        await new_run(store, clock)
        first = await store.claim_preparation("a", clock.now(), LEASE)
        assert first is not None

        clock.advance(seconds=LEASE - 1)
        assert await store.claim_preparation("b", clock.now(), LEASE) is None
        clock.advance(seconds=2)
        second = await store.claim_preparation("b", clock.now(), LEASE)

        assert second is not None and second.run_id == first.run_id
        assert second.fence > first.fence

    async def test_a_page_from_a_lost_lease_is_refused_and_nothing_is_written(
        self, store: DeliveryStore, engine: AsyncEngine
    ) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(store, clock)
        a = await store.claim_preparation("a", clock.now(), LEASE)
        assert a is not None
        assert await store.queue_page(
            a, members(5, prefix="p1"), "5", chunk_size=10, now=clock.now(), lease_seconds=LEASE
        )
        clock.advance(seconds=LEASE + 1)
        b = await store.claim_preparation("b", clock.now(), LEASE)
        assert b is not None and b.page_token == "5"

        # A comes back with the page it had fetched before it stalled.
        assert not await store.queue_page(
            a, members(5, prefix="p2"), "10", chunk_size=10, now=clock.now(), lease_seconds=LEASE
        )

        run = await store.get_run(site_id, run_id)
        assert run is not None and run.resolved == 5
        assert set(await recipient_rows(engine, run_id)) == {f"p1_{i:06d}" for i in range(5)}
        assert await store.queue_page(
            b, members(5, prefix="p2"), "", chunk_size=10, now=clock.now(), lease_seconds=LEASE
        )
        assert (await store.get_run(site_id, run_id)).resolved == 10  # type: ignore[union-attr]

    async def test_postponed_preparation_is_claimable_again_when_due(
        self, store: DeliveryStore
    ) -> None:
        clock = FrozenClock()
        await new_run(store, clock)
        lease = await store.claim_preparation("a", clock.now(), LEASE)
        assert lease is not None

        since = clock.now()
        assert await store.postpone_preparation(lease, clock.now().replace(minute=1), since)

        assert await store.claim_preparation("b", clock.now(), LEASE) is None
        clock.advance(minutes=1, seconds=1)
        again = await store.claim_preparation("b", clock.now(), LEASE)
        assert again is not None and again.unavailable_since == since

    async def test_a_failed_preparation_keeps_what_was_queued(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(store, clock)
        lease = await store.claim_preparation("a", clock.now(), LEASE)
        assert lease is not None
        assert await store.queue_page(
            lease, members(2), "2", chunk_size=10, now=clock.now(), lease_seconds=LEASE
        )

        assert await store.fail_preparation(lease, RunFailure.AUDIENCE_REFUSED, "gone", clock.now())

        run = await store.get_run(site_id, run_id)
        assert run is not None
        assert (run.state, run.failure, run.failure_message, run.finish_time) == (
            RunState.FAILED,
            RunFailure.AUDIENCE_REFUSED,
            "gone",
            None,
        )
        chunk = await store.claim_chunk("w", clock.now(), LEASE)
        assert chunk is not None
        due = await store.due_recipients(chunk, clock.now())
        assert await store.record_progress(
            chunk,
            "cmp_1",
            terminal=[terminal(r, RecipientState.SENT) for r in due],
            now=clock.now(),
            lease_seconds=LEASE,
        )
        assert await store.release_chunk(chunk, clock.now())
        run = await store.get_run(site_id, run_id)
        assert run is not None and (run.state, run.finish_time) == (RunState.FAILED, clock.now())

    async def test_a_lease_with_a_stale_fence_writes_nothing(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(store, clock)
        lease = await store.claim_preparation("a", clock.now(), LEASE)
        assert lease is not None
        forged = PreparationLease(**{**lease.__dict__, "fence": lease.fence + 7})
        assert not await store.queue_page(
            forged, members(1), "", chunk_size=10, now=clock.now(), lease_seconds=LEASE
        )
        assert not await store.fail_preparation(
            forged, RunFailure.AUDIENCE_REFUSED, "x", clock.now()
        )
        run = await store.get_run(site_id, run_id)
        assert run is not None and run.state is RunState.PREPARING


class TestClaimChunk:
    async def test_two_workers_never_claim_the_same_chunk(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        await prepared(store, clock, members(12), chunk_size=1)

        async def worker(name: str) -> list[int]:
            claimed = []
            while (chunk := await store.claim_chunk(name, clock.now(), LEASE)) is not None:
                claimed.append(chunk.chunk_id)
            return claimed

        everything = [c for claimed in await asyncio.gather(*map(worker, "abcd")) for c in claimed]

        assert len(everything) == 12 == len(set(everything))

    async def test_the_lowest_seq_goes_first_across_runs(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        _, big = await prepared(store, clock, members(200), chunk_size=10)  # 20 chunks
        first = await store.claim_chunk("w", clock.now(), LEASE)
        assert first is not None and first.run_id == big
        _, small = await prepared(store, clock, members(10), chunk_size=10)  # 1 chunk

        second = await store.claim_chunk("w", clock.now(), LEASE)

        assert second is not None and second.run_id == small

    async def test_an_expired_lease_is_taken_over_and_fences_out_the_first_owner(
        self, store: DeliveryStore
    ) -> None:
        clock = FrozenClock()
        await prepared(store, clock, members(2))
        killed = await store.claim_chunk("killed", clock.now(), LEASE)
        assert killed is not None
        [first, second] = await store.due_recipients(killed, clock.now())

        clock.advance(seconds=LEASE - 1)
        assert await store.claim_chunk("other", clock.now(), LEASE) is None
        clock.advance(seconds=2)
        taken = await store.claim_chunk("other", clock.now(), LEASE)

        assert taken is not None and taken.chunk_id == killed.chunk_id
        assert taken.fence > killed.fence
        assert not await store.record_progress(
            killed,
            "cmp_1",
            attempting=[first.recipient_id],
            terminal=[terminal(second, RecipientState.SENT)],
            now=clock.now(),
            lease_seconds=LEASE,
        )
        assert not await store.release_chunk(killed, clock.now())
        for recipient in (first, second):
            view = await store.recipient(taken.site_id, taken.run_id, recipient.subscriber_id)
            assert view is not None and (view.state, view.attempts) == (RecipientState.PENDING, 0)
        assert await store.record_progress(
            taken, "cmp_1", attempting=[first.recipient_id], now=clock.now(), lease_seconds=LEASE
        )

    async def test_progress_renews_the_lease(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        await prepared(store, clock, members(1))
        chunk = await store.claim_chunk("live", clock.now(), LEASE)
        assert chunk is not None

        for _ in range(3):
            clock.advance(seconds=LEASE / 2 + 1)
            assert await store.record_progress(chunk, "cmp_1", now=clock.now(), lease_seconds=LEASE)
        assert await store.claim_chunk("other", clock.now(), LEASE) is None

    async def test_a_chunk_waiting_for_a_retry_is_claimable_only_when_due(
        self, store: DeliveryStore
    ) -> None:
        clock = FrozenClock()
        await prepared(store, clock, members(2))
        chunk = await store.claim_chunk("w", clock.now(), LEASE)
        assert chunk is not None
        first, second = await store.due_recipients(chunk, clock.now())
        assert await store.record_progress(
            chunk,
            "cmp_1",
            attempting=[first.recipient_id, second.recipient_id],
            now=clock.now(),
            lease_seconds=LEASE,
        )
        assert await store.record_progress(
            chunk,
            "cmp_1",
            terminal=[terminal(first, RecipientState.SENT)],
            retries=[
                Retry(second.recipient_id, "push_service_429", clock.now().replace(second=40))
            ],
            now=clock.now(),
            lease_seconds=LEASE,
        )
        assert await store.release_chunk(chunk, clock.now())

        assert await store.claim_chunk("w", clock.now(), LEASE) is None
        clock.advance(seconds=40)
        again = await store.claim_chunk("w", clock.now(), LEASE)
        assert again is not None and again.chunk_id == chunk.chunk_id
        [due] = await store.due_recipients(again, clock.now())
        assert (due.recipient_id, due.attempts) == (second.recipient_id, 1)
        view = await store.recipient(again.site_id, again.run_id, second.subscriber_id)
        assert view is not None and view.reason == "push_service_429"

    async def test_times_written_by_progress_compare_to_the_microsecond(
        self, store: DeliveryStore
    ) -> None:
        # The hot path writes times as fixed SQL; they must read and compare exactly as
        # times written anywhere else do.
        clock = FrozenClock()
        await prepared(store, clock, members(1))
        chunk = await store.claim_chunk("w", clock.now(), LEASE)
        assert chunk is not None
        [due] = await store.due_recipients(chunk, clock.now())
        retry_at = clock.now() + timedelta(seconds=7, microseconds=250)
        clock.advance(seconds=1)
        assert await store.record_progress(
            chunk,
            "cmp_1",
            attempting=[due.recipient_id],
            retries=[Retry(due.recipient_id, "push_service_5xx", retry_at)],
            now=clock.now(),
            lease_seconds=LEASE,
        )

        view = await store.recipient(chunk.site_id, chunk.run_id, due.subscriber_id)
        assert view is not None and view.not_before == retry_at
        assert await store.due_recipients(chunk, retry_at - timedelta(microseconds=1)) == []
        assert len(await store.due_recipients(chunk, retry_at)) == 1
        # The lease the same commit renewed holds up to its last instant, not after.
        expires = clock.now() + timedelta(seconds=LEASE)
        assert await store.claim_chunk("other", expires, LEASE) is None
        assert await store.claim_chunk("other", expires + timedelta(microseconds=1), LEASE)


class TestAttemptsInFlight:
    """A request's attempt is counted in its chunk's in-flight list by the commit before
    it starts (not by a second UPDATE of the recipient), and moves into the recipient's
    row with its answer, or at the next claim when the answer was lost with a process."""

    async def test_an_attempt_counts_while_in_flight_and_once_answered(
        self, store: DeliveryStore
    ) -> None:
        clock = FrozenClock()
        await prepared(store, clock, members(2))
        chunk = await store.claim_chunk("w", clock.now(), LEASE)
        assert chunk is not None
        first, second = await store.due_recipients(chunk, clock.now())
        assert await store.record_progress(
            chunk,
            "cmp_1",
            attempting=[first.recipient_id, second.recipient_id],
            now=clock.now(),
            lease_seconds=LEASE,
        )
        for recipient in (first, second):
            view = await store.recipient(chunk.site_id, chunk.run_id, recipient.subscriber_id)
            assert view is not None and (view.state, view.attempts) == (RecipientState.PENDING, 1)

        answered = Terminal(
            first.recipient_id,
            first.subscriber_id,
            first.browser,
            RecipientState.SENT,
            "",
            attempt=attempt_entry(clock.now(), 201, "", "push.example"),
        )
        retry_at = clock.now() + timedelta(seconds=30)
        assert await store.record_progress(
            chunk,
            "cmp_1",
            terminal=[answered],
            retries=[Retry(second.recipient_id, "push_service_5xx", retry_at)],
            now=clock.now(),
            lease_seconds=LEASE,
        )
        # Its second request, and an answer to it: three attempts in all would be wrong.
        assert await store.record_progress(
            chunk, "cmp_1", attempting=[second.recipient_id], now=clock.now(), lease_seconds=LEASE
        )
        view = await store.recipient(chunk.site_id, chunk.run_id, first.subscriber_id)
        assert view is not None and (view.state, view.attempts) == (RecipientState.SENT, 1)
        assert [a.http_status for a in view.attempt_history] == [201]
        view = await store.recipient(chunk.site_id, chunk.run_id, second.subscriber_id)
        assert view is not None and (view.state, view.attempts) == (RecipientState.PENDING, 2)

    async def test_requests_in_flight_when_a_process_dies_count_once_at_the_next_claim(
        self, store: DeliveryStore, engine: AsyncEngine
    ) -> None:
        clock = FrozenClock()
        await prepared(store, clock, members(3))
        killed = await store.claim_chunk("killed", clock.now(), LEASE)
        assert killed is not None
        recipients = await store.due_recipients(killed, clock.now())
        assert await store.record_progress(
            killed,
            "cmp_1",
            attempting=[r.recipient_id for r in recipients],
            now=clock.now(),
            lease_seconds=LEASE,
        )
        # ...and its process dies with the three requests in flight. Another process
        # (a store of its own) takes the chunk over once the lease has lapsed.
        other = DeliveryStore(engine)
        try:
            clock.advance(seconds=LEASE + 1)
            taken = await other.claim_chunk("other", clock.now(), LEASE)
            assert taken is not None and taken.chunk_id == killed.chunk_id
            due = await other.due_recipients(taken, clock.now())
            assert [r.attempts for r in due] == [1, 1, 1]
            # Its own requests for them, answered: two attempts each, no more.
            assert await other.record_progress(
                taken,
                "cmp_1",
                attempting=[r.recipient_id for r in due],
                now=clock.now(),
                lease_seconds=LEASE,
            )
            assert await other.record_progress(
                taken,
                "cmp_1",
                terminal=[terminal(r, RecipientState.SENT) for r in due],
                now=clock.now(),
                lease_seconds=LEASE,
            )
            assert await other.release_chunk(taken, clock.now())
            # The dead process's late commit is refused and counts nothing.
            assert not await store.record_progress(
                killed,
                "cmp_1",
                terminal=[terminal(r, RecipientState.FAILED, "push_service_5xx") for r in due],
                now=clock.now(),
                lease_seconds=LEASE,
            )
            for recipient in due:
                view = await other.recipient(taken.site_id, taken.run_id, recipient.subscriber_id)
                assert view is not None and (view.state, view.attempts) == (RecipientState.SENT, 2)
        finally:
            await other.close()


class TestOutcomes:
    async def test_an_outcome_is_never_overwritten(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        audience = members(1)
        site_id, run_id = await prepared(store, clock, audience)
        chunk = await store.claim_chunk("w", clock.now(), LEASE)
        assert chunk is not None
        [due] = await store.due_recipients(chunk, clock.now())

        for state in (RecipientState.SENT, RecipientState.FAILED):
            assert await store.record_progress(
                chunk,
                "cmp_1",
                terminal=[terminal(due, state, "late")],
                now=clock.now(),
                lease_seconds=LEASE,
            )

        view = await store.recipient(site_id, run_id, audience[0].subscriber_id)
        assert view is not None and view.state is RecipientState.SENT
        counts = (await store.run_counts(site_id, [run_id]))[run_id]
        assert (counts.pending, counts.sent, counts.failed) == (0, 1, 0)

    async def test_the_run_is_done_when_every_recipient_is_terminal(
        self, store: DeliveryStore
    ) -> None:
        clock = FrozenClock()
        site_id, run_id = await prepared(store, clock, members(2), chunk_size=1)

        for _ in range(2):
            run = await store.get_run(site_id, run_id)
            assert run is not None and run.state is RunState.SENDING
            chunk = await store.claim_chunk("w", clock.now(), LEASE)
            assert chunk is not None
            [due] = await store.due_recipients(chunk, clock.now())
            assert await store.record_progress(
                chunk,
                "cmp_1",
                terminal=[terminal(due, RecipientState.SENT)],
                now=clock.now(),
                lease_seconds=LEASE,
            )
            assert await store.release_chunk(chunk, clock.now())

        run = await store.get_run(site_id, run_id)
        assert run is not None and (run.state, run.finish_time) == (RunState.DONE, clock.now())
        counts = (await store.run_counts(site_id, [run_id]))[run_id]
        assert (counts.sent, counts.pending) == (2, 0)

    async def test_the_run_finishes_when_its_last_chunks_are_released_at_once(
        self, store: DeliveryStore
    ) -> None:
        # Two workers release the run's last two chunks in concurrent transactions:
        # one of them must see the other's and finish the run (tried a few times,
        # since it is a race).
        for _ in range(8):
            clock = FrozenClock()
            site_id, run_id = await prepared(store, clock, members(2), chunk_size=1)
            chunks = [await store.claim_chunk(f"w{n}", clock.now(), LEASE) for n in range(2)]
            for chunk in chunks:
                assert chunk is not None
                [due] = await store.due_recipients(chunk, clock.now())
                assert await store.record_progress(
                    chunk,
                    "cmp_1",
                    terminal=[terminal(due, RecipientState.SENT)],
                    now=clock.now(),
                    lease_seconds=LEASE,
                )

            released = await asyncio.gather(
                *(store.release_chunk(chunk, clock.now()) for chunk in chunks if chunk)
            )

            assert released == [True, True]
            run = await store.get_run(site_id, run_id)
            assert run is not None and run.state is RunState.DONE


class TestOutbox:
    async def test_two_relays_never_hold_the_same_rows(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        # 30 outcomes (in one row: one commit's worth) and the run's audience (another).
        audience = members(30, unsubscribed=range(30))
        await prepared(store, clock, audience)
        await start_relayed(store, clock)
        kinds = tuple(OutboxKind)

        a = await store.claim_outbox(kinds, "a", clock.now(), LEASE, 1)
        b = await store.claim_outbox(kinds, "b", clock.now(), LEASE, 20)

        assert (len({i.outbox_id for i in a}), len({i.outbox_id for i in b})) == (1, 1)
        assert not {i.outbox_id for i in a} & {i.outbox_id for i in b}
        outcomes = [i.subscriber_id for i in a + b if i.kind is OutboxKind.OUTCOME]
        assert sorted(outcomes) == sorted(m.subscriber_id for m in audience)
        assert [i.count for i in a + b if i.kind is OutboxKind.AUDIENCE] == [30]
        assert await store.claim_outbox(kinds, "c", clock.now(), LEASE, 20) == []

        await store.settle_outbox("b", [i.outbox_id for i in a])  # not b's: kept
        await store.settle_outbox("a", [i.outbox_id for i in a])
        assert await store.outbox_size() == 1
        await store.release_outbox("b", [i.outbox_id for i in b], clock.now().replace(minute=5))
        assert await store.claim_outbox(kinds, "c", clock.now(), LEASE, 20) == []
        clock.advance(minutes=5, seconds=1)
        assert await store.claim_outbox(kinds, "c", clock.now(), LEASE, 20) == b

    async def test_an_expired_claim_is_taken_over(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        await prepared(store, clock, members(1, unsubscribed=[0]))
        await start_relayed(store, clock)
        held = await store.claim_outbox((OutboxKind.OUTCOME,), "dead", clock.now(), LEASE, 10)
        assert len(held) == 1
        clock.advance(seconds=LEASE + 1)
        taken = await store.claim_outbox((OutboxKind.OUTCOME,), "alive", clock.now(), LEASE, 10)
        assert [i.outbox_id for i in taken] == [i.outbox_id for i in held]
        await store.settle_outbox("dead", [i.outbox_id for i in held])  # too late: not deleted
        assert await store.outbox_size() == 2  # the outcome and the run's audience

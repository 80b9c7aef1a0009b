"""The durable queue: chunks, claims, leases and outcomes, on a database of its own and
a FrozenClock (no server, so no worker but the test's claims)."""

from __future__ import annotations

import asyncio
import os
import uuid

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.delivery.models import RecipientState, RunState
from services.delivery.store import DeliveryStore, NewRecipient, NewRun, Retry, Terminal
from services.kit.clock import FrozenClock
from tests.delivery.conftest import LEASE


def recipients(n: int) -> list[NewRecipient]:
    key = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    return [
        NewRecipient(f"sub_{uuid.uuid4().hex}", f"https://push.test/{i}", key, os.urandom(16), 1)
        for i in range(n)
    ]


async def new_run(store: DeliveryStore, clock: FrozenClock) -> tuple[str, str]:
    site_id, run_id = f"site_{uuid.uuid4().hex}", f"run_{uuid.uuid4().hex}"
    await store.create_run(
        NewRun(site_id, run_id, "cmp_1", "t", "", "", "", "", 3600, "normal"), clock.now()
    )
    return site_id, run_id


class TestEnqueue:
    async def test_splits_into_chunks_and_ignores_duplicates(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(store, clock)
        batch = recipients(5)

        first = await store.enqueue(site_id, run_id, batch, 2, clock.now())
        again = await store.enqueue(site_id, run_id, batch + recipients(1), 2, clock.now())

        assert (first.queued, again.queued) == (5, 1)
        assert (await store.run_counts(site_id, run_id)).pending == 6

    async def test_another_sites_run_is_not_there(self, store: DeliveryStore) -> None:
        clock = FrozenClock()
        _, run_id = await new_run(store, clock)
        result = await store.enqueue("site_other", run_id, recipients(1), 10, clock.now())
        assert (result.run_state, result.queued) == (None, 0)


class TestClaim:
    async def test_an_unstarted_runs_chunks_are_never_claimed(self, drained: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(drained, clock)
        await drained.enqueue(site_id, run_id, recipients(3), 1, clock.now())

        assert await drained.claim_chunk("w1", clock.now(), LEASE) is None

        await drained.start_run(site_id, run_id, clock.now())
        assert await drained.claim_chunk("w1", clock.now(), LEASE) is not None

    async def test_two_workers_never_claim_the_same_chunk(self, drained: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(drained, clock)
        await drained.enqueue(site_id, run_id, recipients(6), 1, clock.now())
        await drained.start_run(site_id, run_id, clock.now())

        async def worker(name: str) -> list[str]:
            claimed = []
            while (chunk := await drained.claim_chunk(name, clock.now(), LEASE)) is not None:
                claimed.append(chunk.chunk_id)
            return claimed

        a, b, c = await asyncio.gather(worker("a"), worker("b"), worker("c"))

        everything = a + b + c
        assert len(everything) == 6
        assert len(set(everything)) == 6

    async def test_an_expired_lease_is_taken_over(self, drained: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(drained, clock)
        await drained.enqueue(site_id, run_id, recipients(2), 10, clock.now())
        await drained.start_run(site_id, run_id, clock.now())
        killed = await drained.claim_chunk("killed", clock.now(), LEASE)
        assert killed is not None

        clock.advance(seconds=LEASE - 1)
        assert await drained.claim_chunk("other", clock.now(), LEASE) is None
        clock.advance(seconds=2)
        taken = await drained.claim_chunk("other", clock.now(), LEASE)

        assert taken is not None and taken.chunk_id == killed.chunk_id
        assert not await drained.renew_lease(killed, clock.now(), LEASE)
        assert await drained.renew_lease(taken, clock.now(), LEASE)

    async def test_a_renewed_lease_is_kept(self, drained: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(drained, clock)
        await drained.enqueue(site_id, run_id, recipients(1), 10, clock.now())
        await drained.start_run(site_id, run_id, clock.now())
        chunk = await drained.claim_chunk("live", clock.now(), LEASE)
        assert chunk is not None

        for _ in range(3):
            clock.advance(seconds=LEASE / 2)
            assert await drained.renew_lease(chunk, clock.now(), LEASE)
        assert await drained.claim_chunk("other", clock.now(), LEASE) is None

    async def test_a_chunk_waiting_for_a_retry_is_claimable_only_when_due(
        self, drained: DeliveryStore
    ) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(drained, clock)
        await drained.enqueue(site_id, run_id, recipients(2), 10, clock.now())
        await drained.start_run(site_id, run_id, clock.now())
        chunk = await drained.claim_chunk("w", clock.now(), LEASE)
        assert chunk is not None
        first, second = await drained.due_recipients(chunk, clock.now())

        await drained.record_results(
            chunk,
            [Terminal(first.recipient_id, RecipientState.SENT, "")],
            [Retry(second.recipient_id, "push_service_429", clock.now().replace(second=40))],
            clock.now(),
        )

        assert await drained.claim_chunk("w", clock.now(), LEASE) is None
        clock.advance(seconds=40)
        again = await drained.claim_chunk("w", clock.now(), LEASE)
        assert again is not None and again.chunk_id == chunk.chunk_id
        [due] = await drained.due_recipients(again, clock.now())
        assert (due.recipient_id, due.attempts) == (second.recipient_id, 1)


class TestOutcomes:
    async def test_an_outcome_is_never_overwritten(self, drained: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(drained, clock)
        [recipient] = recipients(1)
        await drained.enqueue(site_id, run_id, [recipient], 10, clock.now())
        await drained.start_run(site_id, run_id, clock.now())
        chunk = await drained.claim_chunk("w", clock.now(), LEASE)
        assert chunk is not None
        [due] = await drained.due_recipients(chunk, clock.now())

        made = await drained.record_results(
            chunk, [Terminal(due.recipient_id, RecipientState.SENT, "")], [], clock.now()
        )
        again = await drained.record_results(
            chunk, [Terminal(due.recipient_id, RecipientState.FAILED, "late")], [], clock.now()
        )

        assert [o.state for o in made] == [RecipientState.SENT] and again == []
        view = await drained.recipient(site_id, run_id, recipient.subscriber_id)
        assert view is not None and (view.state, view.attempts) == (RecipientState.SENT, 1)

    async def test_the_run_is_done_when_every_recipient_is_terminal(
        self, drained: DeliveryStore
    ) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(drained, clock)
        await drained.enqueue(site_id, run_id, recipients(2), 1, clock.now())
        await drained.start_run(site_id, run_id, clock.now())

        for _ in range(2):
            run = await drained.get_run(site_id, run_id)
            assert run is not None and run.state is RunState.SENDING
            chunk = await drained.claim_chunk("w", clock.now(), LEASE)
            assert chunk is not None
            [due] = await drained.due_recipients(chunk, clock.now())
            await drained.record_results(
                chunk, [Terminal(due.recipient_id, RecipientState.SENT, "")], [], clock.now()
            )

        run = await drained.get_run(site_id, run_id)
        assert run is not None and run.state is RunState.DONE and run.finish_time == clock.now()

    async def test_unreported_outcomes_stay_until_marked(self, drained: DeliveryStore) -> None:
        clock = FrozenClock()
        site_id, run_id = await new_run(drained, clock)
        await drained.enqueue(site_id, run_id, recipients(1), 1, clock.now())
        await drained.start_run(site_id, run_id, clock.now())
        chunk = await drained.claim_chunk("w", clock.now(), LEASE)
        assert chunk is not None
        [due] = await drained.due_recipients(chunk, clock.now())
        [made] = await drained.record_results(
            chunk, [Terminal(due.recipient_id, RecipientState.SENT, "")], [], clock.now()
        )

        assert made.recipient_id in {
            o.recipient_id for o in await drained.unreported_outcomes(10_000)
        }
        await drained.mark_reported([made.recipient_id])
        assert made.recipient_id not in {
            o.recipient_id for o in await drained.unreported_outcomes(10_000)
        }

"""The worker, driven one round at a time, with in-memory fakes for the peer services'
ports (campaign credentials, segment unsubscribe, reporting) and the real simulator."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clarion.simulator import Behaviour, PushServiceSimulator
from services.delivery.adapters.encryptors import create_encryptor
from services.delivery.domain.ports import CredentialsUnavailable, SiteCredentials
from services.delivery.domain.worker import DeliveryWorkers
from services.delivery.models import RecipientState, RunState
from services.delivery.store import DeliveryStore, NewRecipient, NewRun, ReportableOutcome
from services.kit.clock import FrozenClock
from tests.delivery.conftest import FAST_DELIVERY


class FakeCredentials:
    def __init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self.private_key = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.failure: CredentialsUnavailable | None = None

    async def site_credentials(self, site_id: str) -> SiteCredentials:
        if self.failure:
            raise self.failure
        return SiteCredentials(site_id, self.private_key, b"", "mailto:ops@test.example")


class FakePruner:
    def __init__(self) -> None:
        self.down = False
        self.calls: list[tuple[str, str, str]] = []

    async def unsubscribe(self, site_id: str, subscriber_id: str, reason: str) -> None:
        if self.down:
            raise ConnectionError("segment is down")
        self.calls.append((site_id, subscriber_id, reason))


class FakeSink:
    def __init__(self) -> None:
        self.down = False
        self.recorded: list[ReportableOutcome] = []

    async def record_outcomes(self, site_id: str, outcomes: Sequence[ReportableOutcome]) -> None:
        if self.down:
            raise ConnectionError("reporting is down")
        self.recorded.extend(outcomes)


class Harness:
    def __init__(self, store: DeliveryStore, simulator: PushServiceSimulator, settings) -> None:  # type: ignore[no-untyped-def]
        self.store = store
        self.simulator = simulator
        self.clock = FrozenClock()
        self.credentials = FakeCredentials()
        self.pruner = FakePruner()
        self.sink = FakeSink()
        self.workers = DeliveryWorkers(
            settings,
            store,
            create_encryptor(settings.encryptor),
            self.credentials,
            self.pruner,
            self.sink,
            self.clock,
        )

    async def started_run(self, n: int, ttl_seconds: int = 3600) -> tuple[str, str, list]:
        site_id, run_id = f"site_{uuid.uuid4().hex}", f"run_{uuid.uuid4().hex}"
        await self.store.create_run(
            NewRun(site_id, run_id, "cmp_1", "Hello", "", "", "", "", ttl_seconds, "normal"),
            self.clock.now(),
        )
        subs = [self.simulator.mint_subscription() for _ in range(n)]
        await self.store.enqueue(
            site_id,
            run_id,
            [NewRecipient(f"sub_{i}", s.endpoint, s.p256dh, s.auth, 1) for i, s in enumerate(subs)],
            50,
            self.clock.now(),
        )
        await self.store.start_run(site_id, run_id, self.clock.now())
        return site_id, run_id, subs

    async def state_of(self, site_id: str, run_id: str, subscriber_id: str):  # type: ignore[no-untyped-def]
        return await self.store.recipient(site_id, run_id, subscriber_id)


@pytest.fixture
async def harness(
    drained: DeliveryStore, simulator: PushServiceSimulator, settings_factory
) -> AsyncIterator[Harness]:
    made = Harness(drained, simulator, settings_factory(encryptor="python", **FAST_DELIVERY))
    await made.workers.open()
    yield made
    await made.workers.close()


class TestRound:
    async def test_sends_prunes_gone_subscribers_and_reports(self, harness: Harness) -> None:
        site_id, run_id, subs = await harness.started_run(2)
        harness.simulator.set_behaviour(subs[1].endpoint, Behaviour(status=410))

        assert await harness.workers.run_once("w")

        assert harness.pruner.calls == [(site_id, "sub_1", "push_service_410")]
        assert {(o.subscriber_id, o.state) for o in harness.sink.recorded} == {
            ("sub_0", RecipientState.SENT),
            ("sub_1", RecipientState.FAILED),
        }
        run = await harness.store.get_run(site_id, run_id)
        assert run is not None and run.state is RunState.DONE

    async def test_outcomes_wait_for_reporting_to_come_back(self, harness: Harness) -> None:
        site_id, run_id, _ = await harness.started_run(1)
        harness.sink.down = True

        assert await harness.workers.run_once("w")
        assert harness.sink.recorded == []
        assert (await harness.state_of(site_id, run_id, "sub_0")).state is RecipientState.SENT

        harness.sink.down = False
        assert await harness.workers.report_unreported() >= 1
        assert [o.subscriber_id for o in harness.sink.recorded if o.run_id == run_id] == ["sub_0"]
        assert await harness.workers.report_unreported() == 0

    async def test_gone_subscribers_wait_for_segment_to_come_back(self, harness: Harness) -> None:
        site_id, run_id, subs = await harness.started_run(2)
        harness.simulator.set_behaviour(subs[0].endpoint, Behaviour(status=404))
        harness.pruner.down = True

        assert await harness.workers.run_once("w")
        assert harness.pruner.calls == []
        assert (await harness.state_of(site_id, run_id, "sub_0")).reason == "push_service_404"

        harness.pruner.down = False
        assert await harness.workers.unsubscribe_gone() >= 1
        assert (site_id, "sub_0", "push_service_404") in harness.pruner.calls
        assert await harness.workers.unsubscribe_gone() == 0

    async def test_a_site_without_credentials_fails_its_recipients(self, harness: Harness) -> None:
        site_id, run_id, _ = await harness.started_run(1)
        harness.credentials.failure = CredentialsUnavailable("no such site", permanent=True)

        await harness.workers.run_once("w")

        view = await harness.state_of(site_id, run_id, "sub_0")
        assert (view.state, view.reason, view.attempts) == (
            RecipientState.FAILED,
            "no_vapid_credentials",
            0,
        )

    async def test_unreachable_credentials_postpone_the_chunk(self, harness: Harness) -> None:
        site_id, run_id, subs = await harness.started_run(1)
        harness.credentials.failure = CredentialsUnavailable("campaign is down", permanent=False)

        await harness.workers.run_once("w")

        view = await harness.state_of(site_id, run_id, "sub_0")
        assert (view.state, view.attempts) == (RecipientState.PENDING, 0)
        assert not await harness.workers.run_once("w")  # not due yet
        harness.credentials.failure = None
        harness.clock.advance(seconds=60)
        assert await harness.workers.run_once("w")
        assert (await harness.state_of(site_id, run_id, "sub_0")).state is RecipientState.SENT
        assert len(harness.simulator.messages(subs[0].endpoint)) == 1

    async def test_a_run_past_its_ttl_expires_instead_of_sending(self, harness: Harness) -> None:
        site_id, run_id, subs = await harness.started_run(1, ttl_seconds=60)
        harness.clock.advance(seconds=61)

        await harness.workers.run_once("w")

        view = await harness.state_of(site_id, run_id, "sub_0")
        assert (view.state, view.reason) == (RecipientState.EXPIRED, "ttl_elapsed")
        assert harness.simulator.messages(subs[0].endpoint) == []

    async def test_a_killed_workers_chunk_is_sent_after_its_lease_expires(
        self, harness: Harness
    ) -> None:
        site_id, run_id, subs = await harness.started_run(1)
        lease = FAST_DELIVERY["delivery_lease_seconds"]
        killed = await harness.store.claim_chunk("killed", harness.clock.now(), lease)
        assert killed is not None  # ...and its process dies here, holding the lease

        assert not await harness.workers.run_once("w")
        harness.clock.advance(seconds=lease + 1)
        assert await harness.workers.run_once("w")

        assert (await harness.state_of(site_id, run_id, "sub_0")).state is RecipientState.SENT
        assert len(harness.simulator.messages(subs[0].endpoint)) == 1

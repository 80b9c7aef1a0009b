"""DeliveryWorkers driven one step at a time (prepare_once, send_once, relay_outbox_once)
over the real store, with in-memory fakes of the ports and a FrozenClock for leases and
retries; on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta

import http_ece
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clarion.simulator import PushServiceSimulator
from services.delivery.domain.payload import topic_for
from services.delivery.domain.ports import CredentialsUnavailable, PeerUnavailable
from services.delivery.domain.rules import PushAnswer, Reason
from services.delivery.domain.worker import audience_slices
from services.delivery.models import RecipientState, RunFailure, RunState, TargetKind
from services.delivery.store import DeliveryStore, Member
from services.kit.clock import FrozenClock
from services.kit.db import create_engine_for
from services.kit.tokens import verify_engagement_token
from tests.delivery.conftest import (
    ENCRYPTORS,
    Harness,
    eventually,
    harness_settings,
    members,
    outbox_outcomes,
    recipient_rows,
    subscription_member,
)


async def state_of(harness: Harness, site_id: str, run_id: str, subscriber_id: str):  # type: ignore[no-untyped-def]
    view = await harness.store.recipient(site_id, run_id, subscriber_id)
    assert view is not None, subscriber_id
    return view


async def run_of(harness: Harness, site_id: str, run_id: str):  # type: ignore[no-untyped-def]
    run = await harness.store.get_run(site_id, run_id)
    assert run is not None
    return run


class TestSending:
    @pytest.mark.parametrize("encryptor", ENCRYPTORS)
    async def test_each_recipient_gets_its_own_encrypted_payload(
        self,
        store: DeliveryStore,
        settings_factory,
        simulator: PushServiceSimulator,
        encryptor: str,
    ) -> None:
        harness = Harness(
            store, harness_settings(settings_factory), FrozenClock(), encryptor=encryptor
        )
        subs = [simulator.mint_subscription() for _ in range(3)]
        audience = [subscription_member(sub, f"sub_{i}") for i, sub in enumerate(subs)]
        site_id, run_id = await harness.start_run(audience, ttl_seconds=600, urgency="high")

        await harness.deliver()

        for member, sub in zip(audience, subs, strict=True):
            [(body, headers)] = harness.transport.sent[sub.endpoint]
            plaintext = http_ece.decrypt(
                body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
            )
            payload = json.loads(plaintext)
            assert payload["title"] == "Sale" and payload["run_id"] == run_id
            assert payload["subscriber_id"] == member.subscriber_id
            assert verify_engagement_token(
                harness.credentials.engagement_secret,
                payload["engagement_token"],
                site_id,
                run_id,
                member.subscriber_id,
            )
            assert headers["TTL"] == "600" and headers["Urgency"] == "high"
            assert headers["Topic"] == topic_for(run_id)
            assert headers["Content-Encoding"] == "aes128gcm"
            assert headers["Authorization"].startswith("vapid t=")
        run = await run_of(harness, site_id, run_id)
        assert (run.state, run.resolved, run.queued) == (RunState.DONE, 3, 3)

    async def test_sends_a_run_in_chunks_and_reports_every_outcome_once(
        self, harness: Harness
    ) -> None:
        audience = members(45)  # two pages of 25, five chunks of 10
        site_id, run_id = await harness.start_run(audience)

        await harness.deliver()

        assert harness.transport.posts == Counter({m.endpoint: 1 for m in audience})
        assert harness.sink.per_subscriber(run_id) == Counter(
            {m.subscriber_id: 1 for m in audience}
        )
        assert harness.sink.audiences == [(site_id, run_id, 45)]
        assert await harness.store.outbox_size() == 0
        run = await run_of(harness, site_id, run_id)
        assert (run.state, run.resolved, run.queued) == (RunState.DONE, 45, 45)
        assert run.finish_time == harness.clock.now()

    async def test_a_test_send_goes_only_to_the_named_subscribers(self, harness: Harness) -> None:
        audience = members(5)
        named = [audience[1].subscriber_id, audience[3].subscriber_id]
        site_id, run_id = await harness.start_run(audience, subscriber_ids=named)

        await harness.deliver()

        assert set(harness.transport.posts) == {audience[1].endpoint, audience[3].endpoint}
        assert (await run_of(harness, site_id, run_id)).resolved == 2

    async def test_an_apns_target_fails_without_a_request(self, harness: Harness) -> None:
        [member] = members(1)
        apns = Member(**{**member.__dict__, "target_kind": TargetKind.APNS, "endpoint": "a" * 64})
        site_id, run_id = await harness.start_run([apns])

        await harness.deliver()

        view = await state_of(harness, site_id, run_id, apns.subscriber_id)
        assert (view.state, view.reason, view.attempts) == (
            RecipientState.FAILED,
            "endpoint_refused",
            0,
        )
        assert harness.transport.posts == Counter()


class TestPushAnswers:
    @pytest.mark.parametrize("status", [404, 410])
    async def test_a_gone_subscription_fails_and_is_unsubscribed(
        self, harness: Harness, status: int
    ) -> None:
        gone, alive = members(2)
        harness.transport.script(gone.endpoint, PushAnswer(status=status))
        site_id, run_id = await harness.start_run([gone, alive])

        await harness.deliver()

        reason = f"push_service_{status}"
        view = await state_of(harness, site_id, run_id, gone.subscriber_id)
        assert (view.state, view.reason, view.attempts) == (RecipientState.FAILED, reason, 1)
        assert harness.pruner.gone == [(site_id, gone.subscriber_id, reason)]
        states = {(o.subscriber_id, o.state, o.reason) for o in harness.sink.outcomes}
        assert states == {(gone.subscriber_id, "failed", reason), (alive.subscriber_id, "sent", "")}

    async def test_429_is_retried_after_retry_after(self, harness: Harness) -> None:
        [member] = members(1)
        harness.transport.script(member.endpoint, PushAnswer(status=429, retry_after="1"))
        site_id, run_id = await harness.start_run([member])

        await harness.deliver()

        view = await state_of(harness, site_id, run_id, member.subscriber_id)
        assert (view.state, view.reason, view.attempts) == (
            RecipientState.PENDING,
            "push_service_429",
            1,
        )
        assert view.not_before == harness.clock.now().replace(second=1)
        harness.clock.advance(seconds=0.5)
        assert await harness.send_all() == 0  # not due yet
        harness.clock.advance(seconds=0.5)
        assert await harness.send_all() == 1

        view = await state_of(harness, site_id, run_id, member.subscriber_id)
        assert (view.state, view.attempts) == (RecipientState.SENT, 2)
        assert harness.transport.posts[member.endpoint] == 2
        assert (await run_of(harness, site_id, run_id)).state is RunState.DONE

    async def test_server_errors_fail_after_max_attempts(self, harness: Harness) -> None:
        [member] = members(1)
        harness.transport.script(member.endpoint, *[PushAnswer(status=503)] * 10)
        site_id, run_id = await harness.start_run([member])

        await harness.deliver()
        for _ in range(harness.settings.push_max_attempts):
            harness.clock.advance(seconds=harness.settings.push_retry_max_seconds * 2)
            await harness.send_all()

        view = await state_of(harness, site_id, run_id, member.subscriber_id)
        assert (view.state, view.reason) == (RecipientState.FAILED, "push_service_5xx")
        # Attempts are the requests actually started, no more, no fewer.
        assert (
            view.attempts
            == harness.settings.push_max_attempts
            == harness.transport.posts[member.endpoint]
        )
        assert harness.pruner.gone == []

    async def test_a_retried_attempt_is_counted(self, harness: Harness) -> None:
        flaky, steady = members(2)
        harness.transport.script(flaky.endpoint, PushAnswer(error=Reason.TIMEOUT))
        site_id, run_id = await harness.start_run([flaky, steady])

        await harness.deliver()
        harness.clock.advance(seconds=harness.settings.push_retry_max_seconds * 2)
        await harness.deliver()

        for member, attempts in ((flaky, 2), (steady, 1)):
            view = await state_of(harness, site_id, run_id, member.subscriber_id)
            assert (view.state, view.attempts) == (RecipientState.SENT, attempts)
            assert harness.transport.posts[member.endpoint] == attempts

    async def test_attempts_are_counted_before_the_request_starts(self, harness: Harness) -> None:
        [member] = members(1)
        site_id, run_id = await harness.start_run([member])
        await harness.prepare_all()
        harness.transport.gate = asyncio.Event()

        sending = asyncio.create_task(harness.workers.send_once("w"))
        await eventually(lambda: harness.transport.blocked == 1, what="the request started")
        view = await state_of(harness, site_id, run_id, member.subscriber_id)
        assert (view.state, view.attempts) == (RecipientState.PENDING, 1)

        harness.transport.gate.set()
        assert await sending
        view = await state_of(harness, site_id, run_id, member.subscriber_id)
        assert (view.state, view.attempts) == (RecipientState.SENT, 1)


class TestBeforeSending:
    async def test_a_run_past_its_ttl_expires_instead_of_sending(self, harness: Harness) -> None:
        [member] = members(1)
        site_id, run_id = await harness.start_run([member], ttl_seconds=60)
        await harness.prepare_all()
        harness.clock.advance(seconds=61)

        await harness.deliver()

        view = await state_of(harness, site_id, run_id, member.subscriber_id)
        assert (view.state, view.reason, view.attempts) == (
            RecipientState.EXPIRED,
            "expired_ttl",
            0,
        )
        assert harness.transport.posts == Counter()
        assert [(o.subscriber_id, o.state) for o in harness.sink.outcomes] == [
            (member.subscriber_id, "expired")
        ]

    async def test_a_site_without_credentials_fails_its_recipients(self, harness: Harness) -> None:
        [member] = members(1)
        harness.credentials.failure = CredentialsUnavailable("no such site", permanent=True)
        site_id, run_id = await harness.start_run([member])

        await harness.deliver()

        view = await state_of(harness, site_id, run_id, member.subscriber_id)
        assert (view.state, view.reason, view.attempts) == (
            RecipientState.FAILED,
            "no_vapid_credentials",
            0,
        )
        assert harness.transport.posts == Counter()

    async def test_an_unusable_vapid_key_fails_its_recipients(self, harness: Harness) -> None:
        [member] = members(1)
        harness.credentials.private_key = b"not a key"
        site_id, run_id = await harness.start_run([member])

        await harness.deliver()

        view = await state_of(harness, site_id, run_id, member.subscriber_id)
        assert (view.state, view.reason) == (RecipientState.FAILED, "no_vapid_credentials")

    async def test_unreachable_credentials_postpone_the_chunk(self, harness: Harness) -> None:
        [member] = members(1)
        harness.credentials.failure = CredentialsUnavailable("campaign is down", permanent=False)
        site_id, run_id = await harness.start_run([member])

        await harness.deliver()

        view = await state_of(harness, site_id, run_id, member.subscriber_id)
        assert (view.state, view.attempts) == (RecipientState.PENDING, 0)
        assert await harness.send_all() == 0  # not due yet
        harness.credentials.failure = None
        harness.clock.advance(seconds=60)
        await harness.deliver()
        view = await state_of(harness, site_id, run_id, member.subscriber_id)
        assert (view.state, view.attempts) == (RecipientState.SENT, 1)
        assert harness.transport.posts[member.endpoint] == 1

    async def test_an_encryption_failure_fails_only_that_recipient(self, harness: Harness) -> None:
        bad, good = members(2)
        bad = Member(**{**bad.__dict__, "p256dh": b"\x04" + b"\x00" * 64})
        site_id, run_id = await harness.start_run([bad, good])

        await harness.deliver()

        view = await state_of(harness, site_id, run_id, bad.subscriber_id)
        assert (view.state, view.reason, view.attempts) == (
            RecipientState.FAILED,
            "encryption_error",
            0,
        )
        assert (
            await state_of(harness, site_id, run_id, good.subscriber_id)
        ).state is RecipientState.SENT
        assert set(harness.transport.posts) == {good.endpoint}


class TestUnsubscribedBeforeSend:
    async def test_unsubscribed_since_the_snapshot_is_suppressed_and_never_posted(
        self, harness: Harness
    ) -> None:
        audience = members(4, unsubscribed=[2])
        site_id, run_id = await harness.start_run(audience)

        await harness.deliver()

        view = await state_of(harness, site_id, run_id, audience[2].subscriber_id)
        assert (view.state, view.reason, view.attempts) == (
            RecipientState.SUPPRESSED,
            "unsubscribed",
            0,
        )
        assert audience[2].endpoint not in harness.transport.posts
        assert len(harness.transport.posts) == 3
        run = await run_of(harness, site_id, run_id)
        assert (run.resolved, run.queued, run.state) == (4, 3, RunState.DONE)
        assert ("suppressed", "unsubscribed") in {
            (o.state, o.reason)
            for o in harness.sink.outcomes
            if o.subscriber_id == view.subscriber_id
        }

    async def test_reported_inactive_by_segment_just_before_the_send(
        self, harness: Harness
    ) -> None:
        audience = members(3)
        site_id, run_id = await harness.start_run(audience)
        await harness.prepare_all()
        harness.audience.inactive.add(audience[0].subscriber_id)  # unsubscribed after queueing

        await harness.deliver()

        view = await state_of(harness, site_id, run_id, audience[0].subscriber_id)
        assert (view.state, view.reason, view.attempts) == (
            RecipientState.SUPPRESSED,
            "unsubscribed",
            0,
        )
        assert audience[0].endpoint not in harness.transport.posts
        assert set(harness.audience.checked) == {m.subscriber_id for m in audience}
        counts = (await harness.store.run_counts(site_id, [run_id]))[run_id]
        assert (counts.sent, counts.suppressed) == (2, 1)

    async def test_no_check_no_send(self, harness: Harness) -> None:
        [member] = members(1)
        site_id, run_id = await harness.start_run([member])
        harness.audience.check_failure = PeerUnavailable("segment is down")

        await harness.deliver()

        view = await state_of(harness, site_id, run_id, member.subscriber_id)
        assert (view.state, view.attempts) == (RecipientState.PENDING, 0)
        assert harness.transport.posts == Counter()
        harness.audience.check_failure = None
        harness.clock.advance(seconds=60)
        await harness.deliver()
        assert (
            await state_of(harness, site_id, run_id, member.subscriber_id)
        ).state is RecipientState.SENT


class TestPreparation:
    async def test_a_killed_preparer_is_resumed_from_the_stored_page_token(
        self, harness: Harness, engine: AsyncEngine
    ) -> None:
        page_size = harness.settings.delivery_prepare_page_size
        audience = members(page_size * 7 + 3)
        harness.audience.pages_before_trouble = 3  # then it hangs
        site_id, run_id = await harness.start_run(audience)

        preparing = asyncio.create_task(harness.workers.prepare_once())
        await eventually(harness.audience.hanging.is_set, what="three pages queued")
        preparing.cancel()  # the process dies holding the lease
        with pytest.raises(asyncio.CancelledError):
            await preparing
        run = await run_of(harness, site_id, run_id)
        assert (run.state, run.resolved) == (RunState.PREPARING, 3 * page_size)

        second = harness.sibling()
        second.audience.sites = harness.audience.sites
        assert not await second.workers.prepare_once()  # the lease is still live
        harness.clock.advance(seconds=harness.settings.delivery_lease_seconds + 1)
        assert await second.workers.prepare_once()

        assert second.audience.tokens_asked[0] == str(3 * page_size)
        rows = await recipient_rows(engine, run_id)
        assert rows == Counter({m.subscriber_id: 1 for m in audience})
        run = await run_of(harness, site_id, run_id)
        assert (run.state, run.resolved, run.queued) == (
            RunState.SENDING,
            len(audience),
            len(audience),
        )

        await second.send_all()
        await second.workers.drain_outbox()
        assert second.transport.posts == Counter({m.endpoint: 1 for m in audience})
        assert second.sink.audiences == [(site_id, run_id, len(audience))]
        assert (await run_of(harness, site_id, run_id)).state is RunState.DONE

    async def test_chunks_are_sent_while_the_audience_is_still_being_pulled(
        self, harness: Harness
    ) -> None:
        audience = members(60)
        harness.audience.pages_before_trouble = 1
        site_id, run_id = await harness.start_run(audience)
        preparing = asyncio.create_task(harness.workers.prepare_once())
        await eventually(harness.audience.hanging.is_set, what="one page queued")

        assert await harness.send_all() >= 1

        assert (await run_of(harness, site_id, run_id)).state is RunState.PREPARING
        assert len(harness.transport.posts) == harness.settings.delivery_prepare_page_size
        preparing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await preparing

    async def test_segment_refusing_fails_the_run_but_sends_what_was_queued(
        self, harness: Harness
    ) -> None:
        page_size = harness.settings.delivery_prepare_page_size
        audience = members(page_size * 4)
        harness.audience.pages_before_trouble = 2
        harness.audience.failure_after = PeerUnavailable("site is gone", permanent=True)
        site_id, run_id = await harness.start_run(audience)

        await harness.deliver()

        run = await run_of(harness, site_id, run_id)
        assert (run.state, run.failure) == (RunState.FAILED, RunFailure.AUDIENCE_REFUSED)
        assert "site is gone" in run.failure_message
        assert (run.resolved, run.finish_time) == (2 * page_size, harness.clock.now())
        queued = {m.endpoint for m in audience[: 2 * page_size]}
        assert harness.transport.posts == Counter(dict.fromkeys(queued, 1))
        assert harness.sink.audiences == [(site_id, run_id, 2 * page_size)]
        assert len(harness.sink.per_subscriber(run_id)) == 2 * page_size

    async def test_segment_unavailable_past_the_deadline_fails_the_run(
        self, store: DeliveryStore, settings_factory
    ) -> None:
        deadline = 60.0
        harness = Harness(
            store,
            harness_settings(settings_factory, delivery_prepare_deadline_seconds=deadline),
            FrozenClock(),
        )
        harness.audience.failure = PeerUnavailable("segment: UNAVAILABLE")
        site_id, run_id = await harness.start_run(members(3))
        started = harness.clock.now()

        assert await harness.workers.prepare_once()  # postponed
        assert not await harness.workers.prepare_once()  # not before its retry time
        while (await run_of(harness, site_id, run_id)).state is RunState.PREPARING:
            assert harness.clock.now() - started <= timedelta(seconds=2 * deadline)
            harness.clock.advance(seconds=5)
            await harness.workers.prepare_once()

        run = await run_of(harness, site_id, run_id)
        assert (run.state, run.failure) == (RunState.FAILED, RunFailure.AUDIENCE_UNAVAILABLE)
        assert (harness.clock.now() - started).total_seconds() >= deadline
        assert run.finish_time == harness.clock.now()  # nothing was queued: finished at once

    async def test_segment_back_before_the_deadline_resumes(self, harness: Harness) -> None:
        audience = members(30)
        harness.audience.failure = PeerUnavailable("segment: UNAVAILABLE")
        site_id, run_id = await harness.start_run(audience)
        assert await harness.workers.prepare_once()

        harness.audience.failure = None
        harness.clock.advance(seconds=5)
        await harness.deliver()

        run = await run_of(harness, site_id, run_id)
        assert (run.state, run.failure, run.resolved) == (RunState.DONE, None, 30)
        assert len(harness.transport.posts) == 30


class TestListedAudience:
    """A listed audience longer than segment takes in one request (5,000 ids of each
    kind) is pulled in slices, each paged to its end; nobody is queued twice."""

    @pytest.mark.parametrize(
        ("subscribers", "profiles", "slices"),
        [(0, 0, [(0, 0)]), (3, 0, [(3, 0)]), (5000, 5000, [(5000, 5000)]),
         (10_000, 0, [(5000, 0), (5000, 0)]), (4000, 6000, [(4000, 5000), (0, 1000)])],
    )  # fmt: skip
    def test_slices_never_ask_for_more_than_a_request_takes(
        self, subscribers: int, profiles: int, slices: list[tuple[int, int]]
    ) -> None:
        subscriber_ids = [f"s{i}" for i in range(subscribers)]
        profile_ids = [f"p{i}" for i in range(profiles)]

        made = audience_slices(subscriber_ids, profile_ids)

        assert [(len(s), len(p)) for s, p in made] == slices
        assert [i for s, _ in made for i in s] == subscriber_ids
        assert [i for _, p in made for i in p] == profile_ids

    @pytest.mark.parametrize(
        ("crash_after_pages", "resumed_at"),
        [
            (None, None),
            (2, ("50", 0)),  # within the first slice
            (4, ("", 1)),  # the first slice done: the second from its start
            (5, ("25", 1)),  # within the second slice
        ],
    )
    async def test_everyone_listed_is_queued_once_even_across_a_crash(
        self,
        harness: Harness,
        engine: AsyncEngine,
        crash_after_pages: int | None,
        resumed_at: tuple[str, int] | None,
    ) -> None:
        # 200 members: the first 100 two to a profile (user-0 .. user-49), the rest anonymous.
        audience = members(200, profile_id=lambda i: f"user-{i % 50}" if i < 100 else "")
        ids = [m.subscriber_id for m in audience]
        subscriber_ids = [f"ghost_{i}" for i in range(4000)]
        subscriber_ids[:20] = ids[:20]  # reached through their profiles too
        subscriber_ids[-50:] = ids[100:150]
        profile_ids = [f"nobody-{i}" for i in range(6000)]
        profile_ids[100:125] = [f"user-{i}" for i in range(25)]  # the first slice
        profile_ids[5500:5525] = [f"user-{i}" for i in range(25, 50)]  # the second
        slices = [
            (tuple(subscriber_ids), tuple(profile_ids[:5000])),
            ((), tuple(profile_ids[5000:])),
        ]
        harness.audience.pages_before_trouble = crash_after_pages  # then it hangs
        site_id, run_id = await harness.start_run(
            audience, subscriber_ids=subscriber_ids, profile_ids=profile_ids
        )

        preparer = harness
        if crash_after_pages is not None:
            preparing = asyncio.create_task(harness.workers.prepare_once())
            await eventually(harness.audience.hanging.is_set, what="the crash point reached")
            preparing.cancel()  # the process dies holding the lease
            with pytest.raises(asyncio.CancelledError):
                await preparing
            preparer = harness.sibling()
            preparer.audience.sites = harness.audience.sites
            harness.clock.advance(seconds=harness.settings.delivery_lease_seconds + 1)
        await preparer.prepare_all()

        if resumed_at is not None:
            token, index = resumed_at
            assert preparer.audience.tokens_asked[0] == token
            assert preparer.audience.listed_asked[0] == slices[index]
        asked = harness.audience.listed_asked + (
            preparer.audience.listed_asked if preparer is not harness else []
        )
        assert set(asked) == set(slices)
        reached = audience[:150]
        assert await recipient_rows(engine, run_id) == Counter(
            {m.subscriber_id: 1 for m in reached}
        )
        run = await run_of(harness, site_id, run_id)
        assert (run.state, run.resolved, run.queued) == (RunState.SENDING, 150, 150)

        await preparer.send_all()
        await preparer.workers.drain_outbox()
        assert preparer.transport.posts == Counter({m.endpoint: 1 for m in reached})
        assert preparer.sink.audiences == [(site_id, run_id, 150)]


class RecordingStore(DeliveryStore):
    """The store, remembering what each fenced commit answered."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.commits: list[bool] = []

    async def record_progress(self, *args, **kwargs) -> bool:  # type: ignore[no-untyped-def]
        held = await super().record_progress(*args, **kwargs)
        self.commits.append(held)
        return held


class TestFencedLeases:
    async def test_a_stalled_worker_is_fenced_out_by_the_one_that_took_over(
        self, store: DeliveryStore, settings_factory, engine: AsyncEngine
    ) -> None:
        settings = harness_settings(settings_factory, delivery_workers=1, delivery_concurrency=4)
        a = Harness(RecordingStore(engine), settings, FrozenClock())
        b = a.sibling(store=store)
        assert a.workers.window == 4
        audience = members(10)  # one chunk
        site_id, run_id = await a.start_run(audience)
        await a.prepare_all()
        a.transport.gate = asyncio.Event()

        stalled = asyncio.create_task(a.workers.send_once("A"))
        await eventually(lambda: a.transport.blocked == 4, what="A has a window in flight")
        in_flight = set(a.transport.posts)
        assert not await b.workers.send_once("B")  # A's lease is live
        a.clock.advance(seconds=settings.delivery_lease_seconds + 1)
        assert await b.workers.send_once("B")  # B takes the chunk over and sends it all
        assert (await run_of(a, site_id, run_id)).state is RunState.DONE

        a.transport.gate.set()
        assert await stalled
        # A's first commit (the window's attempts) held; its next one was refused.
        assert a.store.commits == [True, False]  # type: ignore[attr-defined]

        assert a.transport.posts == Counter(dict.fromkeys(in_flight, 1))  # nothing more
        posts = a.transport.posts + b.transport.posts
        assert {e for e, n in posts.items() if n > 1} == in_flight
        assert posts == Counter({m.endpoint: 1 + (m.endpoint in in_flight) for m in audience})
        assert await outbox_outcomes(engine, run_id) == Counter(
            {m.subscriber_id: 1 for m in audience}
        )
        for member in audience:
            view = await state_of(a, site_id, run_id, member.subscriber_id)
            # Both requests were started, so both are counted.
            assert (view.state, view.attempts) == (RecipientState.SENT, posts[member.endpoint])

    async def test_a_killed_workers_chunk_is_sent_after_its_lease_expires(
        self, harness: Harness
    ) -> None:
        [member] = members(1)
        site_id, run_id = await harness.start_run([member])
        await harness.prepare_all()
        lease = harness.settings.delivery_lease_seconds
        killed = await harness.store.claim_chunk("killed", harness.clock.now(), lease)
        assert killed is not None  # ...and its process dies here, holding the lease

        assert not await harness.workers.send_once("w")
        harness.clock.advance(seconds=lease + 1)
        assert await harness.workers.send_once("w")

        assert (
            await state_of(harness, site_id, run_id, member.subscriber_id)
        ).state is RecipientState.SENT
        assert harness.transport.posts[member.endpoint] == 1


class TestFairQueue:
    async def test_a_small_run_waits_at_most_one_chunk_of_a_big_one(self, harness: Harness) -> None:
        chunk = harness.settings.delivery_chunk_size
        big = members(20 * chunk, prefix="big")
        big_site, big_run = await harness.start_run(big)
        await harness.prepare_all()
        small = members(chunk, prefix="small")
        small_site, small_run = await harness.start_run(small)
        await harness.prepare_all()

        claimed: list[str] = []
        while (await run_of(harness, small_site, small_run)).state is not RunState.DONE:
            before = len(harness.transport.order)
            assert await harness.workers.send_once("only")
            claimed.append(harness.transport.order[before].split("/")[3])

        assert claimed[-1] == "small" and claimed.count("big") <= 1
        assert (await run_of(harness, big_site, big_run)).state is RunState.SENDING


class TestOutbox:
    async def test_outcomes_wait_for_reporting_to_come_back(self, harness: Harness) -> None:
        [member] = members(1)
        harness.sink.down = True
        site_id, run_id = await harness.start_run([member])

        await harness.deliver()

        assert harness.sink.outcomes == []
        assert (
            await state_of(harness, site_id, run_id, member.subscriber_id)
        ).state is RecipientState.SENT
        assert not await harness.workers.relay_outbox_once()  # not before the retry time
        harness.sink.down = False
        harness.clock.advance(seconds=60)
        await harness.workers.drain_outbox()
        assert harness.sink.per_subscriber(run_id) == Counter({member.subscriber_id: 1})
        assert harness.sink.audiences == [(site_id, run_id, 1)]
        assert await harness.store.outbox_size() == 0

    async def test_gone_subscribers_wait_for_segment_to_come_back(self, harness: Harness) -> None:
        [member] = members(1)
        harness.transport.script(member.endpoint, PushAnswer(status=404))
        harness.pruner.down = True
        site_id, _ = await harness.start_run([member])

        await harness.deliver()
        assert harness.pruner.gone == []
        assert len(harness.sink.outcomes) == 1  # reporting heard regardless

        harness.pruner.down = False
        harness.clock.advance(seconds=60)
        await harness.workers.drain_outbox()
        assert harness.pruner.gone == [(site_id, member.subscriber_id, "push_service_404")]
        assert await harness.store.outbox_size() == 0


class TestTwoProcesses:
    async def test_share_one_run_without_sending_or_reporting_anything_twice(
        self, store: DeliveryStore, settings_factory, private_database_url: str
    ) -> None:
        if not private_database_url.startswith("postgresql"):
            pytest.skip("two processes share a queue on PostgreSQL")
        settings = harness_settings(
            settings_factory,
            delivery_chunk_size=100,
            delivery_prepare_page_size=500,
            delivery_workers=2,
            delivery_concurrency=32,
        )
        clock = FrozenClock()
        engines = [create_engine_for(private_database_url) for _ in range(2)]
        first = Harness(DeliveryStore(engines[0]), settings, clock)
        second = first.sibling(store=DeliveryStore(engines[1]), audience=first.audience)
        processes = [first, second]
        assert first.workers._process_id != second.workers._process_id
        audience = members(3000)
        try:
            for process in processes:
                await process.workers.start()
            site_id, run_id = await first.start_run(audience)
            second.workers.run_started()

            def reported() -> int:
                return sum(len(p.sink.per_subscriber(run_id)) for p in processes)

            await eventually(lambda: reported() >= len(audience), timeout=90, what="all reported")

            async def outbox_empty() -> bool:
                return await store.outbox_size() == 0

            await eventually(outbox_empty, timeout=30, what="the outbox relayed")
        finally:
            for process in processes:
                await process.workers.stop()
            for engine in engines:
                await engine.dispose()

        posts = first.transport.posts + second.transport.posts
        assert first.transport.posts and second.transport.posts  # both processes sent
        assert posts == Counter({m.endpoint: 1 for m in audience})
        outcomes = first.sink.per_subscriber(run_id) + second.sink.per_subscriber(run_id)
        assert outcomes == Counter({m.subscriber_id: 1 for m in audience})
        assert first.sink.audiences + second.sink.audiences == [(site_id, run_id, 3000)]
        run = await store.get_run(site_id, run_id)
        assert run is not None and run.state is RunState.DONE
        assert await store.outbox_size() == 0

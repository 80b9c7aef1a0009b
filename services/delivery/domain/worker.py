"""Delivery workers: claim a chunk, encrypt it in one batch, post it, record outcomes.

Each process runs `settings.delivery_workers` worker tasks plus one reporter task. A
worker holds its chunk under a lease it renews while sending; if the process dies the
lease expires and another worker takes the chunk over. Outcomes go to reporting after
each chunk; the reporter task re-sends whatever reporting has not yet accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from services.delivery.domain.encryptor import Encryptor, VapidSigning
from services.delivery.domain.payload import build_payload, topic_for
from services.delivery.domain.ports import (
    CredentialsUnavailable,
    OutcomeSink,
    SiteCredentialsSource,
    SubscriberPruner,
)
from services.delivery.domain.rules import (
    Failed,
    PushAnswer,
    RetryLater,
    RetryPolicy,
    Sent,
    decide,
)
from services.delivery.domain.sender import PushSender, endpoint_origin
from services.delivery.models import RecipientState
from services.delivery.store import (
    ClaimedChunk,
    DeliveryStore,
    PendingRecipient,
    ReportableOutcome,
    Retry,
    Run,
    Terminal,
)
from services.kit.auth import bind_site
from services.kit.clock import Clock
from services.kit.config import Settings
from services.kit.logging import get_logger

log = get_logger(__name__)

# A site's signer is refetched after this long, so a rotated VAPID key is picked up.
SIGNER_TTL_SECONDS = 300.0
REPORT_BATCH = 500
PRUNE_BATCH = 100
PAYLOAD_CACHE_SIZE = 256


@dataclass
class _CachedSigner:
    signer: VapidSigning
    subject: str
    expires: float


class DeliveryWorkers:
    def __init__(
        self,
        settings: Settings,
        store: DeliveryStore,
        encryptor: Encryptor,
        credentials: SiteCredentialsSource,
        pruner: SubscriberPruner,
        outcomes: OutcomeSink,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._store = store
        self._encryptor = encryptor
        self._credentials = credentials
        self._pruner = pruner
        self._outcomes = outcomes
        self._clock = clock
        self._policy = RetryPolicy(
            max_attempts=settings.push_max_attempts,
            base_seconds=settings.push_retry_base_seconds,
            max_seconds=settings.push_retry_max_seconds,
        )
        self._sender = PushSender(settings.delivery_concurrency, settings.push_timeout_seconds)
        self._signers: dict[str, _CachedSigner] = {}
        self._payloads: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # Lifecycle.

    async def open(self) -> None:
        """Opens the HTTP pool; enough to drive `run_once` by hand (tests, tools)."""
        await self._sender.start()

    async def close(self) -> None:
        await self._sender.close()

    async def start(self) -> None:
        await self.open()
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._work(f"{self._process_id}:{n}"), name=f"delivery-worker-{n}")
            for n in range(self._settings.delivery_workers)
        ]
        self._tasks.append(asyncio.create_task(self._report_loop(), name="delivery-reporter"))

    async def stop(self) -> None:
        """Lets each worker finish its chunk (bounded), then closes the HTTP pool."""
        self._stopping.set()
        if self._tasks:
            grace = self._settings.push_timeout_seconds + 5.0
            _, late = await asyncio.wait(self._tasks, timeout=grace)
            for task in late:
                task.cancel()  # its lease expires and another worker resumes the chunk
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._tasks = []
        await self.close()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _work(self, owner: str) -> None:
        while not self._stopping.is_set():
            try:
                worked = await self.run_once(owner)
            except Exception:
                log.exception("delivery worker round failed", worker=owner)
                worked = False
            if not worked:
                await self._pause(self._settings.delivery_poll_seconds)

    async def _report_loop(self) -> None:
        interval = max(self._settings.delivery_poll_seconds * 5, 1.0)
        while not self._stopping.is_set():
            await self._pause(interval)
            try:
                await self.report_unreported()
            except Exception:
                log.exception("reporting delivery outcomes failed; will retry")
            await self._unsubscribe_gone_safely()

    # One round.

    async def run_once(self, owner: str) -> bool:
        """Claims and processes one chunk; False when none was due."""
        chunk = await self._store.claim_chunk(
            owner, self._clock.now(), self._settings.delivery_lease_seconds
        )
        if chunk is None:
            return False
        bind_site(chunk.site_id)
        renewer = asyncio.create_task(self._renew_lease(chunk))
        try:
            await self._process(chunk)
        except Exception:
            retry_at = self._clock.now() + timedelta(seconds=self._policy.backoff(1))
            await self._store.release_chunk(chunk, retry_at)
            raise
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        return True

    async def _renew_lease(self, chunk: ClaimedChunk) -> None:
        lease = self._settings.delivery_lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            if not await self._store.renew_lease(chunk, self._clock.now(), lease):
                log.warning("lost the lease on a chunk", chunk_id=chunk.chunk_id)
                return

    async def _process(self, chunk: ClaimedChunk) -> None:
        now = self._clock.now()
        run = await self._store.get_run(chunk.site_id, chunk.run_id)
        assert run is not None, "a chunk's run is deleted with it"
        recipients = await self._store.due_recipients(chunk, now)
        if not recipients:
            await self._store.record_results(chunk, [], [], now)
            return
        if (
            run.ttl_seconds
            and run.start_time
            and now >= run.start_time + timedelta(seconds=run.ttl_seconds)
        ):
            # The push services would drop it anyway: the TTL the campaign set has passed.
            expired = [
                Terminal(r.recipient_id, RecipientState.EXPIRED, "ttl_elapsed", attempted=False)
                for r in recipients
            ]
            await self._finish(chunk, expired, [])
            return
        try:
            signer, subject = await self._signer(chunk.site_id)
        except CredentialsUnavailable as error:
            if not error.permanent:
                log.warning("site credentials unavailable; chunk postponed", error=str(error))
                await self._store.release_chunk(
                    chunk, now + timedelta(seconds=self._policy.backoff(1))
                )
                return
            failed = [
                Terminal(
                    r.recipient_id, RecipientState.FAILED, "no_vapid_credentials", attempted=False
                )
                for r in recipients
            ]
            await self._finish(chunk, failed, [])
            return

        bodies = await asyncio.to_thread(
            self._encryptor.encrypt_batch,
            self._payload(run),
            [(r.p256dh, r.auth) for r in recipients],
        )
        headers = self._common_headers(run)
        authorizations: dict[str, str] = {}
        terminal: list[Terminal] = []
        sends: list[tuple[PendingRecipient, asyncio.Future[PushAnswer]]] = []
        for recipient, body in zip(recipients, bodies, strict=True):
            if isinstance(body, Exception):
                terminal.append(
                    Terminal(
                        recipient.recipient_id,
                        RecipientState.FAILED,
                        f"encryption_error: {body}"[:200],
                    )
                )
                continue
            origin = endpoint_origin(recipient.endpoint)
            if origin not in authorizations:
                authorizations[origin] = signer.authorization(audience=origin, subject=subject)
            sends.append(
                (
                    recipient,
                    asyncio.ensure_future(
                        self._sender.post(
                            recipient.endpoint,
                            body,
                            {**headers, "Authorization": authorizations[origin]},
                        )
                    ),
                )
            )
        answers = await asyncio.gather(*(future for _, future in sends))

        now = self._clock.now()
        retries: list[Retry] = []
        refused_logged: set[int] = set()
        for (recipient, _), answer in zip(sends, answers, strict=True):
            verdict = decide(answer, recipient.attempts + 1, self._policy, now)
            if answer.status in (401, 403) and answer.status not in refused_logged:
                refused_logged.add(answer.status)
                log.warning(
                    "push service refused our VAPID signature",
                    status=answer.status,
                    push_service=endpoint_origin(recipient.endpoint),
                    response_body=answer.body_excerpt,
                )
            match verdict:
                case Sent():
                    terminal.append(Terminal(recipient.recipient_id, RecipientState.SENT, ""))
                case Failed(reason=reason, unsubscribe=unsubscribe):
                    terminal.append(
                        Terminal(
                            recipient.recipient_id,
                            RecipientState.FAILED,
                            reason,
                            unsubscribe=unsubscribe,
                        )
                    )
                case RetryLater(reason=reason, delay_seconds=delay):
                    retries.append(
                        Retry(recipient.recipient_id, reason, now + timedelta(seconds=delay))
                    )
        await self._finish(chunk, terminal, retries)
        if any(t.unsubscribe for t in terminal):
            await self._unsubscribe_gone_safely()

    async def _finish(
        self,
        chunk: ClaimedChunk,
        terminal: Sequence[Terminal],
        retries: Sequence[Retry],
    ) -> None:
        outcomes = await self._store.record_results(chunk, terminal, retries, self._clock.now())
        try:
            await self._report(outcomes)
        except Exception as error:  # the reporter loop tries again
            log.warning("reporting is unavailable; outcomes kept for later", error=str(error))

    def _common_headers(self, run: Run) -> dict[str, str]:
        return {
            "TTL": str(run.ttl_seconds),
            "Urgency": run.urgency,
            "Topic": topic_for(run.run_id),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }

    def _payload(self, run: Run) -> bytes:
        key = (run.site_id, run.run_id)
        payload = self._payloads.get(key)
        if payload is None:
            payload = build_payload(run)
            self._payloads[key] = payload
            if len(self._payloads) > PAYLOAD_CACHE_SIZE:
                self._payloads.popitem(last=False)
        return payload

    async def _signer(self, site_id: str) -> tuple[VapidSigning, str]:
        cached = self._signers.get(site_id)
        if cached and cached.expires > time.monotonic():
            return cached.signer, cached.subject
        credentials = await self._credentials.site_credentials(site_id)
        try:
            signer = self._encryptor.signer(credentials.vapid_private_key)
        except Exception as error:
            raise CredentialsUnavailable(
                f"the site's VAPID private key is unusable: {type(error).__name__}", permanent=True
            ) from None
        self._signers[site_id] = _CachedSigner(
            signer, credentials.vapid_subject, time.monotonic() + SIGNER_TTL_SECONDS
        )
        return signer, credentials.vapid_subject

    # Pruning gone subscribers.

    async def unsubscribe_gone(self) -> int:
        """Unsubscribes, in segment, every subscriber a push service called gone that
        segment has not accepted yet; returns how many. Raises if segment fails, leaving
        the rest pending for the next round."""
        done = 0
        while True:
            batch = await self._store.pending_unsubscribes(PRUNE_BATCH)
            for pending in batch:
                await self._pruner.unsubscribe(pending.site_id, pending.subscriber_id, pending.reason)
                await self._store.mark_unsubscribed([pending.recipient_id])
                done += 1
            if len(batch) < PRUNE_BATCH:
                return done

    async def _unsubscribe_gone_safely(self) -> None:
        try:
            await self.unsubscribe_gone()
        except Exception as error:  # the background loop tries again
            log.warning("segment is unavailable; gone subscribers kept for later", error=str(error))

    # Reporting.

    async def _report(self, outcomes: Sequence[ReportableOutcome]) -> None:
        by_site: dict[str, list[ReportableOutcome]] = defaultdict(list)
        for outcome in outcomes:
            by_site[outcome.site_id].append(outcome)
        for site_id, batch in by_site.items():
            await self._outcomes.record_outcomes(site_id, batch)
            await self._store.mark_reported([o.recipient_id for o in batch])

    async def report_unreported(self) -> int:
        """Sends every terminal outcome reporting has not accepted yet; returns how many."""
        reported = 0
        while True:
            batch = await self._store.unreported_outcomes(REPORT_BATCH)
            if not batch:
                return reported
            await self._report(batch)
            reported += len(batch)
            if len(batch) < REPORT_BATCH:
                return reported

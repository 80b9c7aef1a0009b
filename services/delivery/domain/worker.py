"""Delivery's background work: preparing runs, sending chunks, and emptying the outbox.

Each process runs one preparer (pulls audience pages from segment and queues them),
`settings.delivery_workers` senders (claim a chunk, encrypt it in one batch, post it),
and one outbox relay (outcomes and audiences to reporting, gone subscribers to segment).
All three claim their work under fenced leases in the store, so any number of
processes share it and a killed process's work is taken over when its lease expires.

A sender keeps at most `window` requests of its chunk in flight (on the transport's
stream; the default transport runs them in the native crate, off this loop) and
records each outcome (in small group-committed batches) before it starts another request, so a
crash re-sends at most the requests in flight, never a whole chunk. Every commit names
the chunk's fence: a sender that lost its lease stops at its next commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import os
import socket
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from cachetools import LRUCache, TTLCache
from yarl import URL

from services.delivery.domain.apns import (
    APNS_HOST,
    APNS_PUSH_SERVICE,
    apns_id,
    apns_payload,
    decide_apns,
    priority,
    valid_device_token,
)
from services.delivery.domain.apns import credentials_fingerprint as apns_fingerprint
from services.delivery.domain.content import (
    ContentOptions,
    VariantContent,
    compile_payload,
    person_key,
    recipient_context,
    render_for_recipient,
)
from services.delivery.domain.descriptions import description_from_json
from services.delivery.domain.goals import goal_from_json
from services.delivery.domain.holds import (
    ACCEPTED_PROVES_SECONDS,
    AUTH_STATUSES,
    CREDENTIALS_CHECK_SECONDS,
    DETAIL_CHARACTERS,
    FIRST_PROBE_SECONDS,
    HELD_WAIT_SECONDS,
    MAX_PROBE_SECONDS,
    credentials_fingerprint,
)
from services.delivery.domain.payload import endpoint_origin, for_recipient, topic_for
from services.delivery.domain.policies import (
    Policy,
    in_control_group,
    in_sample,
    local_day,
    policy_from_json,
    quiet_hours,
    variant_of,
)
from services.delivery.domain.ports import (
    MAX_LISTED_PER_PAGE_REQUEST,
    ApnsAnswer,
    ApnsCredentials,
    ApnsCredentialsSource,
    ApnsRequest,
    ApnsTransport,
    AudienceSource,
    CredentialsUnavailable,
    Encryptor,
    OutcomeSink,
    PeerUnavailable,
    PushRequest,
    PushTransport,
    RateLimits,
    SiteCredentials,
    SiteCredentialsSource,
    SubscriberPruner,
    VapidSigning,
)
from services.delivery.domain.rules import (
    RETRIED_REASONS,
    SENT_STATUSES,
    Expired,
    Failed,
    PushAnswer,
    Reason,
    RetryLater,
    RetryPolicy,
    Sent,
    decide,
)
from services.delivery.domain.timing import RunTiming, due, timing_from_json
from services.delivery.models import OutboxKind, RecipientState, RunFailure, TargetKind
from services.delivery.settings import DeliverySettings
from services.delivery.store import (
    ClaimedChunk,
    DeliveryStore,
    Hold,
    Member,
    OutboxItem,
    PendingRecipient,
    PreparationLease,
    Retry,
    Run,
    Terminal,
    attempt_entry,
)
from services.kit.auth import bind_site
from services.kit.clock import Clock
from services.kit.logging import OncePer, get_logger
from services.kit.metrics import push_service_label, set_delivery_auth_holds
from services.kit.templates import PayloadTemplate
from services.kit.tokens import engagement_token

log = get_logger(__name__)

# A site's credentials are refetched after this long, so a rotated key is picked up.
CREDENTIALS_TTL_SECONDS = 300.0
# A chunk naming a VAPID key the cached credentials lack refetches them (a key imported
# since), at most once per site in this long; a key still missing fails its recipients.
CREDENTIALS_REFRESH_SECONDS = 10.0
MAX_CACHED_SITES = 4096
# Templated payloads compiled per (site, run, variant, browser): the runs sending at
# once, a few browsers (and variants) each.
MAX_CACHED_TEMPLATES = 512
# The variants of runs sending at once, by (site, run): fixed when the run starts.
MAX_CACHED_VARIANT_RUNS = 256
# Outbox rows claimed at once (each holds one commit's recipients), and items per call
# to each peer (reporting takes up to 10,000 outcomes, segment 1,000 unsubscribes).
OUTBOX_BATCH = 100
# Runs whose cut-off passed that one preparer step ends.
CUT_OFF_BATCH = 100
PEER_BATCH = {
    OutboxKind.START: 100,
    OutboxKind.OUTCOME: 5000,
    OutboxKind.AUDIENCE: 100,
    OutboxKind.UNSUBSCRIBE: 1000,
}
# A batch's kinds are relayed in this order: a run's start before anything else of it.
_RELAY_ORDER = {OutboxKind.START: 0, OutboxKind.AUDIENCE: 1}
# How long a sender waits for more answers before committing the ones it has.
GROUP_COMMIT_SECONDS = 0.003
# A push service throttling us, or refusing a site's VAPID signature, is logged once per
# push service (and site) in this long, however many recipients it answers so.
PUSH_SERVICE_LOG_SECONDS = 60.0
# A sender claiming a chunk also takes the recipients whose retry is due within this
# many push timeouts: while the chunk is held (a slow push service still answering),
# each is sent at its own time, not when the chunk is next claimed.
LOOKAHEAD_TIMEOUTS = 2.0
# Requests a push service's rate holds back longer than this (when nothing else of the
# chunk is in flight) are due again at their turn and the chunk is given back, so a
# slowed push service does not keep a sender from other chunks.
RATE_HOLD_SECONDS = 1.0
# The preparer looks for holds whose probe is due this often (not at every poll).
PROBE_LOOK_SECONDS = 1.0
_APNS = TargetKind.APNS.value


@dataclass(frozen=True)
class SiteSigning:
    """A site's credentials and a signer per VAPID key id, "" (its current key) included."""

    credentials: SiteCredentials
    signers: Mapping[str, VapidSigning]
    fetched_at: datetime
    # domain/holds.py's fingerprint of the credentials (a hold records the one refused).
    fingerprint: str = ""


class DeliveryWorkers:
    def __init__(
        self,
        settings: DeliverySettings,
        store: DeliveryStore,
        encryptor: Encryptor,
        sender: PushTransport,
        *,
        credentials: SiteCredentialsSource,
        audience: AudienceSource,
        pruner: SubscriberPruner,
        outcomes: OutcomeSink,
        clock: Clock,
        rates: RateLimits | None = None,
        apns: ApnsTransport | None = None,
        apns_credentials: ApnsCredentialsSource | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._encryptor = encryptor
        self._sender = sender
        self._credentials = credentials
        self._audience = audience
        self._pruner = pruner
        self._outcomes = outcomes
        self._clock = clock
        self._rates = rates
        # Legacy Safari: None (tests of Web Push alone) fails APNs recipients unsent.
        self._apns = apns
        self._apns_credentials = apns_credentials
        self._policy = RetryPolicy(
            max_attempts=settings.push_max_attempts,
            base_seconds=settings.push_retry_base_seconds,
            max_seconds=settings.push_retry_max_seconds,
        )
        # In flight per sender: all senders together stay within the sender's concurrency,
        # which is also the most a crash can send twice.
        self.window = max(1, settings.delivery_concurrency // settings.delivery_workers)
        self._sites: TTLCache[str, SiteSigning] = TTLCache(
            MAX_CACHED_SITES, CREDENTIALS_TTL_SECONDS
        )
        self._apns_sites: TTLCache[str, ApnsCredentials] = TTLCache(
            MAX_CACHED_SITES, CREDENTIALS_TTL_SECONDS
        )
        # None: that browser's payload holds no template and goes as it is.
        self._templates: LRUCache[tuple[str, str, str, int], PayloadTemplate | None] = (
            LRUCache(MAX_CACHED_TEMPLATES)
        )
        # A run's variants by id ({}: none), read once per run and process.
        self._variants: LRUCache[tuple[str, str], Mapping[str, VariantContent]] = LRUCache(
            MAX_CACHED_VARIANT_RUNS
        )
        # On the injected clock, so that a test moves through the windows.
        self._push_service_logged = OncePer(
            PUSH_SERVICE_LOG_SECONDS, timer=lambda: self._clock.now().timestamp()
        )
        # Push services holding a site's sends, by site and origin, as this process last
        # read or set them (every chunk of a site reads its site's afresh): a hold one
        # sender sets stops the others' requests to it at once.
        self._held: dict[str, dict[str, Hold]] = {}
        # (site, origin) -> (credentials fingerprint, when) a push service last accepted
        # a request of the site: a refusal soon after with the same credentials is the
        # subscription's own.
        self._accepted: LRUCache[tuple[str, str], tuple[str, datetime]] = LRUCache(
            MAX_CACHED_SITES
        )
        self._holds_checked_at: datetime | None = None
        self._probes_checked_at: datetime | None = None
        # What this process did (logged at stop): commits, answers, and how long the
        # senders waited for their commits and for answers (microseconds, summed).
        self.stats: Counter[str] = Counter()
        self._stopping = asyncio.Event()
        self._work_ready = asyncio.Event()
        self._preparation_ready = asyncio.Event()
        self._outbox_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # Lifecycle.

    async def open(self) -> None:
        """Opens the HTTP pool; enough to drive the `*_once` methods by hand (tests)."""
        await self._sender.start()
        if self._apns is not None:
            await self._apns.start()

    async def close(self) -> None:
        await self._sender.close()
        if self._apns is not None:
            await self._apns.close()

    async def start(self) -> None:
        await self.open()
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(
                self._send_loop(f"{self._process_id}:{n}"), name=f"delivery-sender-{n}"
            )
            for n in range(self._settings.delivery_workers)
        ]
        self._tasks.append(asyncio.create_task(self._prepare_loop(), name="delivery-preparer"))
        self._tasks.append(asyncio.create_task(self._outbox_loop(), name="delivery-outbox"))

    async def stop(self) -> None:
        """Lets each task finish its step (bounded), then closes the HTTP pool."""
        self._stopping.set()
        for event in (self._work_ready, self._preparation_ready, self._outbox_ready):
            event.set()
        if self._tasks:
            grace = self._settings.push_timeout_seconds + 5.0
            _, late = await asyncio.wait(self._tasks, timeout=grace)
            for task in late:
                task.cancel()  # its lease expires and another process resumes the work
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._tasks = []
        await self.close()
        if self.stats:
            log.info("delivery workers stopped", **self.stats)

    def run_started(self) -> None:
        """A run was handed to this process: start preparing it now, and tell reporting
        of it, not at the next poll."""
        self._preparation_ready.set()
        self._outbox_ready.set()

    def run_cancelled(self) -> None:
        """A run was cancelled: its outcomes are in the outbox; relay them now."""
        self._outbox_ready.set()

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=seconds)
        event.clear()

    async def _loop(self, name: str, step, event: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
        while not self._stopping.is_set():
            try:
                busy = await step()
            except Exception:
                log.exception("delivery background step failed; will retry", task=name)
                busy = False
            if not busy:
                await self._wait(event, self._settings.delivery_poll_seconds)

    async def _send_loop(self, owner: str) -> None:
        await self._loop("sender", lambda: self.send_once(owner), self._work_ready)

    async def _prepare_loop(self) -> None:
        async def step() -> bool:
            try:
                await self.holds_once()
            except Exception:
                log.exception("checking the push service holds failed; will retry")
            return await self.prepare_once()

        await self._loop("preparer", step, self._preparation_ready)

    async def _outbox_loop(self) -> None:
        await self._loop("outbox", self.relay_outbox_once, self._outbox_ready)

    # Preparation: the audience snapshot, page by page.

    async def prepare_once(self) -> bool:
        """Claims one preparing run and queues its audience until done, the lease is lost
        or segment fails; False when no run was waiting."""
        ended = await self._store.cut_off_due_runs(self._clock.now(), CUT_OFF_BATCH)
        for site_id, run_id, recipients in ended:
            log.info("run cut off", site_id=site_id, run_id=run_id, suppressed=recipients)
        if ended:
            self._outbox_ready.set()
        lease = await self._store.claim_preparation(
            f"{self._process_id}:prep", self._clock.now(), self._settings.delivery_lease_seconds
        )
        if lease is None:
            return bool(ended)
        plan = recipient_plan(
            timing_from_json(lease.timing),
            policy_from_json(lease.policy),
            lease.campaign_id,
            lease.snapshot_time,
        )

        bind_site(lease.site_id)
        # Queue time, per member, in this order (the delivery plan preview mirrors it):
        # in the run's sample at all, then its variant, then `plan`.
        sample = audience_sample(lease.sample, lease.campaign_id)
        variants = await self._store.run_variants(lease.site_id, lease.run_id)
        variant = recipient_variant(
            [(v.variant_id, v.weight_percent) for v in variants], lease.campaign_id
        )
        options = ContentOptions.from_json(lease.content_options)
        # Once per preparation: every page's members look theirs up in memory.
        contexts = await self._store.run_contexts(lease.site_id, lease.run_id)
        context = None
        if options.profile_properties or contexts:

            def context(member: Member) -> str:
                event = contexts.get(person_key(member.profile_id, member.subscriber_id))
                if event is None and member.profile_id:
                    event = contexts.get(person_key("", member.subscriber_id))
                return recipient_context(member.profile_properties, event or "")

        slices = audience_slices(lease.audience_filter, lease.audience_profiles)
        index, token = _resume_at(lease.page_token, len(slices))
        while not self._stopping.is_set():
            subscriber_ids, profile_ids = slices[index]
            try:
                page = await self._audience.audience_page(
                    lease.site_id,
                    lease.snapshot_time,
                    subscriber_ids,
                    token,
                    self._settings.delivery_prepare_page_size,
                    selector=lease.selector,
                    audience_key=lease.run_id,
                    profile_ids=profile_ids,
                    profile_properties=options.profile_properties,
                )
            except PeerUnavailable as error:
                await self._audience_failed(lease, error)
                return True
            # Queued with the page in one transaction: a crash resumes after it.
            stored_token = _stored_token(index, page.next_page_token, len(slices))
            held = await self._store.queue_page(
                lease,
                page.members,
                stored_token,
                chunk_size=self._settings.delivery_chunk_size,
                now=self._clock.now(),
                lease_seconds=self._settings.delivery_lease_seconds,
                plan=plan,
                context=context,
                in_sample=sample,
                variant=variant,
            )
            if not held:
                log.warning(
                    "preparation stopped: the run was cancelled, or another process took "
                    "it over",
                    run_id=lease.run_id,
                )
                return True
            self._work_ready.set()
            if not stored_token:
                self._outbox_ready.set()
                log.info("run prepared", run_id=lease.run_id)
                return True
            index, token = _resume_at(stored_token, len(slices))
        return True

    async def _audience_failed(self, lease: PreparationLease, error: PeerUnavailable) -> None:
        now = self._clock.now()
        since = lease.unavailable_since or now
        deadline = timedelta(seconds=self._settings.delivery_prepare_deadline_seconds)
        if error.permanent or now - since >= deadline:
            failure = (
                RunFailure.AUDIENCE_REFUSED if error.permanent else RunFailure.AUDIENCE_UNAVAILABLE
            )
            await self._store.fail_preparation(lease, failure, str(error), now)
            self._outbox_ready.set()
            log.warning("run preparation failed", run_id=lease.run_id, failure=failure.value)
            return
        retry_at = now + timedelta(seconds=self._policy.backoff(1))
        await self._store.postpone_preparation(lease, retry_at, since)
        log.warning("segment unavailable; run preparation postponed", run_id=lease.run_id)

    # Sending one chunk.

    async def send_once(self, owner: str) -> bool:
        """Claims and sends one due chunk; False when none was due."""
        chunk = await self._store.claim_chunk(
            owner, self._clock.now(), self._settings.delivery_lease_seconds
        )
        if chunk is None:
            return False
        bind_site(chunk.site_id)
        try:
            await self._send_chunk(chunk)
        except Exception:
            # Give it back for later; the fence keeps this a no-op if it was lost.
            retry_at = self._clock.now() + timedelta(seconds=self._policy.backoff(1))
            await self._store.release_chunk(chunk, self._clock.now(), not_before=retry_at)
            raise
        return True

    async def _send_chunk(self, chunk: ClaimedChunk) -> None:
        now = self._clock.now()
        run, stored_holds = await self._store.run_and_holds(chunk.site_id, chunk.run_id)
        assert run is not None, "a chunk's run is deleted with it"
        # Those due now, and those whose retry comes while this pass may still hold
        # the chunk: each is sent at its own time (`_send_window`).
        lookahead = timedelta(seconds=LOOKAHEAD_TIMEOUTS * self._settings.push_timeout_seconds)
        recipients = await self._store.due_recipients(chunk, now + lookahead)
        if not any(_due(r, now) for r in recipients):
            await self._store.release_chunk(chunk, now)
            return
        policy = _policy(run.policy)
        # Of a capped run, a recipient with an attempt counted holds a send of its
        # person's cap (taken when it was first admitted): it is given back if the
        # recipient ends without being sent.
        counted_before = [r for r in recipients if r.attempts] if policy.capped else []
        if now >= run.snapshot_time + timedelta(seconds=run.ttl_seconds):
            # The push services would drop it anyway: the TTL the campaign set has passed.
            # Still held by a push service refusing the site's VAPID signature: that is
            # why it was never sent.
            if await self._close_chunk(
                chunk,
                run,
                [
                    _terminal(
                        r,
                        RecipientState.EXPIRED,
                        Reason.PUSH_SERVICE_AUTH
                        if r.reason == Reason.PUSH_SERVICE_AUTH
                        else Reason.EXPIRED_TTL,
                    )
                    for r in recipients
                ],
            ):
                await self._release_caps(chunk, policy, counted_before)
            return
        try:
            inactive = await self._audience.inactive_subscribers(
                chunk.site_id, [r.subscriber_id for r in recipients]
            )
        except PeerUnavailable as error:
            if not error.permanent:
                await self._postpone(chunk, f"segment: {error}")
                return
            # Segment refuses for good (the site's subscribers are gone): none may be sent.
            log.warning("segment refused the subscriber check; chunk suppressed", error=str(error))
            if await self._close_chunk(
                chunk,
                run,
                [_terminal(r, RecipientState.SUPPRESSED, Reason.UNSUBSCRIBED) for r in recipients],
            ):
                await self._release_caps(chunk, policy, counted_before)
            return
        try:
            site = await self._site(chunk.site_id)
        except CredentialsUnavailable as error:
            if not error.permanent:
                await self._postpone(chunk, str(error))
                return
            if await self._close_chunk(
                chunk,
                run,
                [
                    _terminal(r, RecipientState.FAILED, Reason.NO_VAPID_CREDENTIALS)
                    for r in recipients
                ],
            ):
                await self._release_caps(chunk, policy, counted_before)
            return

        if any(r.vapid_key_id not in site.signers for r in recipients):
            site = await self._site_with_new_keys(chunk.site_id, site)
        site, holds = await self._site_holds(chunk.site_id, site, stored_holds)
        credentials, signers = site.credentials, site.signers
        expires_at = run.snapshot_time + timedelta(seconds=run.ttl_seconds)
        apns_site: ApnsCredentials | CredentialsUnavailable | None = None
        if self._apns is not None and any(r.target_kind == _APNS for r in recipients):
            apns_site, holds = await self._apns_site_holds(chunk.site_id, holds)
        ended: list[Terminal] = []
        live: list[PendingRecipient] = []
        deferred: list[Retry] = []
        unknown_keys: Counter[str] = Counter()
        for recipient in recipients:
            if recipient.subscriber_id in inactive:
                ended.append(_terminal(recipient, RecipientState.SUPPRESSED, Reason.UNSUBSCRIBED))
            elif recipient.target_kind == _APNS and apns_site is not None:
                if isinstance(apns_site, ApnsCredentials):
                    if holds and _apns_held_back(holds, recipient):
                        # APNs refuses the site's provider token: it waits, unsent.
                        deferred.append(
                            self._held_retry(recipient.recipient_id, expires_at, APNS_PUSH_SERVICE)
                        )
                    else:
                        live.append(recipient)
                elif apns_site.permanent:
                    ended.append(
                        _terminal(recipient, RecipientState.FAILED, Reason.APNS_NO_CREDENTIALS)
                    )
                else:
                    retry_at = now + timedelta(seconds=self._policy.backoff(1))
                    deferred.append(Retry(recipient.recipient_id, "", retry_at))
            elif recipient.target_kind != TargetKind.WEB_PUSH.value:
                # Legacy Safari (APNs) without an APNs sender in this process (tests).
                ended.append(_terminal(recipient, RecipientState.FAILED, Reason.ENDPOINT_REFUSED))
            elif recipient.vapid_key_id not in signers:
                # Subscribed under a key the site does not have (deleted, or a wrong id
                # at registration): nothing can sign for it.
                unknown_keys[recipient.vapid_key_id] += 1
                ended.append(
                    _terminal(recipient, RecipientState.FAILED, Reason.NO_VAPID_CREDENTIALS)
                )
            elif holds and _held_back(holds, recipient):
                # Its push service refuses the site's signature: it waits, unsent.
                deferred.append(
                    self._held_retry(
                        recipient.recipient_id, expires_at, endpoint_origin(recipient.endpoint)
                    )
                )
            else:
                live.append(recipient)
        if unknown_keys:
            log.warning(
                "recipients name a VAPID key the site does not have; they failed "
                "(no_vapid_credentials)",
                run_id=chunk.run_id,
                chunk_id=chunk.chunk_id,
                recipients=sum(unknown_keys.values()),
                vapid_key_ids=",".join(sorted(unknown_keys)[:5]),
            )
        # Due later in this pass: sent at their time if the chunk is still held then
        # (an APNs retry at the chunk's next claim, which comes at its time).
        later = [r for r in live if not _due(r, now)]
        if later:
            live = [r for r in live if _due(r, now)]
            later = [r for r in later if r.target_kind != _APNS]
        counted = False
        if policy.active and live:
            let_through = await self._admit(chunk, run, policy, live, ended, deferred, now)
            if let_through is None:
                log.warning("lost the lease on a chunk before sending it", chunk_id=chunk.chunk_id)
                return
            live, counted = let_through, policy.capped or policy.throttled
        # Whose send the cap holds now: those counted before and those just admitted
        # (each first attempt admitted took one). Given back if they end unsent here.
        holding = (
            {r.recipient_id: r for r in [*counted_before, *live]} if policy.capped else {}
        )
        options = ContentOptions.from_json(run.content_options)
        # A run with variants: each recipient's content is its variant's (a run's
        # recipients all have one, or none has).
        now_ids = {r.recipient_id for r in live}
        live = [*live, *later]
        variants = (
            await self._run_variants(chunk) if any(r.variant for r in live) else _NO_VARIANTS
        )
        if options.templated:
            live, payloads = await self._render(
                chunk, run, options, variants, live, credentials, ended
            )
        else:
            payloads = [
                for_recipient(
                    _payload_of(r, run.payload, options, variants),
                    r.subscriber_id,
                    engagement_token(
                        credentials.engagement_secret, chunk.site_id, chunk.run_id, r.subscriber_id
                    ),
                )
                for r in live
            ]
        apns_sends = [(r, p) for r, p in zip(live, payloads, strict=True) if r.target_kind == _APNS]
        if apns_sends:
            web = [(r, p) for r, p in zip(live, payloads, strict=True) if r.target_kind != _APNS]
            live, payloads = [r for r, _ in web], [p for _, p in web]
        bodies = await asyncio.to_thread(
            self._encryptor.encrypt_batch, payloads, [(r.p256dh, r.auth) for r in live]
        )
        sendable: deque[tuple[PendingRecipient, bytes]] = deque()
        due_later: list[tuple[datetime, PendingRecipient, bytes]] = []
        for recipient, body in zip(live, bodies, strict=True):
            if isinstance(body, Exception):
                ended.append(_terminal(recipient, RecipientState.FAILED, Reason.ENCRYPTION_ERROR))
            elif recipient.recipient_id in now_ids:
                sendable.append((recipient, body))
            else:
                assert recipient.not_before is not None
                due_later.append((recipient.not_before, recipient, body))
        if apns_sends:
            assert isinstance(apns_site, ApnsCredentials)
            if not await self._send_apns(
                chunk,
                run,
                apns_site,
                apns_sends,
                collapse_id=options.topic or topic_for(run.run_id),
                counted=counted,
                policy=policy,
                holding=holding,
                expires_at=expires_at,
            ):
                return
        await self._send_window(
            chunk,
            run,
            signers,
            credentials.vapid_subject,
            sendable,
            ended,
            topic=options.topic or topic_for(run.run_id),
            retries=deferred,
            counted=counted,
            policy=policy,
            holding=holding,
            later=due_later,
            expires_at=expires_at,
            fingerprint=site.fingerprint,
        )

    async def _send_apns(
        self,
        chunk: ClaimedChunk,
        run: Run,
        credentials: ApnsCredentials,
        sends: Sequence[tuple[PendingRecipient, bytes]],
        *,
        collapse_id: str,
        counted: bool,
        policy: Policy,
        holding: Mapping[int, PendingRecipient],
        expires_at: datetime,
    ) -> bool:
        """Sends the chunk's legacy Safari recipients (each with its PushPayload JSON) to
        APNs, `window` at a time, each batch's attempts committed before it goes and its
        answers recorded (domain/apns.py says what each means). A 403 holds the site's
        APNs sends (domain/holds.py): the refused and every later recipient wait, unsent;
        an accepted request lifts the hold. A retry is due at its own time, when the chunk
        is next claimed. False: the lease was lost (stop the chunk)."""
        assert self._apns is not None
        fingerprint = apns_fingerprint(credentials)
        queue = deque(sends)
        ended: list[Terminal] = []
        retries: list[Retry] = []
        unsent: list[PendingRecipient] = []
        unfitted = unconfirmed = 0
        answered: Counter[str] = Counter()
        while queue or ended or retries:
            batch = [queue.popleft() for _ in range(min(len(queue), self.window))]
            hold = self._held.get(chunk.site_id, {}).get(APNS_PUSH_SERVICE)
            requests: list[tuple[PendingRecipient, ApnsRequest]] = []
            for recipient, payload in batch:
                if hold is not None and hold.probe_recipient_id != recipient.recipient_id:
                    retries.append(
                        self._held_retry(recipient.recipient_id, expires_at, APNS_PUSH_SERVICE)
                    )
                    continue
                if not valid_device_token(recipient.endpoint):
                    ended.append(
                        _terminal(recipient, RecipientState.FAILED, Reason.APNS_BAD_DEVICE_TOKEN)
                    )
                    continue
                body, fitted = apns_payload(payload, credentials.url_format_string)
                unfitted += not fitted
                requests.append(
                    (
                        recipient,
                        ApnsRequest(
                            device_token=recipient.endpoint,
                            payload=body,
                            apns_id=apns_id(chunk.site_id, chunk.run_id, recipient.subscriber_id),
                            expiration=int(expires_at.timestamp()),
                            priority=priority(run.urgency),
                            collapse_id=collapse_id,
                        ),
                    )
                )
            # As for Web Push: what ended so far and the attempts about to start, in one
            # fenced commit.
            if not await self._store.record_progress(
                chunk,
                run.campaign_id,
                attempting=[] if counted else [r.recipient_id for r, _ in requests],
                terminal=ended,
                retries=retries,
                now=self._clock.now(),
                lease_seconds=self._settings.delivery_lease_seconds,
            ):
                log.warning("lost the lease on a chunk; stopped sending it to APNs",
                            chunk_id=chunk.chunk_id)  # fmt: skip
                await self._release_caps(chunk, policy, unsent)
                return False
            if ended:
                self._outbox_ready.set()
                unsent += [
                    holding[t.recipient_id]
                    for t in ended
                    if t.state is not RecipientState.SENT and t.recipient_id in holding
                ]
            ended, retries = [], []
            if not requests:
                continue
            attempted_at = self._clock.now()
            answers = await asyncio.gather(
                *(self._apns.send(credentials, request) for _, request in requests)
            )
            now = self._clock.now()
            for (recipient, _), answer in zip(requests, answers, strict=True):
                answered[answer.reason or str(answer.status or answer.error or "")] += 1
                if answer.status == 403:
                    # The site's key or provider token: every device would be refused.
                    retries.append(
                        replace(
                            self._held_retry(recipient.recipient_id, expires_at, APNS_PUSH_SERVICE),
                            attempt=attempt_entry(
                                attempted_at, 403, Reason.PUSH_SERVICE_AUTH.value, APNS_HOST
                            ),
                        )
                    )
                    await self._hold(
                        chunk,
                        APNS_PUSH_SERVICE,
                        PushAnswer(status=403, body_excerpt=answer.reason),
                        fingerprint,
                        recipient,
                        now,
                        what="APNs refuses the site's provider token",
                    )
                    continue
                if answer.status == 200 and APNS_PUSH_SERVICE in self._held.get(chunk.site_id, {}):
                    await self._lift(chunk.site_id, [APNS_PUSH_SERVICE], "accepted", now)
                    retries = [
                        replace(r, not_before=now) if r.reason == Reason.PUSH_SERVICE_AUTH else r
                        for r in retries
                    ]
                outcome = self._apns_verdict(recipient, answer, attempted_at, now, expires_at)
                if isinstance(outcome, Retry):
                    retries.append(outcome)
                else:
                    ended.append(outcome)
                unconfirmed += answer.unconfirmed
        await self._release_caps(chunk, policy, unsent)
        if unfitted:
            log.warning(
                "click URLs do not fit the site's legacy Safari URL format; those pushes "
                "open the format with empty url-args",
                run_id=chunk.run_id,
                recipients=unfitted,
                url_format_string=credentials.url_format_string,
            )
        if unconfirmed:
            log.warning(
                "APNs connections closed before answering; those pushes count as sent and "
                "are not sent again (APNs may have taken them, and removes no duplicate)",
                run_id=chunk.run_id,
                recipients=unconfirmed,
            )
        if answered.get("TooManyProviderTokenUpdates") and self._push_service_logged(
            ("apns token updates", credentials.team_id)
        ):
            log.error(
                "APNs refuses the team's provider token as updated too often; another "
                "sender with this team's key may be making its own tokens",
                apns_team_id=credentials.team_id,
            )
        return True

    def _apns_verdict(
        self,
        recipient: PendingRecipient,
        answer: ApnsAnswer,
        attempted_at: datetime,
        now: datetime,
        expires_at: datetime,
    ) -> Terminal | Retry:
        """The outcome (or retry) of one APNs answer other than a 403."""
        status = answer.status or 0
        verdict = decide_apns(answer, recipient.attempts + 1, self._policy, now, expires_at)
        if (status == 429 or answer.reason == "TooManyRequests") and self._push_service_logged(
            ("throttled", APNS_PUSH_SERVICE)
        ):
            log.warning("APNs is throttling us", push_service=APNS_HOST, status=429,
                        reason=answer.reason, window_seconds=PUSH_SERVICE_LOG_SECONDS)  # fmt: skip
        match verdict:
            case Sent():
                # An unconfirmed one (written, no answer) shows its lost answer.
                meant = Reason.CONNECTION_ERROR.value if answer.unconfirmed else ""
                return _terminal(
                    recipient,
                    RecipientState.SENT,
                    None,
                    attempt=attempt_entry(attempted_at, status, meant, APNS_HOST),
                )
            case Failed(reason=reason, unsubscribe=unsubscribe):
                if unsubscribe:
                    log.info(
                        "APNs says a device token is no longer valid; unsubscribing it",
                        subscriber_id=recipient.subscriber_id,
                        apns_reason=answer.reason,
                        invalid_since_ms=answer.timestamp_ms or 0,
                    )
                return _terminal(
                    recipient,
                    RecipientState.FAILED,
                    reason,
                    unsubscribe=unsubscribe,
                    attempt=attempt_entry(attempted_at, status, reason.value, APNS_HOST),
                )
            case Expired(reason=reason):
                return _terminal(
                    recipient,
                    RecipientState.EXPIRED,
                    Reason.EXPIRED_TTL,
                    attempt=attempt_entry(attempted_at, status, reason.value, APNS_HOST),
                )
            case RetryLater(reason=reason, delay_seconds=delay):
                return Retry(
                    recipient.recipient_id,
                    reason.value,
                    now + timedelta(seconds=delay),
                    attempt_entry(attempted_at, status, reason.value, APNS_HOST),
                )
        raise AssertionError(verdict)

    async def _apns_site(self, site_id: str, *, refresh: bool = False) -> ApnsCredentials:
        """The site's legacy Safari credentials, cached for CREDENTIALS_TTL_SECONDS."""
        cached = None if refresh else self._apns_sites.get(site_id)
        if cached is not None:
            return cached
        if self._apns_credentials is None:
            raise CredentialsUnavailable("no legacy Safari credentials source", permanent=True)
        found = await self._apns_credentials.apns_credentials(site_id)
        self._apns_sites[site_id] = found
        return found

    async def _apns_site_holds(
        self, site_id: str, holds: dict[str, Hold]
    ) -> tuple[ApnsCredentials | CredentialsUnavailable, dict[str, Hold]]:
        """The site's APNs credentials (or why there are none) and its holds, an APNs
        hold recorded with other credentials lifted (asked again first: the cached ones
        may be the older)."""
        try:
            found = await self._apns_site(site_id)
            hold = holds.get(APNS_PUSH_SERVICE)
            if hold is not None and hold.credentials_fingerprint != apns_fingerprint(found):
                found = await self._apns_site(site_id, refresh=True)
        except CredentialsUnavailable as error:
            log.warning("no legacy Safari credentials for the site's APNs recipients",
                        error=str(error), permanent=error.permanent)  # fmt: skip
            return error, holds
        hold = holds.get(APNS_PUSH_SERVICE)
        if hold is not None and hold.credentials_fingerprint != apns_fingerprint(found):
            await self._lift(site_id, [APNS_PUSH_SERVICE], "credentials changed", self._clock.now())
            holds = {o: h for o, h in holds.items() if o != APNS_PUSH_SERVICE}
        return found, holds

    async def _admit(
        self,
        chunk: ClaimedChunk,
        run: Run,
        policy: Policy,
        live: list[PendingRecipient],
        ended: list[Terminal],
        deferred: list[Retry],
        now: datetime,
    ) -> list[PendingRecipient] | None:
        """The recipients the run's policies let through now. Inside their quiet hours
        they end suppressed dnd or wait for the window's end; over the frequency cap
        they end suppressed frequency_cap (first attempts only: a retry was counted
        when it was first admitted); past this minute's throttle they wait for the next
        minute. When caps or throttle apply, the admitted have their attempt counted in
        the same transaction (so `_send_window` must not count it again). None: the
        lease was lost."""
        open_: list[PendingRecipient] = []
        for recipient in live:
            at, reason = (
                quiet_hours(policy, recipient.timezone, now, policy.default_timezone)
                if policy.quiet
                else (now, "")
            )
            if reason:
                ended.append(_terminal(recipient, RecipientState.SUPPRESSED, Reason.DND))
            elif at is not None and at > now:
                deferred.append(Retry(recipient.recipient_id, "", at))
            else:
                open_.append(recipient)
        if not (policy.capped or policy.throttled) or not open_:
            return open_
        reservations = (
            {r.recipient_id: _cap_key(policy, r, now) for r in open_ if r.attempts == 0}
            if policy.capped
            else {}
        )
        admission = await self._store.admit_sends(
            chunk,
            [r.recipient_id for r in open_],
            reservations=reservations,
            cap_per_day=policy.cap_per_day,
            cap_per_week=policy.cap_per_week,
            rate_limits={
                f"campaign:{run.campaign_id}": policy.campaign_max_per_minute,
                "site": policy.site_max_per_minute,
            },
            now=now,
        )
        if admission is None:
            return None
        by_id = {r.recipient_id: r for r in open_}
        for recipient_id in admission.capped:
            ended.append(
                _terminal(by_id[recipient_id], RecipientState.SUPPRESSED, Reason.FREQUENCY_CAP)
            )
        next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        deferred.extend(Retry(recipient_id, "", next_minute) for recipient_id in admission.deferred)
        return [by_id[recipient_id] for recipient_id in admission.admitted]

    async def _release_caps(
        self, chunk: ClaimedChunk, policy: Policy, unsent: Sequence[PendingRecipient]
    ) -> None:
        """Gives back the frequency-cap sends of recipients whose send was counted (when
        first admitted) and whose outcome, now committed, is not sent: the cap counts
        pushes sent. The day is today's, which is the admitting day unless retries ran
        past local midnight."""
        if policy.capped and unsent:
            now = self._clock.now()
            await self._store.release_sends(
                chunk.site_id, [_cap_key(policy, r, now) for r in unsent], now
            )

    async def _run_variants(self, chunk: ClaimedChunk) -> Mapping[str, VariantContent]:
        """The chunk's run's variants by id, read once per run (per process)."""
        key = (chunk.site_id, chunk.run_id)
        found = self._variants.get(key)
        if found is None:
            stored = await self._store.run_variants(chunk.site_id, chunk.run_id)
            found = self._variants[key] = {
                v.variant_id: VariantContent(
                    v.variant_id,
                    v.weight_percent,
                    v.payload,
                    ContentOptions.from_json(v.content_options),
                )
                for v in stored
            }
        return found

    async def _render(
        self,
        chunk: ClaimedChunk,
        run: Run,
        options: ContentOptions,
        variants: Mapping[str, VariantContent],
        live: list[PendingRecipient],
        credentials: SiteCredentials,
        ended: list[Terminal],
    ) -> tuple[list[PendingRecipient], list[bytes]]:
        """Each recipient's payload from the run's templates (its variant's, and its
        browser's payload if there is one) and its context; those whose copy cannot be
        made end in `ended` without a request. Returns the recipients left and their
        payloads."""
        templates: dict[tuple[str, int], PayloadTemplate | None] = {}
        for variant, browser in {(r.variant if variants else "", r.browser) for r in live}:
            key = (chunk.site_id, chunk.run_id, variant, browser)
            if key not in self._templates:
                # Compiled once per run, variant and browser (per process), not per chunk.
                content = variants.get(variant)
                payload, made_with = (
                    (content.payload, content.options) if content else (run.payload, options)
                )
                self._templates[key] = compile_payload(
                    made_with.payload_for(browser, payload), made_with
                )
            templates[(variant, browser)] = self._templates[key]
        secret = credentials.engagement_secret

        def render() -> tuple[list[PendingRecipient], list[bytes], list[Terminal]]:
            kept: list[PendingRecipient] = []
            payloads: list[bytes] = []
            refused: list[Terminal] = []
            for r in live:
                token = engagement_token(secret, chunk.site_id, chunk.run_id, r.subscriber_id)
                template = templates[(r.variant if variants else "", r.browser)]
                if template is None:
                    made: bytes | Reason = for_recipient(
                        _payload_of(r, run.payload, options, variants), r.subscriber_id, token
                    )
                else:
                    made = render_for_recipient(template, r.context, r.subscriber_id, token)
                if isinstance(made, Reason):
                    state = (
                        RecipientState.SUPPRESSED
                        if made is Reason.PERSONALIZATION_MISSING
                        else RecipientState.FAILED
                    )
                    refused.append(_terminal(r, state, made))
                else:
                    kept.append(r)
                    payloads.append(made)
            return kept, payloads, refused

        # Templates cost CPU: off the event loop, like the encryption that follows.
        kept, payloads, refused = await asyncio.to_thread(render)
        if refused:
            log.info(
                "recipients got no personalized copy",
                run_id=chunk.run_id,
                chunk_id=chunk.chunk_id,
                reasons=dict(Counter(t.reason for t in refused)),
            )
        ended.extend(refused)
        return kept, payloads

    async def _send_window(
        self,
        chunk: ClaimedChunk,
        run: Run,
        signers: Mapping[str, VapidSigning],
        subject: str,
        sendable: deque[tuple[PendingRecipient, bytes]],
        ended: list[Terminal],
        *,
        topic: str,
        retries: list[Retry] | None = None,
        counted: bool = False,
        policy: Policy | None = None,
        holding: Mapping[int, PendingRecipient] | None = None,
        later: Sequence[tuple[datetime, PendingRecipient, bytes]] = (),
        expires_at: datetime | None = None,
        fingerprint: str = "",
    ) -> None:
        """Sends `sendable`, keeping at most `window` requests in flight, recording each
        outcome. `ended` and `retries` are recorded with the first commit. `counted`:
        the attempt of every recipient in `sendable` was already counted (the policies
        admitted it, in the same transaction). `holding`: the recipients whose send the
        frequency cap counted; each that ends here other than sent gives it back once
        its outcome is committed (so a lost lease never gives one back twice).

        Each recipient's retry time is its own: a retry (and each of `later`, due at
        its time) whose time comes while the chunk is still held — other requests in
        flight, a slow push service among them — is sent then (its encrypted body
        again; through the policies' admission, which counts it, for a run with
        policies); the others wait in the database for the chunk's next claim, which
        comes at the earliest of them. With rates, a push service out of tokens holds
        back only its own requests; `expires_at`: the message's TTL, past which no
        retry is scheduled (the recipient ends expired).

        A push service refusing the site's VAPID signature (401/403, `fingerprint`: the
        credentials signing) holds the site's sends to it (domain/holds.py): the
        refused recipient and every later one to it wait, unsent; one accepting a
        request lifts its hold."""
        headers = {
            "TTL": str(run.ttl_seconds),
            "Urgency": run.urgency,
            "Topic": topic,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        # Per (push service origin, VAPID key id): one JWT each per chunk.
        authorizations: dict[tuple[str, str], str] = {}
        stream = self._sender.stream(headers)
        # Recipients in flight by their request's tag, with when the request was made
        # (its attempt_history's time) and its body (sent again by a retry in this pass).
        sending: dict[int, tuple[PendingRecipient, datetime, bytes]] = {}
        tags = itertools.count()
        retries = list(retries or ())
        holding = dict(holding or {})
        # Retries (and `later`) by due time: sent in this pass if it is still going then.
        again: list[tuple[datetime, int, PendingRecipient, bytes]] = []
        order = itertools.count()
        for due_at, recipient, body in later:
            heapq.heappush(again, (due_at, next(order), recipient, body))
        # Requests a push service's rate holds back, per origin, and when (event loop
        # time) its next token comes.
        rates = self._rates
        held: dict[str, deque[tuple[PendingRecipient, bytes]]] = {}
        held_until: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        # Recipients whose cap send is to be given back: their outcome is committed.
        unsent: list[PendingRecipient] = []
        # Recipients whose attempts ran out in this pass, by reason (logged once after).
        exhausted: Counter[str] = Counter()
        # Push services that accepted a request of this pass.
        accepted: set[str] = set()
        lease = self._settings.delivery_lease_seconds
        try:
            while sendable or stream.in_flight or ended or retries or held:
                now = self._clock.now()
                if again and again[0][0] <= now and (sendable or stream.in_flight or held):
                    due_now: list[tuple[PendingRecipient, bytes]] = []
                    while again and again[0][0] <= now:
                        _, _, recipient, body = heapq.heappop(again)
                        due_now.append((recipient, body))
                    if policy is not None and policy.active:
                        # As at a claim: quiet hours, caps, throttle (counting them).
                        bodies = {r.recipient_id: body for r, body in due_now}
                        admitted = await self._admit(
                            chunk, run, policy, [r for r, _ in due_now], ended, retries, now
                        )
                        if admitted is None:
                            await self._release_caps(chunk, policy, unsent)
                            return
                        if policy.capped:
                            holding.update((r.recipient_id, r) for r in admitted)
                        due_now = [(r, bodies[r.recipient_id]) for r in admitted]
                    sendable.extendleft(reversed(due_now))
                room = self.window - stream.in_flight
                if rates is None:
                    launch = [sendable.popleft() for _ in range(min(len(sendable), room))]
                else:
                    launch = self._rate_admitted(sendable, held, held_until, room, loop.time())
                if launch and self._held.get(chunk.site_id):
                    # A push service holding the site's sends (set by a refusal in this
                    # pass, or by another sender): its requests wait instead.
                    launch = self._not_held(chunk.site_id, launch, retries, expires_at)
                if launch or ended or retries:
                    # Results so far and the attempts about to start, in one fenced
                    # commit: nothing is sent that is not counted, nothing finished
                    # stays unrecorded.
                    started = time.perf_counter()
                    held_lease = await self._store.record_progress(
                        chunk,
                        run.campaign_id,
                        attempting=[] if counted else [r.recipient_id for r, _ in launch],
                        terminal=ended,
                        retries=retries,
                        now=self._clock.now(),
                        lease_seconds=lease,
                    )
                    self.stats["commit_wait_us"] += int((time.perf_counter() - started) * 1e6)
                    self.stats["commits"] += 1
                    self.stats["answers_committed"] += len(ended) + len(retries)
                    if not held_lease:
                        log.warning(
                            "lost the lease on a chunk (its run was cancelled, or another "
                            "process took it over); stopped sending it",
                            chunk_id=chunk.chunk_id,
                        )
                        if policy is not None:
                            await self._release_caps(chunk, policy, unsent)
                        return
                    if ended:
                        self._outbox_ready.set()
                        unsent += [
                            holding[t.recipient_id]
                            for t in ended
                            if t.state is not RecipientState.SENT and t.recipient_id in holding
                        ]
                    ended, retries = [], []
                if launch:
                    requests = []
                    launched = self._clock.now()
                    for recipient, body in launch:
                        origin = endpoint_origin(recipient.endpoint)
                        signed_for = (origin, recipient.vapid_key_id)
                        authorization = authorizations.get(signed_for)
                        if authorization is None:
                            authorization = signers[recipient.vapid_key_id].authorization(
                                audience=origin, subject=subject
                            )
                            authorizations[signed_for] = authorization
                        tag = next(tags)
                        sending[tag] = (recipient, launched, body)
                        requests.append(PushRequest(tag, recipient.endpoint, body, authorization))
                    stream.submit(requests)
                # How long to wait for answers: until the next retry of this pass is
                # due, or a held-back push service's next token.
                wake: float | None = None
                if again:
                    wake = (again[0][0] - self._clock.now()).total_seconds()
                if held and stream.in_flight < self.window:
                    token_in = min(held_until.values()) - loop.time()
                    wake = token_in if wake is None else min(wake, token_in)
                if not stream.in_flight:
                    if not held or launch:
                        continue
                    token_in = max(0.0, min(held_until.values()) - loop.time())
                    if token_in > RATE_HOLD_SECONDS and not counted:
                        retries += self._rate_deferred(held, held_until, loop.time())
                        continue
                    await asyncio.sleep(token_in)
                    continue
                started = time.perf_counter()
                if wake is None:
                    done = await stream.answers()
                elif wake > 0:
                    try:
                        done = await asyncio.wait_for(stream.answers(), wake)
                    except TimeoutError:
                        done = stream.ready()
                else:
                    done = stream.ready()
                self.stats["answer_wait_us"] += int((time.perf_counter() - started) * 1e6)
                if done and len(done) < self.window // 4 and stream.in_flight:
                    # Group commit: a moment more gathers more answers into one transaction.
                    await asyncio.sleep(GROUP_COMMIT_SECONDS)
                    done.extend(stream.ready())
                now = self._clock.now()
                for tag, answer in done:
                    recipient, attempted_at, body = sending.pop(tag)
                    origin = endpoint_origin(recipient.endpoint)
                    if rates is not None:
                        rates.answered(origin, answer.status)
                    if answer.status in (401, 403, 429):
                        self._push_service_answered(chunk, recipient, answer)
                    host = _origin_host(origin)
                    status = answer.status or 0
                    if status in SENT_STATUSES and origin not in accepted:
                        accepted.add(origin)
                        self._accepted[(chunk.site_id, origin)] = (fingerprint, now)
                        if origin in self._held.get(chunk.site_id, {}):
                            await self._lift(chunk.site_id, [origin], "accepted", now)
                            # Refused earlier in this pass, not yet committed: due now.
                            retries = [
                                replace(r, not_before=now)
                                if r.reason == Reason.PUSH_SERVICE_AUTH
                                else r
                                for r in retries
                            ]
                    elif status in AUTH_STATUSES and not self._accepted_lately(
                        chunk.site_id, origin, fingerprint, now
                    ):
                        # The site's signature refused: it waits, held, with the rest.
                        retries.append(
                            replace(
                                self._held_retry(recipient.recipient_id, expires_at, origin),
                                attempt=attempt_entry(
                                    attempted_at, status, Reason.PUSH_SERVICE_AUTH.value, host
                                ),
                            )
                        )
                        if not await self._hold(
                            chunk, origin, answer, fingerprint, recipient, now
                        ):
                            # Accepted meanwhile, so lifted at once: due now.
                            retries = [
                                replace(r, not_before=now)
                                if r.reason == Reason.PUSH_SERVICE_AUTH
                                else r
                                for r in retries
                            ]
                        continue
                    match decide(answer, recipient.attempts + 1, self._policy, now, expires_at):
                        case Sent():
                            ended.append(
                                _terminal(
                                    recipient,
                                    RecipientState.SENT,
                                    None,
                                    attempt=attempt_entry(attempted_at, status, "", host),
                                )
                            )
                        case Failed(reason=reason, unsubscribe=unsubscribe):
                            if reason in RETRIED_REASONS:
                                exhausted[reason.value] += 1
                            ended.append(
                                _terminal(
                                    recipient,
                                    RecipientState.FAILED,
                                    reason,
                                    unsubscribe=unsubscribe,
                                    attempt=attempt_entry(attempted_at, status, reason.value, host),
                                )
                            )
                        case Expired(reason=reason):
                            # Its retry would come after the TTL: no push service
                            # would deliver it then.
                            ended.append(
                                _terminal(
                                    recipient,
                                    RecipientState.EXPIRED,
                                    Reason.EXPIRED_TTL,
                                    attempt=attempt_entry(attempted_at, status, reason.value, host),
                                )
                            )
                        case RetryLater(reason=reason, delay_seconds=delay):
                            retry_at = now + timedelta(seconds=delay)
                            retries.append(
                                Retry(
                                    recipient.recipient_id,
                                    reason.value,
                                    retry_at,
                                    attempt_entry(attempted_at, status, reason.value, host),
                                )
                            )
                            attempted = replace(recipient, attempts=recipient.attempts + 1)
                            heapq.heappush(again, (retry_at, next(order), attempted, body))
        finally:
            stream.close()
        if policy is not None:
            await self._release_caps(chunk, policy, unsent)
        if exhausted:
            log.warning(
                "push retries exhausted",
                run_id=chunk.run_id,
                chunk_id=chunk.chunk_id,
                recipients=sum(exhausted.values()),
                attempts=self._policy.max_attempts,
                reasons=dict(exhausted),
            )
        await self._store.release_chunk(chunk, self._clock.now())

    def _rate_admitted(
        self,
        sendable: deque[tuple[PendingRecipient, bytes]],
        held: dict[str, deque[tuple[PendingRecipient, bytes]]],
        held_until: dict[str, float],
        room: int,
        clock: float,
    ) -> list[tuple[PendingRecipient, bytes]]:
        """Up to `room` requests whose push service has a token now: held-back ones
        first (in order), then `sendable`'s; a request to a push service out of tokens
        joins its held-back queue, so it holds back only that push service."""
        rates = self._rates
        assert rates is not None
        launch: list[tuple[PendingRecipient, bytes]] = []
        for origin in list(held):
            if room <= 0:
                break
            if held_until[origin] > clock:
                continue
            queue = held[origin]
            while queue and room > 0:
                wait = rates.delay(origin)
                if wait > 0:
                    held_until[origin] = clock + wait
                    break
                launch.append(queue.popleft())
                room -= 1
            if not queue:
                del held[origin], held_until[origin]
        while sendable and room > 0:
            recipient, body = sendable.popleft()
            origin = endpoint_origin(recipient.endpoint)
            queue = held.get(origin)
            if queue is not None:
                queue.append((recipient, body))
                continue
            wait = rates.delay(origin)
            if wait > 0:
                held[origin] = deque([(recipient, body)])
                held_until[origin] = clock + wait
                continue
            launch.append((recipient, body))
            room -= 1
        return launch

    def _rate_deferred(
        self,
        held: dict[str, deque[tuple[PendingRecipient, bytes]]],
        held_until: dict[str, float],
        clock: float,
    ) -> list[Retry]:
        """The held-back requests, due again each at its turn at its push service's
        current rate (no attempt made, none counted); the chunk then goes back."""
        rates = self._rates
        assert rates is not None
        now = self._clock.now()
        deferred: list[Retry] = []
        for origin, queue in held.items():
            rate = rates.rate(origin) or 1.0
            first = max(0.0, held_until[origin] - clock)
            for n, (recipient, _) in enumerate(queue):
                at = now + timedelta(seconds=first + n / rate)
                deferred.append(Retry(recipient.recipient_id, "", at))
        held.clear()
        held_until.clear()
        return deferred

    # Push services holding a site's sends (domain/holds.py).

    def _held_retry(
        self, recipient_id: int, expires_at: datetime | None, push_service: str
    ) -> Retry:
        """A held recipient waits unsent: until its hold at `push_service` is lifted
        (which makes it due at once, even a lift while this retry is being committed),
        else its TTL (where it ends expired push_service_auth), looking again at most
        HELD_WAIT_SECONDS later."""
        until = self._clock.now() + timedelta(seconds=HELD_WAIT_SECONDS)
        if expires_at is not None:
            until = min(until, expires_at)
        return Retry(recipient_id, Reason.PUSH_SERVICE_AUTH.value, until, held_at=push_service)

    def _not_held(
        self,
        site_id: str,
        launch: list[tuple[PendingRecipient, bytes]],
        retries: list[Retry],
        expires_at: datetime | None,
    ) -> list[tuple[PendingRecipient, bytes]]:
        """`launch` without the requests to push services holding the site's sends
        (their probe excepted), which join `retries` as held."""
        holds = self._held.get(site_id, {})
        kept = []
        for recipient, body in launch:
            if _held_back(holds, recipient):
                retries.append(
                    self._held_retry(
                        recipient.recipient_id, expires_at, endpoint_origin(recipient.endpoint)
                    )
                )
            else:
                kept.append((recipient, body))
        return kept

    def _accepted_lately(self, site_id: str, origin: str, fingerprint: str, now: datetime) -> bool:
        """Whether `origin` accepted a request of the site signed with the same
        credentials within ACCEPTED_PROVES_SECONDS: a refusal then is the
        subscription's own (another applicationServerKey), not the site's."""
        seen = self._accepted.get((site_id, origin))
        return (
            seen is not None
            and seen[0] == fingerprint
            and (now - seen[1]).total_seconds() <= ACCEPTED_PROVES_SECONDS
        )

    async def _hold(
        self,
        chunk: ClaimedChunk,
        origin: str,
        answer: PushAnswer,
        fingerprint: str,
        recipient: PendingRecipient,
        now: datetime,
        *,
        what: str = "push service refuses the site's VAPID signature",
    ) -> bool:
        """Holds the site's sends to `origin`, which refused `recipient` (its probe, or
        the first refusal): stored, so every sender and process holds them too. False
        when `origin` accepted a request of the site while the hold was being stored
        (that acceptance found no hold to lift): the hold is lifted again at once."""
        site_holds = self._held.setdefault(chunk.site_id, {})
        known = site_holds.get(origin)
        if known is not None and known.probe_recipient_id != recipient.recipient_id:
            return True
        hold = await self._store.hold_push_service(
            chunk.site_id,
            origin,
            http_status=answer.status or 0,
            detail=answer.body_excerpt[:DETAIL_CHARACTERS],
            fingerprint=fingerprint,
            now=now,
            probe_seconds=FIRST_PROBE_SECONDS,
            refused_probe=recipient.recipient_id,
        )
        self._held.setdefault(chunk.site_id, {})[origin] = hold
        if self._accepted_lately(chunk.site_id, origin, fingerprint, now):
            await self._lift(chunk.site_id, [origin], "accepted while the hold was stored", now)
            return False
        log.warning(
            f"{what}; its sends there are held",
            push_service=origin,
            status=hold.http_status,
            response_excerpt=hold.detail,
            since=hold.since.isoformat(),
            next_probe_time=hold.next_probe_time.isoformat(),
            probe=known is not None,
        )
        await self._refresh_hold_gauge()
        return True

    async def _lift(self, site_id: str, origins: list[str] | None, why: str, now: datetime) -> None:
        """Lifts the site's holds on `origins` (None: all): its held recipients are due now."""
        lifted = await self._store.lift_holds(site_id, origins, now)
        site_holds = self._held.get(site_id, {})
        for origin in origins if origins is not None else list(site_holds):
            site_holds.pop(origin, None)
        if not site_holds:
            self._held.pop(site_id, None)
        if lifted:
            log.info("push service hold lifted", push_services=",".join(lifted), why=why)
            self._work_ready.set()
            await self._refresh_hold_gauge()

    async def _site_holds(
        self, site_id: str, site: SiteSigning, holds: dict[str, Hold]
    ) -> tuple[SiteSigning, dict[str, Hold]]:
        """The site's holds as stored (`holds`), those recorded with other credentials
        than the site's lifted (asking campaign again first, at most once per site every
        CREDENTIALS_REFRESH_SECONDS: the cached ones may be the older), with the
        site's credentials as they were compared."""
        # An APNs hold is compared with the site's APNs credentials (_apns_site_holds).
        vapid = {o: h for o, h in holds.items() if o != APNS_PUSH_SERVICE}
        if vapid and any(h.credentials_fingerprint != site.fingerprint for h in vapid.values()):
            site = await self._site_with_new_keys(site_id, site)
            changed = [
                origin
                for origin, hold in vapid.items()
                if hold.credentials_fingerprint != site.fingerprint
            ]
            if changed:
                await self._lift(site_id, changed, "credentials changed", self._clock.now())
                holds = {o: h for o, h in holds.items() if o not in changed}
        if holds:
            self._held[site_id] = holds
        else:
            self._held.pop(site_id, None)
        return site, holds

    async def holds_once(self) -> None:
        """The preparer's look at the holds, every PROBE_LOOK_SECONDS: each whose
        probe time came has one held recipient due now (claimed once across processes),
        and every CREDENTIALS_CHECK_SECONDS the held sites' credentials are fetched
        again: a hold recorded with other ones is lifted."""
        now = self._clock.now()
        looked = self._probes_checked_at
        if looked is not None and (now - looked).total_seconds() < PROBE_LOOK_SECONDS:
            return
        self._probes_checked_at = now
        probes = await self._store.claim_due_probes(now, MAX_PROBE_SECONDS)
        for hold, recipient_id in probes:
            if recipient_id:
                log.info(
                    "probing a push service holding a site's sends",
                    site_id=hold.site_id,
                    push_service=hold.push_service,
                    recipient_id=recipient_id,
                )
            else:
                self._held.get(hold.site_id, {}).pop(hold.push_service, None)
                log.info(
                    "push service hold dropped: none of its recipients waits any more",
                    site_id=hold.site_id,
                    push_service=hold.push_service,
                )
        if probes:
            self._work_ready.set()
            await self._refresh_hold_gauge()
        checked = self._holds_checked_at
        if checked is not None and (now - checked).total_seconds() < CREDENTIALS_CHECK_SECONDS:
            return
        self._holds_checked_at = now
        holds = await self._store.all_holds()
        for site_id in sorted({h.site_id for h in holds if h.push_service != APNS_PUSH_SERVICE}):
            try:
                site = await self._site(site_id, refresh=True)
            except CredentialsUnavailable as error:
                log.warning("could not check a held site's credentials", site_id=site_id,
                            error=str(error))  # fmt: skip
                continue
            changed = [
                h.push_service
                for h in holds
                if h.site_id == site_id
                and h.push_service != APNS_PUSH_SERVICE
                and h.credentials_fingerprint != site.fingerprint
            ]
            if changed:
                await self._lift(site_id, changed, "credentials changed", now)
        for hold in holds:
            if hold.push_service != APNS_PUSH_SERVICE or self._apns_credentials is None:
                continue
            try:
                apns_site = await self._apns_site(hold.site_id, refresh=True)
            except CredentialsUnavailable as error:
                log.warning("could not check a held site's APNs credentials",
                            site_id=hold.site_id, error=str(error))  # fmt: skip
                continue
            if apns_fingerprint(apns_site) != hold.credentials_fingerprint:
                await self._lift(hold.site_id, [APNS_PUSH_SERVICE], "credentials changed", now)
        await self._refresh_hold_gauge()

    async def _refresh_hold_gauge(self) -> None:
        holds = await self._store.all_holds()
        set_delivery_auth_holds(Counter(push_service_label(h.push_service) for h in holds))

    def _push_service_answered(
        self, chunk: ClaimedChunk, recipient: PendingRecipient, answer: PushAnswer
    ) -> None:
        """Logs a push service throttling us (per push service) or refusing the site's
        VAPID signature (per push service and site), once per window."""
        origin = endpoint_origin(recipient.endpoint)
        if answer.status == 429:
            if self._push_service_logged(("throttled", origin)):
                log.warning(
                    "push service is throttling us",
                    push_service=origin,
                    status=429,
                    retry_after=answer.retry_after or "",
                    window_seconds=PUSH_SERVICE_LOG_SECONDS,
                )
        elif self._push_service_logged(("vapid refused", origin, chunk.site_id)):
            log.warning(
                "push service refused our VAPID signature",
                push_service=origin,
                status=answer.status,
                run_id=chunk.run_id,
                response_excerpt=answer.body_excerpt,
                window_seconds=PUSH_SERVICE_LOG_SECONDS,
            )

    async def _close_chunk(self, chunk: ClaimedChunk, run: Run, ended: Sequence[Terminal]) -> bool:
        """Records `ended` and gives the chunk up; False: the lease was lost (nothing
        recorded)."""
        if not await self._store.record_progress(
            chunk,
            run.campaign_id,
            terminal=ended,
            now=self._clock.now(),
            lease_seconds=self._settings.delivery_lease_seconds,
        ):
            return False
        await self._store.release_chunk(chunk, self._clock.now())
        self._outbox_ready.set()
        return True

    async def _postpone(self, chunk: ClaimedChunk, why: str) -> None:
        log.warning("chunk postponed", chunk_id=chunk.chunk_id, why=why)
        retry_at = self._clock.now() + timedelta(seconds=self._policy.backoff(1))
        await self._store.release_chunk(chunk, self._clock.now(), not_before=retry_at)

    async def _site_with_new_keys(self, site_id: str, site: SiteSigning) -> SiteSigning:
        """A chunk names a key the cached credentials lack: perhaps imported since, so
        ask campaign again, at most once per site every CREDENTIALS_REFRESH_SECONDS. If
        campaign cannot answer, the cached credentials still sign everyone else."""
        now = self._clock.now()
        if now - site.fetched_at < timedelta(seconds=CREDENTIALS_REFRESH_SECONDS):
            return site
        try:
            return await self._site(site_id, refresh=True)
        except CredentialsUnavailable as error:
            log.warning("could not refresh the site's credentials; using the cached ones",
                        error=str(error))  # fmt: skip
            kept = replace(site, fetched_at=now)
            self._sites[site_id] = kept
            return kept

    async def _site(self, site_id: str, *, refresh: bool = False) -> SiteSigning:
        """The site's credentials and signers, cached for CREDENTIALS_TTL_SECONDS."""
        cached = None if refresh else self._sites.get(site_id)
        if cached is not None:
            return cached
        credentials = await self._credentials.site_credentials(site_id)
        try:
            current = self._encryptor.signer(credentials.vapid_private_key)
        except Exception as error:
            raise CredentialsUnavailable(
                f"the site's VAPID private key is unusable: {type(error).__name__}", permanent=True
            ) from None
        signers: dict[str, VapidSigning] = {"": current}
        for key_id, private_key in credentials.vapid_keys.items():
            if key_id == credentials.current_vapid_key_id:
                signers[key_id] = current
                continue
            try:
                signers[key_id] = self._encryptor.signer(private_key)
            except Exception as error:
                # Its subscribers fail (no_vapid_credentials); the others still send.
                log.warning(
                    "a VAPID key of the site is unusable; its subscribers cannot be signed for",
                    vapid_key_id=key_id,
                    error=type(error).__name__,
                )
        if credentials.current_vapid_key_id:
            signers[credentials.current_vapid_key_id] = current
        site = SiteSigning(
            credentials, signers, self._clock.now(), credentials_fingerprint(credentials)
        )
        self._sites[site_id] = site
        return site

    # The outbox: outcomes and audiences to reporting, gone subscribers to segment.

    async def relay_outbox_once(self) -> bool:
        """Claims one batch of outbox rows and hands it to its peer; False when empty."""
        owner = f"{self._process_id}:outbox"
        now = self._clock.now()
        items = await self._store.claim_outbox(
            (OutboxKind.START, OutboxKind.OUTCOME, OutboxKind.AUDIENCE, OutboxKind.UNSUBSCRIBE),
            owner,
            now,
            self._settings.delivery_lease_seconds,
            OUTBOX_BATCH,
        )
        if not items:
            return False
        groups: dict[tuple[OutboxKind, str], list[OutboxItem]] = defaultdict(list)
        for item in items:
            groups[(item.kind, item.site_id)].append(item)
        failed_rows: set[int] = set()
        # Runs whose start or audience was not accepted: nothing later of them goes now.
        held_runs: set[tuple[str, str]] = set()
        ordered = sorted(groups.items(), key=lambda group: _RELAY_ORDER.get(group[0][0], 2))
        for (kind, site_id), group in ordered:
            size = PEER_BATCH[kind]
            if held_runs:
                held = [item for item in group if (site_id, item.run_id) in held_runs]
                failed_rows.update(item.outbox_id for item in held)
                group = [item for item in group if (site_id, item.run_id) not in held_runs]
            for start in range(0, len(group), size):
                batch = group[start : start + size]
                try:
                    await self._relay(kind, site_id, batch)
                except Exception as error:  # kept for the next round
                    log.warning(
                        "a peer did not accept the outbox; kept for later",
                        kind=kind.value,
                        error=f"{type(error).__name__}: {error}"[:300],
                    )
                    failed_rows.update(item.outbox_id for item in batch)
                    if kind in _RELAY_ORDER:
                        held_runs.update((site_id, item.run_id) for item in batch)
        settled = sorted({item.outbox_id for item in items} - failed_rows)
        failed = sorted(failed_rows)
        await self._store.settle_outbox(owner, settled)
        if failed:
            retry_at = self._clock.now() + timedelta(seconds=self._policy.backoff(1))
            await self._store.release_outbox(owner, failed, retry_at)
        return not failed

    async def _relay(self, kind: OutboxKind, site_id: str, batch: Sequence[OutboxItem]) -> None:
        if kind is OutboxKind.OUTCOME:
            await self._outcomes.record_outcomes(site_id, batch)
        elif kind in (OutboxKind.START, OutboxKind.AUDIENCE):
            # Both carry the goal and the description: a start makes reporting know the
            # run before its first outcome; the audience (later) completes it.
            for item in batch:
                await self._outcomes.record_audience(
                    site_id,
                    item.run_id,
                    item.campaign_id,
                    None if kind is OutboxKind.START else item.count,
                    test=item.test,
                    conversion_goal=goal_from_json(item.conversion_goal),
                    description=description_from_json(item.description),
                )
        else:
            await self._pruner.unsubscribe(site_id, [(i.subscriber_id, i.reason) for i in batch])

    async def drain_outbox(self) -> None:
        """Relays until the outbox is empty or a peer fails (tests, shutdown)."""
        while await self.relay_outbox_once():
            pass


def _held_back(holds: Mapping[str, Hold], recipient: PendingRecipient) -> bool:
    """Whether a push service holding the site's sends holds this recipient back (all
    but the hold's probe)."""
    hold = holds.get(endpoint_origin(recipient.endpoint))
    return hold is not None and hold.probe_recipient_id != recipient.recipient_id


def _apns_held_back(holds: Mapping[str, Hold], recipient: PendingRecipient) -> bool:
    """Whether APNs holding the site's sends holds this recipient back (all but the
    hold's probe)."""
    hold = holds.get(APNS_PUSH_SERVICE)
    return hold is not None and hold.probe_recipient_id != recipient.recipient_id


def _due(recipient: PendingRecipient, now: datetime) -> bool:
    """Due now (a first attempt, or its retry's time has come)."""
    return recipient.not_before is None or recipient.not_before <= now


def _cap_key(policy: Policy, recipient: PendingRecipient, now: datetime) -> tuple[str, date]:
    return (
        person_key(recipient.profile_id, recipient.subscriber_id),
        local_day(recipient.timezone, now, policy.default_timezone),
    )


@functools.lru_cache(maxsize=256)
def _policy(text: str) -> Policy:
    return policy_from_json(text)


_NO_VARIANTS: Mapping[str, VariantContent] = {}


def _payload_of(
    recipient: PendingRecipient,
    run_payload: bytes,
    options: ContentOptions,
    variants: Mapping[str, VariantContent],
) -> bytes:
    """What the recipient is sent before rendering: its variant's payload (the run's
    without variants), its browser's if it has one."""
    content = variants.get(recipient.variant)
    if content is None:
        return options.payload_for(recipient.browser, run_payload)
    return content.options.payload_for(recipient.browser, content.payload)


def audience_sample(
    sample: tuple[int, int] | None, campaign_id: str
) -> Callable[[Member], bool] | None:
    """Whether a member is in the run at all (RunAudience.sample, [start, end) basis
    points of its person's sample hash, `policies.in_sample`); one outside is not queued,
    counted or reported. None: the whole audience is. First of the queue-time steps."""
    if sample is None or sample == (0, 10_000):
        return None
    start, end = sample

    def inside(member: Member) -> bool:
        return in_sample(
            person_key(member.profile_id, member.subscriber_id), campaign_id, start, end
        )

    return inside


def recipient_variant(
    weights: Sequence[tuple[str, int]], campaign_id: str
) -> Callable[[Member], str] | None:
    """Each member's A/B variant (`policies.variant_of` on its person: every browser of
    a profile gets the same), kept with it whether it is then sent or suppressed, so
    every outcome names its variant. `weights`: (variant id, percent) in the run's
    order. None: the run has no variants. Second of the queue-time steps, before
    `recipient_plan`."""
    if not weights:
        return None
    split = tuple(weights)

    def variant(member: Member) -> str:
        return variant_of(person_key(member.profile_id, member.subscriber_id), campaign_id, split)

    return variant


def recipient_plan(
    timing: RunTiming, policy: Policy, campaign_id: str, snapshot: datetime
) -> Callable[[Member], tuple[datetime | None, str]] | None:
    """When each member of a run is due (None: at once) or why it is queued suppressed
    instead: held out in the control group, its local time passed or past the cut-off,
    or due inside its quiet hours (discarded; or due when they end). None: everyone at
    once. The same reading of time and policy as the send-time checks (`_admit`). The
    last queue-time step: after `audience_sample` and `recipient_variant`."""
    if not (timing.timed or policy.control_group_percent or policy.quiet):
        return None

    def plan(member: Member) -> tuple[datetime | None, str]:
        if policy.control_group_percent and in_control_group(
            person_key(member.profile_id, member.subscriber_id),
            campaign_id,
            policy.control_group_percent,
        ):
            return None, Reason.CONTROL_GROUP.value
        when, reason = due(timing, member.timezone, snapshot) if timing.timed else (None, "")
        if reason or not policy.quiet:
            return when, reason
        at, reason = quiet_hours(
            policy, member.timezone, when or snapshot, policy.default_timezone
        )
        if reason:
            return None, reason
        if timing.cut_off_time is not None and at is not None and at > timing.cut_off_time:
            # Its quiet hours end after the cut-off: it would never be sent.
            return None, Reason.CUT_OFF.value
        return (at if when is not None or at != snapshot else None), ""

    return plan


def audience_slices(
    subscriber_ids: Sequence[str], profile_ids: Sequence[str]
) -> list[tuple[Sequence[str], Sequence[str]]]:
    """The (subscriber_ids, profile_ids) of each ListAudienceMembers request that pulls a
    run's audience, each paged to its end in turn: one with both empty for a selector's
    audience; for a listed audience, slices of at most MAX_LISTED_PER_PAGE_REQUEST ids of
    each kind, none with both empty (that would ask for every subscriber). A subscriber
    that two slices reach is queued once (queue_page skips one already queued)."""
    size = MAX_LISTED_PER_PAGE_REQUEST
    count = max(1, -(-len(subscriber_ids) // size), -(-len(profile_ids) // size))
    return [
        (subscriber_ids[n * size : (n + 1) * size], profile_ids[n * size : (n + 1) * size])
        for n in range(count)
    ]


def _resume_at(stored_token: str, slices: int) -> tuple[int, str]:
    """Where a run's preparation stands: (slice, segment's page token within it), from
    the page token the run row keeps. A run of one slice keeps segment's token as it is
    (as every run did before a listed audience could take several); one of several keeps
    "<slice>:<segment's token>" once past its start."""
    if slices == 1 or not stored_token:
        return 0, stored_token
    index, _, token = stored_token.partition(":")
    return int(index), token


def _stored_token(index: int, next_page_token: str, slices: int) -> str:
    """The token the run row keeps once a page of slice `index` is queued (see
    _resume_at): "" once the last slice's last page is, which ends preparation."""
    if not next_page_token:
        index += 1
        if index == slices:
            return ""
    if slices == 1:
        return next_page_token
    return f"{index}:{next_page_token}"


def _terminal(
    recipient: PendingRecipient,
    state: RecipientState,
    reason: Reason | None,
    *,
    unsubscribe: bool = False,
    attempt: str = "",
) -> Terminal:
    return Terminal(
        recipient_id=recipient.recipient_id,
        subscriber_id=recipient.subscriber_id,
        browser=recipient.browser,
        state=state,
        reason=reason.value if reason else "",
        unsubscribe=unsubscribe,
        variant=recipient.variant,
        profile_id=recipient.profile_id,
        attempt=attempt,
    )


@functools.lru_cache(maxsize=1024)
def _origin_host(origin: str) -> str:
    """The push service's host of an endpoint's origin (RecipientOutcome.attempt_history)."""
    return URL(origin).host or origin


__all__ = ["DeliveryWorkers"]

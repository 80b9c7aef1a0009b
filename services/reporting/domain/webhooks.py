"""Reporting webhooks: a site's endpoints, and the dispatcher that POSTs each engagement
event to them, signed per Standard Webhooks (clarion.reporting.v1.WebhookService).

Every new engagement event queues one message per endpoint of its site that takes its
type (the store does it in the event's own transaction). Dispatchers claim due messages
under a lease, build each body once (its first attempt; later attempts and replays send
the same bytes under the same webhook-id), sign it with the endpoint's secret (and, while
a rotation overlaps, its previous one too) and POST it through a `WebhookTransport`.

- 2xx: delivered (the message is deleted).
- 410 Gone: the endpoint is DISABLED and its queue dead-lettered.
- Anything else (other statuses, redirects, timeouts, refused addresses): retried after
  RETRY_DELAYS (each ± JITTER), which add up to more than 24 hours even at their
  shortest; after MAX_ATTEMPTS the message is a dead letter.
- An endpoint whose messages become dead letters PAUSE_AFTER_DEAD_LETTERS times in a
  row, with no delivery between (each one having failed every attempt for over 24
  hours), is PAUSED: events keep being queued, nothing is sent until the site sets it
  active again.

Due times and leases follow the injected clock; the webhook-timestamp header is the wall
clock (`signing_clock`), since receivers check it against theirs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import json
import random
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from standardwebhooks import Webhook

from services.kit.clock import Clock, SystemClock
from services.kit.egress import EgressPolicy, EgressRefused
from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import new_id
from services.kit.logging import get_logger
from services.kit.metrics import count_webhook_attempts
from services.kit.pages import decode_page_token, encode_page_token, page_size
from services.reporting.models import ID_LENGTH
from services.reporting.store import (
    AttemptOutcome,
    AttemptResult,
    ClaimedMessage,
    DeadLetterRecord,
    DescriptionRecord,
    EndpointRecord,
    NewEndpoint,
    ReportingStore,
    WebhookEventType,
)

log = get_logger(__name__)

MAX_URL_LENGTH = 2048
MAX_REQUEST_ID_LENGTH = 128
# Random bytes of a secret (Standard Webhooks: 24 to 64).
SECRET_BYTES = 32
SECRET_PREFIX = "whsec_"
DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=7)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_REPLAY_IDS = 1000

# The wait after each failed attempt: after the last one the message is dead.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
    timedelta(hours=8),
    timedelta(hours=8),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# Each delay is drawn from ±20% of its value, so messages failed together spread out.
# At their shortest the delays still add up to 25.4 hours.
JITTER = 0.2
PAUSE_AFTER_DEAD_LETTERS = 3
# How long a claimed message is held: longer than one attempt can take (10 s).
LEASE = timedelta(seconds=60)
# A claim settles what answered within this at once; the rest when it ends.
SETTLE_WINDOW = timedelta(seconds=1)
# Claims whose leftovers may be open at once per dispatcher, before it waits to claim more.
MAX_STRAGGLING = 8

_EVENT_ACTIONS = {
    WebhookEventType.VIEW: "View",
    WebhookEventType.CLICK: "Click",
    WebhookEventType.CLOSE: "Close",
}
# The service worker names a notification's buttons "action_1" and "action_2"
# (clarion.common.v1.PushAction.action), and the gateway records that as the button.
_BUTTON = re.compile(r"action_([12])")
_UPDATABLE_PATHS = ("url", "event_types", "active")
# URL syntax only (scheme http or https, a host, no user info): where the URL leads is
# checked when connecting (adapters/webhook_sender.py), against what the name resolves
# to then.
_URL_SYNTAX = EgressPolicy((), test_endpoints=True, purpose="webhook receiver")


@dataclass(frozen=True)
class WebhookAnswer:
    """What one POST came to: the HTTP status (None when there was no answer) and,
    unless it is 2xx, why it failed, for a person ("HTTP 500", "timeout after 10 s")."""

    status: int | None
    failure: str = ""


class WebhookTransport(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> WebhookAnswer: ...


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: EndpointRecord
    # Empty for a repeated request_id: a secret is shown once.
    secret: str


@dataclass(frozen=True)
class RotatedSecret:
    endpoint: EndpointRecord
    secret: str
    previous_secret_expire_time: datetime | None


@dataclass(frozen=True)
class EndpointPage:
    endpoints: list[EndpointRecord]
    next_page_token: str


@dataclass(frozen=True)
class DeadLetterPage:
    dead_letters: list[DeadLetterRecord]
    next_page_token: str


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def checked_url(url: str, field: str) -> str:
    """An http(s) URL of at most MAX_URL_LENGTH characters on one line, with a host and
    no user info; refused with INVALID_WEBHOOK_URL otherwise."""
    if not url:
        raise InvalidArgument(
            "INVALID_WEBHOOK_URL",
            f"{field} is required: the https:// URL events are POSTed to",
            field=field,
        )
    if len(url) > MAX_URL_LENGTH:
        raise InvalidArgument(
            "INVALID_WEBHOOK_URL",
            f"{field} is {len(url)} characters; at most {MAX_URL_LENGTH}",
            field=field,
        )
    if any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidArgument(
            "INVALID_WEBHOOK_URL",
            f"{field} must be one URL without spaces or control characters",
            field=field,
        )
    try:
        _URL_SYNTAX.check_url(url)
    except EgressRefused as refused:
        raise InvalidArgument("INVALID_WEBHOOK_URL", f"{field} {refused.detail}", field=field)
    return url


def checked_event_types(
    event_types: Sequence[WebhookEventType | None], field: str
) -> frozenset[WebhookEventType]:
    """At least one, each a known type (repeats are the same type)."""
    if not event_types:
        raise InvalidArgument(
            "INVALID_EVENT_TYPE",
            f"{field} is empty; name at least one of VIEW, CLICK, CLOSE",
            field=field,
        )
    for index, event_type in enumerate(event_types):
        if event_type is None:
            raise InvalidArgument(
                "INVALID_EVENT_TYPE",
                f"{field}[{index}] is unspecified; use VIEW, CLICK or CLOSE",
                field=f"{field}[{index}]",
            )
    return frozenset(t for t in event_types if t is not None)


def _require_endpoint_id(endpoint_id: str, field: str = "endpoint_id") -> None:
    if not endpoint_id:
        raise InvalidArgument("MISSING_FIELD", f"{field} is required", field=field)


def _not_found(endpoint_id: str, field: str = "endpoint_id") -> NotFound:
    return NotFound(
        "WEBHOOK_ENDPOINT_NOT_FOUND",
        f"there is no webhook endpoint {endpoint_id[:ID_LENGTH]!r} in this site",
        endpoint_id=endpoint_id,
        field=field,
    )


def _fingerprint(url: str, event_types: frozenset[WebhookEventType]) -> str:
    asked = json.dumps([url, sorted(event_types)], separators=(",", ":"))
    return hashlib.sha256(asked.encode()).hexdigest()


def _micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _dead_letter_position(token: str) -> tuple[datetime, str] | None:
    def valid(after: str) -> bool:
        micros, _, message_id = after.partition(":")
        return micros.isdigit() and bool(message_id)

    after = decode_page_token(token, valid=valid)
    if after is None:
        return None
    micros, _, message_id = after.partition(":")
    seconds, rest = divmod(int(micros), 1_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest), message_id


class Webhooks:
    """A site's endpoints and dead letters (WebhookService)."""

    def __init__(self, store: ReportingStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self,
        site_id: str,
        url: str,
        event_types: Sequence[WebhookEventType | None],
        request_id: str = "",
    ) -> CreatedEndpoint:
        url = checked_url(url, "url")
        types = checked_event_types(event_types, "event_types")
        if len(request_id) > MAX_REQUEST_ID_LENGTH:
            raise InvalidArgument(
                "INVALID_REQUEST_ID",
                f"request_id is {len(request_id)} characters; at most {MAX_REQUEST_ID_LENGTH}",
                field="request_id",
            )
        fingerprint = _fingerprint(url, types) if request_id else None
        if request_id:
            existing = await self._store.webhook_endpoint_by_request(site_id, request_id)
            if existing is not None:
                return CreatedEndpoint(_same_request(existing, fingerprint, request_id), "")
        secret = new_secret()
        endpoint_id = new_id("whe")
        stored = await self._store.insert_webhook_endpoint(
            site_id,
            NewEndpoint(
                endpoint_id=endpoint_id,
                url=url,
                event_types=types,
                secret=secret,
                request_id=request_id or None,
                request_fingerprint=fingerprint,
                now=self._clock.now(),
            ),
        )
        if stored.endpoint_id != endpoint_id:
            # A concurrent create with the same request_id won.
            return CreatedEndpoint(_same_request(stored, fingerprint, request_id), "")
        log.info("webhook endpoint created", endpoint_id=endpoint_id)
        return CreatedEndpoint(stored, secret)

    async def get(self, site_id: str, endpoint_id: str) -> EndpointRecord:
        _require_endpoint_id(endpoint_id)
        endpoint = await self._store.webhook_endpoint(site_id, endpoint_id)
        if endpoint is None:
            raise _not_found(endpoint_id)
        return endpoint

    async def list_page(self, site_id: str, size: int, page_token: str) -> EndpointPage:
        """The site's endpoints, oldest first."""
        limit = page_size(size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        after = decode_page_token(page_token) or ""
        rows = await self._store.webhook_endpoints(site_id, after, limit + 1)
        page = rows[:limit]
        token = encode_page_token(page[-1].endpoint_id) if len(rows) > limit else ""
        return EndpointPage(page, token)

    async def update(
        self,
        site_id: str,
        endpoint_id: str,
        paths: Sequence[str],
        *,
        url: str = "",
        event_types: Sequence[WebhookEventType | None] = (),
        active: bool = False,
    ) -> EndpointRecord:
        """Sets the fields `paths` (update_mask) names; active true resumes an endpoint
        Clarion paused or disabled."""
        _require_endpoint_id(endpoint_id, "endpoint.endpoint_id")
        if not paths:
            raise InvalidArgument(
                "INVALID_UPDATE_MASK",
                f"update_mask must name the fields to change: {', '.join(_UPDATABLE_PATHS)}",
                field="update_mask",
            )
        changes: dict[str, object] = {}
        for path in paths:
            if path == "url":
                changes["url"] = checked_url(url, "endpoint.url")
            elif path == "event_types":
                changes["event_types"] = checked_event_types(event_types, "endpoint.event_types")
            elif path == "active":
                changes["active"] = active
            else:
                raise InvalidArgument(
                    "INVALID_UPDATE_MASK",
                    f"update_mask path {path[:100]!r} is not a field that can change; use "
                    f"{', '.join(_UPDATABLE_PATHS)}",
                    field="update_mask",
                )
        updated = await self._store.update_webhook_endpoint(
            site_id, endpoint_id, changes, self._clock.now()
        )
        if updated is None:
            raise _not_found(endpoint_id, "endpoint.endpoint_id")
        log.info(
            "webhook endpoint updated",
            endpoint_id=endpoint_id,
            paths=",".join(sorted(changes)),
            state=updated.state.value,
        )
        return updated

    async def delete(self, site_id: str, endpoint_id: str) -> None:
        _require_endpoint_id(endpoint_id)
        if not await self._store.delete_webhook_endpoint(site_id, endpoint_id):
            raise _not_found(endpoint_id)
        log.info("webhook endpoint deleted", endpoint_id=endpoint_id)

    async def rotate_secret(
        self, site_id: str, endpoint_id: str, overlap_seconds: int = 0, expire_now: bool = False
    ) -> RotatedSecret:
        """A new secret; the current one keeps signing too for the overlap (0: 24 hours),
        or not at all with `expire_now`."""
        _require_endpoint_id(endpoint_id)
        overlap = timedelta(seconds=overlap_seconds) if overlap_seconds else DEFAULT_OVERLAP
        if overlap_seconds < 0 or overlap > MAX_OVERLAP:
            raise InvalidArgument(
                "INVALID_OVERLAP",
                f"overlap_seconds must be 0 (24 hours) to {int(MAX_OVERLAP.total_seconds())} "
                f"(7 days), got {overlap_seconds}",
                field="overlap_seconds",
            )
        now = self._clock.now()
        expire_time = None if expire_now else now + overlap
        secret = new_secret()
        rotated = await self._store.rotate_webhook_secret(
            site_id, endpoint_id, secret, expire_time, now
        )
        if rotated is None:
            raise _not_found(endpoint_id)
        log.info("webhook secret rotated", endpoint_id=endpoint_id, overlap_ends=expire_time)
        return RotatedSecret(rotated, secret, expire_time)

    async def dead_letters(
        self, site_id: str, endpoint_id: str, size: int, page_token: str
    ) -> DeadLetterPage:
        """Dead letters (of one endpoint, or all of the site's), newest first."""
        limit = page_size(size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        before = _dead_letter_position(page_token)
        if endpoint_id:
            await self.get(site_id, endpoint_id)
        rows = await self._store.webhook_dead_letters(
            site_id, endpoint_id or None, before, limit + 1
        )
        page = rows[:limit]
        token = ""
        if len(rows) > limit:
            token = encode_page_token(f"{_micros(page[-1].dead_time)}:{page[-1].message_id}")
        return DeadLetterPage(page, token)

    async def replay(self, site_id: str, endpoint_id: str, message_ids: Sequence[str]) -> int:
        """Queues the endpoint's dead letters (these, or every one) to be sent at once,
        with their webhook-id and body; answers how many were dead letters."""
        _require_endpoint_id(endpoint_id)
        if len(message_ids) > MAX_REPLAY_IDS:
            raise InvalidArgument(
                "BATCH_TOO_LARGE",
                f"message_ids has {len(message_ids)} items; at most {MAX_REPLAY_IDS}",
                field="message_ids",
            )
        replayed = await self._store.replay_webhook_dead_letters(
            site_id, endpoint_id, list(message_ids) or None, self._clock.now()
        )
        if replayed is None:
            raise _not_found(endpoint_id)
        log.info("webhook dead letters replayed", endpoint_id=endpoint_id, replayed=replayed)
        return replayed


def _same_request(
    existing: EndpointRecord, fingerprint: str | None, request_id: str
) -> EndpointRecord:
    if existing.request_fingerprint not in (None, fingerprint):
        raise InvalidArgument(
            "REQUEST_ID_REUSED",
            f"request_id {request_id[:MAX_REQUEST_ID_LENGTH]!r} already created endpoint "
            f"{existing.endpoint_id!r} from a different request; a repeat must send the same "
            "request, and a new endpoint needs a new request_id",
            field="request_id",
            endpoint_id=existing.endpoint_id,
        )
    return existing


# Sending.


def clicked_button(event_type: WebhookEventType, button: str) -> int:
    """1 or 2 for a click on a notification's first or second button, 0 otherwise."""
    if event_type is not WebhookEventType.CLICK:
        return 0
    matched = _BUTTON.fullmatch(button)
    return int(matched.group(1)) if matched else 0


def webhook_body(message: ClaimedMessage) -> str:
    """The iZooto-shaped JSON body; a run whose description is not recorded (yet) has
    empty strings for the title and UTM parameters."""
    description = message.description or DescriptionRecord()
    title = description.variant_titles.get(message.variant) if message.variant else None
    body = {
        "action": _EVENT_ACTIONS[message.event_type],
        "cookie_id": message.subscriber_id,
        "cid": message.campaign_id,
        "notification_title": title or description.notification_title,
        "reference_id": message.run_id,
        "utm_source": description.utm_source,
        "utm_medium": description.utm_medium,
        "utm_campaign": description.utm_campaign,
        "utm_content": description.utm_content,
        "utm_term": description.utm_term,
        "clicked_button": clicked_button(message.event_type, message.button),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


@functools.lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    return Webhook(secret)


def signed_headers(
    message_id: str, body: str, secrets_: Sequence[str], timestamp: datetime
) -> dict[str, str]:
    """Standard Webhooks headers: one v1 signature per secret, space separated."""
    signatures = " ".join(_signer(secret).sign(message_id, timestamp, body) for secret in secrets_)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
    }


def signing_secrets(message: ClaimedMessage, now: datetime) -> list[str]:
    """The endpoint's secret, and its previous one while the rotation overlaps."""
    secrets_ = [message.secret]
    expire = message.previous_secret_expire_time
    if message.previous_secret and expire is not None and expire > now:
        secrets_.append(message.previous_secret)
    return secrets_


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pause_reason(streak: int, failure: str, now: datetime) -> str:
    return (
        f"paused at {_iso(now)}: {streak} events in a row failed every attempt for over "
        f"24 hours (last failure: {failure}); set active to resume"
    )


class WebhookDispatcher:
    """Claims due messages, sends them, and records what came of each."""

    def __init__(
        self,
        store: ReportingStore,
        clock: Clock,
        transport: WebhookTransport,
        *,
        signing_clock: Clock | None = None,
        batch_size: int = 50,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        """`jitter` gives the factor a delay is multiplied by (1 ± JITTER)."""
        self._store = store
        self._clock = clock
        self._transport = transport
        self._signing_clock = signing_clock or SystemClock()
        self._batch_size = batch_size
        self._jitter = jitter or (lambda: random.uniform(1 - JITTER, 1 + JITTER))
        # Tasks settling the requests a claim left open past SETTLE_WINDOW.
        self._stragglers: set[asyncio.Task[None]] = set()

    @property
    def batch_size(self) -> int:
        return self._batch_size

    async def run_once(self) -> int:
        """One claim's worth; returns how many messages it attempted.

        What answers within SETTLE_WINDOW is settled at once; requests still open then
        (a receiver hanging until the timeout) are settled by a task of their own when
        they end, so one hanging request does not hold its batch-mates' results, nor the
        next claim. At most MAX_STRAGGLING claims' leftovers are open at a time."""
        while len(self._stragglers) >= MAX_STRAGGLING:
            await asyncio.wait(self._stragglers, return_when=asyncio.FIRST_COMPLETED)
        now = self._clock.now()
        claimed = await self._store.claim_webhook_messages(now, LEASE, self._batch_size)
        if not claimed:
            return 0
        attempts = [asyncio.ensure_future(self._attempt(message, now)) for message in claimed]
        done, pending = await asyncio.wait(attempts, timeout=SETTLE_WINDOW.total_seconds())
        if done:
            await self._settle([task.result() for task in done])
        if pending:
            straggler = asyncio.create_task(self._settle_when_done(pending))
            self._stragglers.add(straggler)
            straggler.add_done_callback(self._stragglers.discard)
        return len(claimed)

    async def _settle_when_done(self, pending: set[asyncio.Future[AttemptResult]]) -> None:
        try:
            await asyncio.wait(pending)
            await self._settle([task.result() for task in pending])
        except asyncio.CancelledError:
            # Stopping: unsettled messages stay leased and are retried when it expires.
            for task in pending:
                task.cancel()
            raise
        except Exception:
            log.exception("settling webhook attempts failed; they are retried after the lease")

    async def stop(self) -> None:
        """Cancels the requests still open (their messages are retried after the lease)."""
        stragglers = list(self._stragglers)
        for task in stragglers:
            task.cancel()
        for task in stragglers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _settle(self, results: list[AttemptResult]) -> None:
        paused = await self._store.settle_webhook_attempts(
            results,
            self._clock.now(),
            pause_after_dead_letters=PAUSE_AFTER_DEAD_LETTERS,
            pause_reason=pause_reason,
        )
        count_webhook_attempts(attempt_result(result) for result in results)  # settled
        for site_id, endpoint_id in paused:
            log.warning(
                "webhook endpoint paused: its events failed every attempt for over 24 hours",
                site_id=site_id,
                endpoint_id=endpoint_id,
            )
        for result in results:
            if result.outcome is AttemptOutcome.GONE:
                log.warning(
                    "webhook endpoint disabled: it answered 410 Gone",
                    site_id=result.message.site_id,
                    endpoint_id=result.message.endpoint_id,
                )

    async def _attempt(self, message: ClaimedMessage, now: datetime) -> AttemptResult:
        body = message.payload if message.payload is not None else webhook_body(message)
        headers = signed_headers(
            message.message_id,
            body,
            signing_secrets(message, now),
            self._signing_clock.now(),
        )
        answer = await self._transport.post(message.url, body.encode(), headers)
        status = answer.status
        if status is not None and 200 <= status < 300:
            return AttemptResult(message, AttemptOutcome.DELIVERED, body, now)
        failure = answer.failure or f"HTTP {status}"
        if status == 410:
            return AttemptResult(
                message,
                AttemptOutcome.GONE,
                body,
                now,
                failure=failure,
                state_reason=(
                    f"disabled at {_iso(now)}: it answered 410 Gone; set active to send to it again"
                ),
            )
        next_due = None
        if message.attempts < MAX_ATTEMPTS:
            delay = RETRY_DELAYS[message.attempts - 1] * self._jitter()
            next_due = now + delay
        return AttemptResult(
            message, AttemptOutcome.FAILED, body, now, failure=failure, next_due=next_due
        )


class DispatcherLoop:
    """`workers` tasks, each running the dispatcher's claims one after another while
    they find a full batch, and otherwise waiting `interval_seconds` or until `wake()`
    (new messages queued in this process). Several workers let a hanging receiver hold
    up one claim's batch, not the rest."""

    def __init__(
        self, dispatcher: WebhookDispatcher, interval_seconds: float, workers: int = 4
    ) -> None:
        self._dispatcher = dispatcher
        self._interval = interval_seconds
        self._workers = workers
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"reporting-webhooks-{n}")
            for n in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._dispatcher.stop()

    async def _loop(self) -> None:
        while True:
            attempted = 0
            try:
                attempted = await self._dispatcher.run_once()
            except Exception:
                log.exception("sending webhooks failed; will retry")
            if attempted >= self._dispatcher.batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()


def attempt_result(result: AttemptResult) -> str:
    """What an attempt came to, for clarion_webhook_attempts_total: "delivered",
    "failed" (due again) or "dead" (no attempt left, or 410 Gone)."""
    if result.outcome is AttemptOutcome.DELIVERED:
        return "delivered"
    if result.outcome is AttemptOutcome.GONE or result.next_due is None:
        return "dead"
    return "failed"

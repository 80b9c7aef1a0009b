"""HTTP to push services over aiohttp: one pooled session per process, bounded
concurrency (CLARION_PUSH_TRANSPORT=aiohttp; the default is native_sender.py). Also
the parts both transports share: the answer stream and the refusal log.

Every endpoint passes the outbound URL policy (services.kit.egress) twice: its URL
before any connection, and the addresses it resolves to when the connection is made
(a name that rebinds to 127.0.0.1 after registration is refused there).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

import aiohttp
from aiohttp.abc import AbstractResolver

from services.delivery.domain.payload import endpoint_origin
from services.delivery.domain.ports import PushRequest
from services.delivery.domain.rules import SENT_STATUSES, PushAnswer, Reason
from services.kit.egress import EgressPolicy, EgressRefused, refusal_in
from services.kit.logging import get_logger
from services.kit.metrics import observe_push, push_service_label

log = get_logger(__name__)

BODY_EXCERPT_CHARS = 200
# Refusals are logged once per push-service origin and reason, so a campaign to many
# refused subscriptions does not flood the log.
_MAX_LOGGED_REFUSALS = 1000


def excerpt(raw: bytes) -> str:
    """At most BODY_EXCERPT_CHARS printable characters of a push service's answer."""
    text = raw.decode("utf-8", "replace")[:BODY_EXCERPT_CHARS]
    return "".join(c if c.isprintable() else " " for c in text)


class AnswerStream:
    """A PushStream's bookkeeping; a transport subclasses it with `_start` (run the
    requests, each ending in `deliver`) and `_stop` (drop what is still running)."""

    def __init__(self) -> None:
        self._arrived: list[tuple[int, PushAnswer]] = []
        self._wakeup = asyncio.Event()
        self._submitted = 0
        self._taken = 0
        self.closed = False
        # For the push metrics: each request in flight's start and push service, by tag.
        self._timing: dict[int, tuple[float, str]] = {}

    def _start(self, requests: Sequence[PushRequest]) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        pass

    @property
    def in_flight(self) -> int:
        return self._submitted - self._taken

    def submit(self, requests: Sequence[PushRequest]) -> None:
        if self.closed:
            raise RuntimeError("the push stream is closed")
        self._submitted += len(requests)
        started = time.perf_counter()
        for request in requests:
            self._timing[request.tag] = (started, push_service_label(request.endpoint))
        self._start(requests)

    def deliver(self, tag: int, answer: PushAnswer) -> None:
        timing = self._timing.pop(tag, None)
        if timing is not None:
            error = answer.error.value if answer.error is not None else ""
            observe_push(timing[1], time.perf_counter() - timing[0], answer.status, error)
        if not self.closed:
            self._arrived.append((tag, answer))
            self._wakeup.set()

    async def answers(self) -> list[tuple[int, PushAnswer]]:
        while not self._arrived and self.in_flight and not self.closed:
            self._wakeup.clear()
            await self._wakeup.wait()
        return self.ready()

    def ready(self) -> list[tuple[int, PushAnswer]]:
        taken, self._arrived = self._arrived, []
        self._taken += len(taken)
        return taken

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wakeup.set()
            self._stop()


class RefusalLog:
    """Logs each refused push-service origin and reason once (bounded), so a campaign
    to many refused subscriptions does not flood the log."""

    def __init__(self) -> None:
        self._logged: set[tuple[str, str]] = set()

    def refused(self, endpoint: str, refused: EgressRefused) -> PushAnswer:
        # The origin only: the path of an endpoint identifies one browser.
        key = (_safe_origin(endpoint), refused.reason)
        if key not in self._logged and len(self._logged) < _MAX_LOGGED_REFUSALS:
            self._logged.add(key)
            log.warning(
                "push endpoint refused by the outbound policy",
                push_service=key[0],
                refusal=refused.reason,
                detail=refused.detail,
            )
        return PushAnswer(error=Reason.ENDPOINT_REFUSED)


class PushSender:
    def __init__(
        self,
        concurrency: int,
        timeout_seconds: float,
        policy: EgressPolicy,
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """`policy` decides where pushes may go; `resolver` (tests) replaces the system
        DNS lookup that the policy's connect-time check wraps."""
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._slots = asyncio.Semaphore(concurrency)
        self._policy = policy
        self._inner_resolver = resolver
        self._refusals = RefusalLog()
        self._resolver: AbstractResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._resolver = self._policy.resolver(self._inner_resolver)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._concurrency,
                    ttl_dns_cache=300,
                    # Names are resolved, and every address connected to is checked,
                    # against the policy at connect time.
                    resolver=self._resolver,
                    socket_factory=self._policy.socket_factory(),
                ),
                timeout=self._timeout,
                # Push services do not want cookies, and a redirect is not an answer.
                cookie_jar=aiohttp.DummyCookieJar(),
                # Never through a proxy from the environment: the policy is about where
                # the connection goes.
                trust_env=False,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            # The connector closes only resolvers it made itself.
            await self._resolver.close()
            self._resolver = None

    async def post(self, endpoint: str, body: bytes, headers: dict[str, str]) -> PushAnswer:
        if self._session is None:
            raise RuntimeError("PushSender.start() was not called")
        try:
            self._policy.check_url(endpoint)
        except EgressRefused as refused:
            return self._refusals.refused(endpoint, refused)
        async with self._slots:
            try:
                async with self._session.post(
                    endpoint, data=body, headers=headers, allow_redirects=False
                ) as response:
                    body_excerpt = ""
                    if response.status not in SENT_STATUSES:
                        body_excerpt = excerpt(await response.content.read(BODY_EXCERPT_CHARS * 4))
                    return PushAnswer(
                        status=response.status,
                        retry_after=response.headers.get("Retry-After"),
                        body_excerpt=body_excerpt,
                    )
            except TimeoutError:
                return PushAnswer(error=Reason.TIMEOUT)
            except aiohttp.ClientError as error:
                behind = refusal_in(error)
                if behind is not None:
                    return self._refusals.refused(endpoint, behind)
                return PushAnswer(error=Reason.CONNECTION_ERROR)

    def stream(self, headers: Mapping[str, str]) -> AnswerStream:
        return TaskStream(self, headers)


class _Posts(Protocol):
    async def post(self, endpoint: str, body: bytes, headers: dict[str, str]) -> PushAnswer: ...


class TaskStream(AnswerStream):
    """One asyncio task per request, each a `post` of `sender`."""

    def __init__(self, sender: _Posts, headers: Mapping[str, str]) -> None:
        super().__init__()
        self._sender = sender
        self._headers = dict(headers)
        self._tasks: set[asyncio.Task[None]] = set()

    def _start(self, requests: Sequence[PushRequest]) -> None:
        for request in requests:
            task = asyncio.create_task(self._one(request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _one(self, request: PushRequest) -> None:
        try:
            answer = await self._sender.post(
                request.endpoint,
                request.body,
                {**self._headers, "Authorization": request.authorization},
            )
        except Exception:  # post answers errors itself; this is a bug, not an answer
            log.exception("push transport failed unexpectedly")
            answer = PushAnswer(error=Reason.CONNECTION_ERROR)
        self.deliver(request.tag, answer)


def _safe_origin(endpoint: str) -> str:
    try:
        return endpoint_origin(endpoint)
    except (ValueError, TypeError):
        return "<invalid URL>"

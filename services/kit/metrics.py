"""Prometheus metrics: every Clarion metric, defined once for the process, and the
`/metrics` HTTP endpoint that serves them (docs/metrics.md lists them for Grafana).

prometheus_client keeps one registry per process. The embedded stack and the tests run
several services in one process, so the metrics are module-level (defining one twice
would raise "Duplicated timeseries") and each endpoint serves the whole registry.

Label values come from closed sets only (gRPC method names, delivery states and
reasons, push-service hosts capped at PUSH_SERVICE_LABELS): never a site, subscriber,
endpoint URL, token or secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import grpc
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from services.kit.config import DEFAULT_PUSH_SERVICE_HOSTS
from services.kit.logging import get_logger
from services.kit.operator import listen_failed
from services.kit.periodic import PeriodicLoop

log = get_logger("clarion.metrics")

# How often the gauges read from a database (queue depth, backlogs) are refreshed.
GAUGE_REFRESH_SECONDS = 10.0
# Distinct push-service hosts given a label of their own; later ones count as "other".
PUSH_SERVICE_LABELS = 50
OTHER = "other"

RPC_DURATION = Histogram(
    "clarion_rpc_duration_seconds",
    "Time a gRPC server took to answer a call, by service, method and status code.",
    ["service", "method", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELIVERY_OUTCOMES = Counter(
    "clarion_delivery_outcomes",
    "Recipients whose send ended, by final status and reason, counted once the outcome "
    "is committed.",
    ["status", "reason"],
)
PUSH_REQUEST_DURATION = Histogram(
    "clarion_push_request_duration_seconds",
    "Time from a push request's submission to its push service's HTTP answer.",
    ["push_service"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30),
)
PUSH_RESPONSES = Counter(
    "clarion_push_responses",
    "Push requests by push service and answer: 2xx/3xx/4xx/5xx, or timeout, "
    "connection_error, endpoint_refused when no HTTP answer came.",
    ["push_service", "status_class"],
)
PUSH_ORIGIN_RATE = Gauge(
    "clarion_push_origin_rate_per_second",
    "The send rate a delivery process allows a push service now (its adaptive token "
    "bucket, slowed by 429s); listed only while a push service is limited.",
    ["push_service"],
)
DELIVERY_AUTH_HOLDS = Gauge(
    "clarion_delivery_auth_holds",
    "Sites whose sends a push service holds: it refused their VAPID signature (401/403); "
    "their recipients there wait. Listed only while a push service holds one.",
    ["push_service"],
)
DELIVERY_QUEUE_DEPTH = Gauge(
    "clarion_delivery_queue_depth",
    "Recipients queued to send and not yet ended (due now or later).",
)
DELIVERY_QUEUE_OLDEST_DUE_AGE = Gauge(
    "clarion_delivery_queue_oldest_due_age_seconds",
    "How long the longest-waiting due chunk of recipients has been due (0: none waiting).",
)
DELIVERY_RUNS = Gauge(
    "clarion_delivery_runs",
    "Delivery runs by state.",
    ["state"],
)
WEBHOOK_BACKLOG = Gauge(
    "clarion_webhook_backlog",
    "Webhook messages waiting for their first or next attempt.",
)
WEBHOOK_BACKLOG_OLDEST_DUE_AGE = Gauge(
    "clarion_webhook_backlog_oldest_due_age_seconds",
    "How long the longest-waiting due webhook message has been due (0: none waiting).",
)
WEBHOOK_DEAD_LETTERS = Gauge(
    "clarion_webhook_dead_letters",
    "Webhook messages kept as dead letters (every attempt failed, or 410 Gone).",
)
WEBHOOK_ATTEMPTS = Counter(
    "clarion_webhook_attempts",
    "Webhook delivery attempts by result: delivered, failed (due again) or dead.",
    ["result"],
)
GATEWAY_CLIENT_ERRORS = Counter(
    "clarion_gateway_client_errors",
    "Errors browsers (the SDK, the service worker) reported to the gateway and it "
    "recorded, by kind (a closed set: bad_payload, unknown_version, show_failed, ...).",
    ["kind"],
)
GATEWAY_CLIENT_ERRORS_RATE_LIMITED = Counter(
    "clarion_gateway_client_errors_rate_limited",
    "Client error reports the gateway refused (429) because their site sent too many, "
    "by kind.",
    ["kind"],
)
GATEWAY_SAFARI_LOGS = Counter(
    "clarion_gateway_safari_logs",
    "Error lines legacy Safari posted to the gateway's POST /v1/log (push package or "
    "registration problems), by kind.",
    ["kind"],
)
GATEWAY_SAFARI_LOGS_DROPPED = Counter(
    "clarion_gateway_safari_logs_dropped",
    "Legacy Safari log lines not logged: past a request's first lines, or past the "
    "gateway's log budget.",
)


# --- sends ----------------------------------------------------------------------------


def count_outcomes(outcomes: Iterable[tuple[str, str]]) -> None:
    """Counts committed recipient outcomes, each (status, reason); reason "" for sent."""
    tally: dict[tuple[str, str], int] = {}
    for outcome in outcomes:
        tally[outcome] = tally.get(outcome, 0) + 1
    for (status, reason), count in tally.items():
        DELIVERY_OUTCOMES.labels(status, reason or "none").inc(count)


def count_outcome(status: str, reason: str, count: int) -> None:
    """Counts `count` committed recipient outcomes of one status and reason."""
    if count:
        DELIVERY_OUTCOMES.labels(status, reason or "none").inc(count)


def _matcher(patterns: Iterable[str]) -> Callable[[str], str | None]:
    exact = {p for p in patterns if not p.startswith("*.")}
    suffixes = [(p, p[1:]) for p in patterns if p.startswith("*.")]

    def match(host: str) -> str | None:
        if host in exact:
            return host
        for pattern, suffix in suffixes:
            if host.endswith(suffix):
                return pattern
        return None

    return match


class PushServiceLabels:
    """The push_service label of an endpoint: the known push service's host pattern
    (e.g. "*.notify.windows.com", whose hosts are many), else the host itself for the
    first `limit` distinct hosts, then "other". Never the path (it names a browser)."""

    def __init__(
        self, patterns: Iterable[str] = DEFAULT_PUSH_SERVICE_HOSTS, limit: int = PUSH_SERVICE_LABELS
    ) -> None:
        self._match = _matcher(tuple(patterns))
        self._limit = limit
        self._hosts: set[str] = set()
        self._by_netloc: dict[str, str] = {}

    def __call__(self, endpoint: str) -> str:
        scheme, sep, rest = endpoint.partition("://")
        netloc = rest.partition("/")[0] if sep else ""
        label = self._by_netloc.get(netloc)
        if label is not None:
            return label
        host = netloc.rpartition("@")[2].lower()
        if host.startswith("["):
            host = host[: host.find("]") + 1]
        else:
            host = host.partition(":")[0]
        label = self._match(host)
        if label is None:
            if host and (host in self._hosts or len(self._hosts) < self._limit):
                self._hosts.add(host)
                label = host
            else:
                label = OTHER
        if len(self._by_netloc) < 4 * self._limit:
            self._by_netloc[netloc] = label
        return label


push_service_label = PushServiceLabels()


# Children by label values: `.labels()` costs microseconds, and pushes are many.
_push_durations: dict[str, Any] = {}
_push_responses: dict[tuple[str, str], Any] = {}


def observe_push(push_service: str, seconds: float, status: int | None, error: str) -> None:
    """One push request's answer: its HTTP status, or `error` (why there was none)."""
    if status is not None:
        timer = _push_durations.get(push_service)
        if timer is None:
            timer = _push_durations[push_service] = PUSH_REQUEST_DURATION.labels(push_service)
        timer.observe(seconds)
        status_class = f"{status // 100}xx" if 100 <= status < 600 else "other"
    else:
        status_class = error or "connection_error"
    key = (push_service, status_class)
    counter = _push_responses.get(key)
    if counter is None:
        counter = _push_responses[key] = PUSH_RESPONSES.labels(push_service, status_class)
    counter.inc()


def set_push_origin_rate(push_service: str, rate: float | None) -> None:
    """A push service's allowed send rate now; None: unlimited (the series goes away)."""
    if rate is None:
        with contextlib.suppress(KeyError):
            PUSH_ORIGIN_RATE.remove(push_service)
    else:
        PUSH_ORIGIN_RATE.labels(push_service).set(rate)


_auth_hold_labels: set[str] = set()


def set_delivery_auth_holds(held: Mapping[str, int]) -> None:
    """Sites held per push service label, as stored now; a push service holding none
    any more leaves the gauge."""
    for push_service in _auth_hold_labels - set(held):
        with contextlib.suppress(KeyError):
            DELIVERY_AUTH_HOLDS.remove(push_service)
    _auth_hold_labels.clear()
    for push_service, sites in held.items():
        DELIVERY_AUTH_HOLDS.labels(push_service).set(sites)
        _auth_hold_labels.add(push_service)


def set_delivery_queue(
    depth: int, oldest_due: datetime | None, runs: dict[str, int], now: datetime
) -> None:
    DELIVERY_QUEUE_DEPTH.set(depth)
    DELIVERY_QUEUE_OLDEST_DUE_AGE.set(_age(oldest_due, now))
    for state, count in runs.items():
        DELIVERY_RUNS.labels(state).set(count)


# --- webhooks -------------------------------------------------------------------------


def count_webhook_attempts(results: Iterable[str]) -> None:
    """Counts settled webhook attempts, each "delivered", "failed" or "dead"."""
    for result in results:
        WEBHOOK_ATTEMPTS.labels(result).inc()


def set_webhook_backlog(
    pending: int, oldest_due: datetime | None, dead: int, now: datetime
) -> None:
    WEBHOOK_BACKLOG.set(pending)
    WEBHOOK_BACKLOG_OLDEST_DUE_AGE.set(_age(oldest_due, now))
    WEBHOOK_DEAD_LETTERS.set(dead)


def _age(since: datetime | None, now: datetime) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None:  # SQLite gives stored UTC times back naive
        since = since.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - since).total_seconds())


class GaugeRefresher(PeriodicLoop):
    """Runs `refresh` now and every `interval` seconds while started (on_start/on_stop
    hooks of a server); a failing refresh is logged (a warning) and tried again next time."""

    def __init__(
        self,
        name: str,
        refresh: Callable[[], Awaitable[None]],
        interval: float = GAUGE_REFRESH_SECONDS,
    ) -> None:
        super().__init__(
            name, refresh, interval, failure="refreshing metrics failed; will retry", logger=log
        )

    def _failed(self) -> None:
        log.warning(self._failure, task=self._name, exc_info=True)


# --- gRPC -----------------------------------------------------------------------------


def _code_name(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    code: Any = None
    with contextlib.suppress(Exception):
        code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for known in grpc.StatusCode:
            if known.value[0] == code:
                return known.name
    if error is None:
        return "OK"
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    return "UNKNOWN"


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Observes clarion_rpc_duration_seconds for every call of a method the server has
    (an unknown method is not a label value); outermost, so refused calls count too."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        return _timed(handler, service, method)


def _timed(handler: grpc.RpcMethodHandler, service: str, method: str) -> grpc.RpcMethodHandler:
    def observe(
        started: float, context: grpc.aio.ServicerContext, error: BaseException | None
    ) -> None:
        RPC_DURATION.labels(service, method, _code_name(context, error)).observe(
            time.perf_counter() - started
        )

    async def unary(inner: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await inner(request, context)
        except BaseException as raised:
            error = raised
            raise
        finally:
            observe(started, context, error)

    async def streamed(
        inner: Any, request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        # A streaming behaviour is an async generator, or a coroutine using context.write.
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            result = inner(request, context)
            if inspect.isasyncgen(result):
                async for item in result:
                    yield item
            else:
                await result
        except BaseException as raised:
            error = raised
            raise
        finally:
            observe(started, context, error)

    kinds: list[tuple[str, Any, Callable[..., grpc.RpcMethodHandler]]] = [
        ("unary_unary", unary, grpc.unary_unary_rpc_method_handler),
        ("stream_unary", unary, grpc.stream_unary_rpc_method_handler),
        ("unary_stream", streamed, grpc.unary_stream_rpc_method_handler),
        ("stream_stream", streamed, grpc.stream_stream_rpc_method_handler),
    ]
    for kind, wrap, make in kinds:
        inner = getattr(handler, kind)
        if inner is None:
            continue
        if wrap is unary:

            async def behaviour(request: Any, context: Any, _inner: Any = inner) -> Any:
                return await unary(_inner, request, context)

        else:

            async def behaviour(  # type: ignore[misc]
                request: Any, context: Any, _inner: Any = inner
            ) -> AsyncIterator[Any]:
                async for item in streamed(_inner, request, context):
                    yield item

        return make(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


# --- the /metrics endpoint ------------------------------------------------------------


async def metrics_handler(_request: web.Request) -> web.Response:
    """GET /metrics: the process's registry in the Prometheus text format."""
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class MetricsServer:
    """An aiohttp server answering GET /metrics on a port of its own."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket) -> None:
        self._runner = runner
        self._sock = sock
        self.host, self.port = sock.getsockname()[:2]

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/metrics"

    async def stop(self) -> None:
        await self._runner.cleanup()
        self._sock.close()


async def start_metrics_server(host: str, port: int) -> MetricsServer:
    """Serves /metrics on host:port (port 0: a free one, see `.port`). Raises OSError
    when the port is taken."""
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    server = MetricsServer(runner, sock)
    log.info("metrics served", url=server.url)
    return server


def listen_host(address: str) -> str:
    """The host part of a listen address ("0.0.0.0:50051" -> "0.0.0.0")."""
    return address.rpartition(":")[0].strip("[]") or "0.0.0.0"


async def serve_metrics(listen_address: str, port: int, variable: str) -> MetricsServer | None:
    """The process's /metrics endpoint beside a server listening on `listen_address`:
    same host, port `port` (set by `variable`); None when `port` is negative (off).
    A port taken is an OperatorError naming `variable`."""
    if port < 0:
        return None
    host = listen_host(listen_address)
    try:
        return await start_metrics_server(host, port)
    except OSError as error:
        raise listen_failed(f"{host}:{port}", variable, error) from None

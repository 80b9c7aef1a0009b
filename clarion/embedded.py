"""The embedded default: every service and the gateway on one machine, over gRPC on
loopback; delivery in a process of its own so that sending and the other services use
both cores.

This module is the composition root, the one place that knows all services; the
services themselves never import each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import secrets
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from pydantic import SecretStr

from services.kit import operator
from services.kit.clock import Clock
from services.kit.config import SERVICE_NAMES, Settings
from services.kit.grpcserver import ManagedServer
from services.kit.logging import configure_logging, get_logger
from services.kit.metrics import MetricsServer, serve_metrics
from services.kit.operator import OperatorError, listen_failed

# How long a stopping child process may take to finish its work in flight (delivery's
# sends, the gateway's requests).
PROCESS_STOP_SECONDS = 30.0

log = get_logger("clarion.embedded")


def _factories() -> dict[str, Callable[..., Awaitable[ManagedServer]]]:
    from services.campaign.server import create_server as campaign
    from services.delivery.server import create_server as delivery
    from services.reporting.server import create_server as reporting
    from services.segment.server import create_server as segment

    return {"campaign": campaign, "segment": segment, "delivery": delivery, "reporting": reporting}


def ensure_internal_token(settings: Settings) -> None:
    """All services in one process can share a fresh token; a deployment sets its own."""
    if not settings.internal_token.get_secret_value():
        settings.internal_token = SecretStr(secrets.token_urlsafe(32))
        settings.__dict__.pop("internal_token_value", None)


def tune_gc() -> None:
    """Long-lived servers: objects made at start-up are never garbage, and the default
    thresholds make the collector run every few hundred allocations on the send path."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def stop_on_signals() -> asyncio.Event:
    """An event SIGINT or SIGTERM sets from now on (instead of ending the process), so a
    signal that comes while a stack is still starting stops it once started."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def until_signalled() -> None:
    """Until SIGINT or SIGTERM; in a child process of a stack, also until the stack's
    first process has gone: a child whose parent was killed (kill -9, the OOM killer)
    stops instead of serving on alone, holding its port and its database against the
    stack started next."""
    stop = stop_on_signals()
    parent = multiprocessing.parent_process()  # None outside a stack's child
    if parent is None:
        await stop.wait()
        return
    loop = asyncio.get_running_loop()
    # Readable once the parent has exited: the pipe's other end was the parent's.
    loop.add_reader(parent.sentinel, stop.set)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(parent.sentinel)
    if not parent.is_alive():
        log.warning("the stack's first process has gone; stopping", pid=parent.pid)


def _run_child(
    serve: Callable[[], Coroutine[Any, Any, None]], port_out: Connection
) -> None:
    """Runs a child process's `serve`; a problem the operator fixes (an OperatorError)
    is sent to the parent, which says it once as its own: no traceback from here."""
    try:
        asyncio.run(serve())
    except OperatorError as error:
        if not port_out.closed:
            port_out.send((type(error).__name__, str(error)))
            port_out.close()
        raise SystemExit(1) from None


def _serve_delivery(values: dict[str, Any], port_out: Connection, metrics_port: int) -> None:
    """The delivery process: binds its port, reports it and its /metrics URL ("" when
    `metrics_port` is negative; or, for a problem the operator fixes, the
    OperatorError's class and line), serves until SIGTERM."""
    from services.delivery.settings import DeliverySettings

    settings = DeliverySettings(**values)
    configure_logging(settings.log_format, settings.log_level)

    async def serve() -> None:
        from services.delivery.server import create_server

        server = await create_server(settings.listen_for("delivery"), settings)
        await server.start()
        try:
            metrics = await serve_metrics(
                settings.listen_for("delivery"), metrics_port, settings.variable("metrics_port")
            )
        except OperatorError:
            await server.stop()
            raise
        port_out.send({"port": server.port, "metrics": metrics.url if metrics else ""})
        port_out.close()
        tune_gc()
        try:
            await until_signalled()
        finally:
            if metrics is not None:
                await metrics.stop()
            await server.stop()

    _run_child(serve, port_out)


def _serve_gateway(values: dict[str, Any], port_out: Connection, metrics_port: int) -> None:
    """The gateway's process: binds its port, reports it and its /metrics URL (the
    gateway serves its own; `metrics_port` is unused), serves until SIGTERM."""
    settings = Settings(**values)
    configure_logging(settings.log_format, settings.log_level)

    async def serve() -> None:
        from services.gateway.server import create_gateway

        address = settings.gateway_listen
        try:
            gateway = await create_gateway(address, settings)
        except OSError as error:
            raise listen_failed(address, settings.listen_variable("gateway"), error) from None
        await gateway.start()
        port_out.send(
            {"port": gateway.port, "metrics": f"{gateway.url}/metrics", "url": gateway.url}
        )
        port_out.close()
        tune_gc()
        try:
            await until_signalled()
        finally:
            await gateway.stop()

    _run_child(serve, port_out)


# What runs in a process of its own: the function it runs, the setting its address goes in.
_PROCESS_TARGETS: dict[str, tuple[Callable[[dict[str, Any], Connection, int], None], str]] = {
    "delivery": (_serve_delivery, "delivery_listen"),
    "gateway": (_serve_gateway, "gateway_listen"),
}


@dataclass
class ServiceProcess:
    """Delivery or the gateway in a process of its own (spawned: a clean interpreter),
    as a deployment runs each: the embedded stack's Python then uses both cores."""

    process: multiprocessing.process.BaseProcess
    port: int
    metrics_url: str = ""
    # The gateway's HTTP URL on loopback ("" for delivery, reached by gRPC at `port`).
    url: str = ""

    @classmethod
    async def start(
        cls, settings: Settings, address: str, metrics_port: int = -1, *, service: str = "delivery"
    ) -> ServiceProcess:
        target, listen = _PROCESS_TARGETS[service]
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        values = {**settings.model_dump(), listen: address}
        process = context.Process(
            target=target,
            args=(values, send, metrics_port),
            name=f"clarion-{service}",
            daemon=True,
        )
        process.start()
        send.close()
        ready = await asyncio.to_thread(receive.poll, 120)
        if not ready:
            process.kill()
            raise RuntimeError(f"the {service} process did not start within 120 s")
        try:
            answer = receive.recv()
        except EOFError:
            process.join(5)
            raise RuntimeError(
                f"the {service} process exited on start (code {process.exitcode}); see its log"
            ) from None
        if isinstance(answer, tuple):  # (OperatorError class name, its line)
            process.join(5)
            kind = getattr(operator, answer[0], OperatorError)
            raise kind(answer[1]) if issubclass(kind, OperatorError) else OperatorError(answer[1])
        if isinstance(answer, dict):
            return cls(
                process, int(answer["port"]), str(answer["metrics"]), str(answer.get("url", ""))
            )
        return cls(process, int(answer))

    async def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()  # SIGTERM: finish in-flight work, then exit
            await asyncio.to_thread(self.process.join, PROCESS_STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            await asyncio.to_thread(self.process.join, 5)


@dataclass
class EmbeddedStack:
    settings: Settings
    servers: dict[str, ManagedServer] = field(default_factory=dict)
    delivery_process: ServiceProcess | None = None
    # The gateway: here (a GatewayServer) or in a process of its own.
    gateway: Any = None
    gateway_process: ServiceProcess | None = None
    # This process's /metrics endpoint (with `metrics=True`); delivery's, when it runs
    # in a process of its own, is `delivery_process.metrics_url`.
    metrics: MetricsServer | None = None

    def metrics_urls(self) -> dict[str, str]:
        """Where metrics are served: this process's services, and delivery's."""
        urls: dict[str, str] = {}
        if self.metrics is not None:
            urls = {name: self.metrics.url for name in self.servers}
        if self.delivery_process is not None and self.delivery_process.metrics_url:
            urls["delivery"] = self.delivery_process.metrics_url
        if self.gateway is not None or self.gateway_process is not None:
            urls["gateway"] = f"{self.gateway_url}/metrics"
        return urls

    @property
    def gateway_url(self) -> str:
        if self.gateway_process is not None:
            return self.gateway_process.url
        return str(self.gateway.url)

    def address(self, service: str) -> str:
        if service == "delivery" and self.delivery_process is not None:
            return f"127.0.0.1:{self.delivery_process.port}"
        return self.servers[service].address

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        ephemeral_ports: bool = False,
        clock: Clock | None = None,
        with_gateway: bool = True,
        delivery_in_process: bool | None = None,
        gateway_in_process: bool = True,
        metrics: bool = False,
    ) -> EmbeddedStack:
        """Binds every service (port 0 when `ephemeral_ports`), then starts them.

        Binding all before starting any lets each learn the others' real addresses:
        peers open their channels lazily from the shared settings. Delivery runs in a
        process of its own unless `delivery_in_process` (or an injected clock, which
        another process cannot share) keeps it here; the gateway runs here unless
        `gateway_in_process` is False (`clarion serve`, the segments benchmark: the
        browsers' requests and the services then use both cores, as deployed).

        With `metrics`, this process serves /metrics on campaign's metrics port and a
        delivery process of its own on delivery's (free ports when `ephemeral_ports`).
        """
        from services.delivery.settings import delivery_settings
        from services.gateway.server import create_gateway

        if delivery_in_process is None:
            delivery_in_process = clock is not None
        ensure_internal_token(settings)
        given = settings
        if delivery_in_process:
            # One object for every service here: delivery reads its own knobs from it,
            # and a copy made later would miss the ports written below.
            settings = delivery_settings(settings)
        stack = cls(settings)
        factories = _factories()
        try:
            here = [n for n in SERVICE_NAMES if delivery_in_process or n != "delivery"]
            for name in here:
                address = "127.0.0.1:0" if ephemeral_ports else settings.listen_for(name)
                stack.servers[name] = await factories[name](address, settings, clock=clock)
            for name, server in stack.servers.items():
                for target in {id(settings): settings, id(given): given}.values():
                    setattr(target, f"{name}_address", f"127.0.0.1:{server.port}")
            if not delivery_in_process:
                address = "127.0.0.1:0" if ephemeral_ports else settings.listen_for("delivery")
                port = settings.metrics_port_for("delivery") if metrics else -1
                if port > 0 and ephemeral_ports:
                    port = 0
                stack.delivery_process = await ServiceProcess.start(settings, address, port)
                settings.delivery_address = stack.address("delivery")
            for server in stack.servers.values():
                await server.start()
            if metrics and settings.metrics_port >= 0:
                stack.metrics = await serve_metrics(
                    settings.listen_for("campaign"),
                    0 if ephemeral_ports else settings.metrics_port_for("campaign"),
                    settings.variable("metrics_port"),
                )
            address = "127.0.0.1:0" if ephemeral_ports else settings.gateway_listen
            if with_gateway and not gateway_in_process:
                stack.gateway_process = await ServiceProcess.start(
                    settings, address, service="gateway"
                )
            elif with_gateway:
                try:
                    stack.gateway = await create_gateway(address, settings)
                except OSError as error:
                    raise listen_failed(
                        address, settings.listen_variable("gateway"), error
                    ) from None
                await stack.gateway.start()
        except BaseException:
            await stack.stop()
            raise
        tune_gc()
        return stack

    async def stop(self) -> None:
        if self.metrics is not None:
            await self.metrics.stop()
            self.metrics = None
        if self.gateway is not None:
            await self.gateway.stop()
            self.gateway = None
        if self.gateway_process is not None:
            await self.gateway_process.stop()
            self.gateway_process = None
        # Delivery first, so in-flight sends finish while their peers are still up.
        if self.delivery_process is not None:
            await self.delivery_process.stop()
            self.delivery_process = None
        for name in ("delivery", "campaign", "segment", "reporting"):
            server = self.servers.pop(name, None)
            if server is not None:
                await server.stop()

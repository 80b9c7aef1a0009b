"""gRPC server bootstrap: health (tied to a real dependency probe), reflection, interceptors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.auth import SiteAuthInterceptor, SiteResolver
from services.kit.config import Settings
from services.kit.db import (
    check_database,
    create_engine_for,
    database_reachable,
    schema_is_current,
    upgrade_to_head,
)
from services.kit.logging import get_logger
from services.kit.metrics import RpcMetricsInterceptor
from services.kit.operator import CannotListen, SchemaOutOfDate, check_can_listen

if TYPE_CHECKING:  # peers builds on client_channel below
    from services.kit.peers import Peers

log = get_logger("clarion.grpc")

Register = Callable[[grpc.aio.Server], None]
Probe = Callable[[], Awaitable[bool]]
Hook = Callable[[], Awaitable[None]]


class ManagedServer:
    """A started grpc.aio server plus its health-probe task; `stop()` shuts both down."""

    def __init__(
        self,
        server: grpc.aio.Server,
        port: int,
        health_servicer: health.aio.HealthServicer,
        service_names: Sequence[str],
        probe: Probe | None,
        probe_interval: float,
        on_start: Sequence[Hook] = (),
        on_stop: Sequence[Hook] = (),
    ) -> None:
        self.server = server
        self._on_start = list(on_start)
        self._on_stop = list(on_stop)
        self.port = port
        self._health = health_servicer
        self._service_names = service_names
        self._probe = probe
        self._probe_interval = probe_interval
        self._probe_task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        for hook in self._on_start:
            await hook()
        await self.server.start()
        await self._check_health()
        if self._probe is not None:
            self._probe_task = asyncio.create_task(self._probe_loop())

    async def _check_health(self) -> None:
        healthy = True
        if self._probe is not None:
            try:
                healthy = await self._probe()
            except Exception:  # a failing probe means NOT_SERVING, not a crash
                log.warning("health probe failed", exc_info=True)
                healthy = False
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if healthy
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self._service_names):
            await self._health.set(name, status)

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval)
            await self._check_health()

    async def stop(self, grace: float = 2.0) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        await self._health.enter_graceful_shutdown()
        await self.server.stop(grace)
        # Hooks stop background work and close resources, in reverse order of need.
        for hook in self._on_stop:
            await hook()

    async def wait(self) -> None:
        await self.server.wait_for_termination()


def build_server(
    address: str,
    register: Sequence[Register],
    service_names: Sequence[str],
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    probe: Probe | None = None,
    probe_interval: float = 10.0,
    on_start: Sequence[Hook] = (),
    on_stop: Sequence[Hook] = (),
    listen_variable: str = "the listen address",
) -> ManagedServer:
    """Binds a server to `address` ('[::]:0' picks a free port); call `start()` next.

    A port already taken raises PortInUse naming `listen_variable` (the setting that
    gave the address)."""
    check_can_listen(address, listen_variable)
    server = grpc.aio.server(
        # Outermost, so clarion_rpc_duration_seconds also counts the calls auth refuses.
        interceptors=[RpcMetricsInterceptor(), *interceptors],
        options=[
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
    )
    for add in register:
        add(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:  # taken between the check and here
        port = 0
    if port == 0:
        raise CannotListen(
            f"could not listen on {address} (in use, or not an address of this machine); "
            f"set {listen_variable} to a free address"
        )
    return ManagedServer(
        server, port, health_servicer, service_names, probe, probe_interval, on_start, on_stop
    )


def client_channel(address: str, options: Sequence[tuple[str, str]] = ()) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        address,
        options=[("grpc.max_receive_message_length", 16 * 1024 * 1024), *options],
    )


async def open_service_database(service: str, settings: Settings) -> AsyncEngine:
    """Migrates the service's own schema to head (or, when migrations are a separate step,
    checks that they ran), then opens its engine."""
    url = settings.database_url_for(service)
    await asyncio.to_thread(
        check_database, url, service=service, variable=settings.database_variable_for(service)
    )
    if settings.migrate_on_start:
        await asyncio.to_thread(upgrade_to_head, service, url)
    elif not await asyncio.to_thread(schema_is_current, service, url):
        raise SchemaOutOfDate(
            f"the {service} database schema is not at this version: run "
            f"`clarion migrate {service}` first "
            f"({settings.variable('migrate_on_start')} is false)"
        )
    return create_engine_for(url)


def build_service_server(
    address: str,
    settings: Settings,
    *,
    register: Sequence[Register],
    service_names: Sequence[str],
    engine: AsyncEngine,
    peers: Peers,
    site_resolver: SiteResolver,
    internal_only_methods: Sequence[str] = (),
    internal_services: Sequence[str] = (),
    on_start: Sequence[Hook] = (),
    on_stop: Sequence[Hook] = (),
) -> ManagedServer:
    """A Clarion service's server: site auth, health tied to its database, and cleanup.
    `address` is normally one of the settings' listen addresses; a port already taken
    is reported with the variable that set it.

    `on_stop` hooks run first (they stop background work), then the engine and peer
    channels close.
    """
    return build_server(
        address,
        register,
        service_names,
        interceptors=[
            SiteAuthInterceptor(
                site_resolver,
                settings.internal_token_value,
                internal_only_methods,
                internal_services,
            )
        ],
        probe=lambda: database_reachable(engine),
        on_start=on_start,
        on_stop=[*on_stop, engine.dispose, peers.close],
        listen_variable=settings.listen_variable_for_address(address),
    )

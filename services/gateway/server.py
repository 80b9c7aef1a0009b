"""Runs the gateway app on a socket bound up front, so `.port` is known before `start()`."""

from __future__ import annotations

import socket

from aiohttp import web

from services.gateway.app import create_app
from services.kit.clock import Clock
from services.kit.config import Settings
from services.kit.logging import get_logger
from services.kit.metrics import metrics_handler
from services.kit.peers import Peers

log = get_logger("clarion.gateway")


def _bind(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    except BaseException:
        sock.close()
        raise
    return sock


class GatewayServer:
    def __init__(
        self, runner: web.AppRunner, sock: socket.socket, owned_peers: Peers | None
    ) -> None:
        self._runner = runner
        self._sock = sock
        self._owned_peers = owned_peers
        self._bound_host, self.port = sock.getsockname()[:2]
        # The loopback URL works whatever interface was bound (tests, the embedded stack).
        self._host = "[::1]" if sock.family == socket.AF_INET6 else "127.0.0.1"
        self._started = False

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        await web.SockSite(self._runner, self._sock).start()
        self._started = True
        log.info("gateway listening", host=self._bound_host, port=self.port)

    async def stop(self) -> None:
        await self._runner.cleanup()
        if not self._started:
            self._sock.close()
        if self._owned_peers is not None:
            await self._owned_peers.close()


async def create_gateway(
    address: str, settings: Settings, *, peers: Peers | None = None, clock: Clock | None = None
) -> GatewayServer:
    """Binds the gateway to `address` ('127.0.0.1:0' picks a free port); `start()` next.

    Peers passed in stay the caller's to close; peers made here close with the server.
    """
    owns_peers = peers is None
    peers = peers or Peers(settings)
    app = create_app(peers, clock=clock, public_url=settings.gateway_public_url)
    # The process's Prometheus metrics (docs/metrics.md), beside the browser-facing routes.
    app.router.add_get("/metrics", metrics_handler)
    sock = _bind(address)
    runner = web.AppRunner(app, access_log=None)  # our middleware logs one line per request
    try:
        await runner.setup()
    except BaseException:
        sock.close()
        raise
    return GatewayServer(runner, sock, peers if owns_peers else None)

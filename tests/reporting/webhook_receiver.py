"""A real HTTP receiver on 127.0.0.1 for webhook tests: every request is kept, and each
path answers what the test scripted (200 by default; a list of statuses is answered in
turn, its last one repeated; a redirect answers 302 to another path)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")

    def verify(self, secret: str) -> object:
        """The JSON body, if `secret` signed it (Standard Webhooks' own check);
        raises WebhookVerificationError otherwise."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class WebhookReceiver:
    received: list[Received] = field(default_factory=list)
    _scripts: dict[str, list[int]] = field(default_factory=dict)
    _redirects: dict[str, str] = field(default_factory=dict)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def new_path(self) -> str:
        return f"/hooks/{uuid.uuid4().hex}"

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def answer(self, path: str, *statuses: int) -> None:
        self._scripts[path] = list(statuses)

    def redirect(self, path: str, to: str) -> None:
        self._redirects[path] = to

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Received]:
        """The requests to `path` once there are at least `count` of them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.at(path)) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{path} received {len(self.at(path))} requests, expected {count}"
                )
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.1))
            except TimeoutError:
                pass
        return self.at(path)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            Received(request.path, {k.lower(): v for k, v in request.headers.items()}, body)
        )
        self._arrived.set()
        if request.path in self._redirects:
            raise web.HTTPFound(self._redirects[request.path])
        script = self._scripts.get(request.path)
        status = 200
        if script:
            status = script.pop(0) if len(script) > 1 else script[0]
        return web.Response(status=status, text="ok" if status < 300 else "no")

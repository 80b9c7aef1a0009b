"""A background task of a server: calls a coroutine function every so often while the
server runs (its `start`/`stop` go into build_service_server's on_start/on_stop)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from services.kit.logging import get_logger


class PeriodicLoop:
    """Calls `work` now and then every `interval_seconds` (sooner when `wanted` is set)
    until stopped; a failure is logged (`failure`, with its traceback, to `logger`) and
    the next round tries again."""

    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[object]],
        interval_seconds: float,
        *,
        failure: str,
        wanted: asyncio.Event | None = None,
        logger: structlog.stdlib.BoundLogger | None = None,
    ) -> None:
        self._name = name
        self._work = work
        self._interval = interval_seconds
        self._failure = failure
        self._wanted = wanted or asyncio.Event()
        self._log = logger if logger is not None else get_logger(__name__)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _failed(self) -> None:
        """Logs a failed round (inside the `except`)."""
        self._log.exception(self._failure)

    async def _loop(self) -> None:
        while True:
            try:
                await self._work()
            except Exception:
                self._failed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), self._interval)
            self._wanted.clear()

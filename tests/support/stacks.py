"""The running platform and push-service simulator that end-to-end test modules share.

Each conftest picks the scope: a stack left idle still polls, so modules that need it
only for themselves hold it for the module, not the session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from clarion.embedded import EmbeddedStack
from clarion.simulator import PushServiceSimulator


@asynccontextmanager
async def running_simulator(host: str = "127.0.0.1") -> AsyncIterator[PushServiceSimulator]:
    """A push-service simulator on `host` (another loopback address is another origin)."""
    sim = PushServiceSimulator()
    await sim.start(host, 0)
    try:
        yield sim
    finally:
        await sim.stop()


@asynccontextmanager
async def running_stack(settings_factory: Callable[..., Any]) -> AsyncIterator[EmbeddedStack]:
    """The whole platform on ephemeral ports, with short push timeouts and fast polling."""
    settings = settings_factory(push_timeout_seconds=2.0, delivery_poll_seconds=0.05)
    running = await EmbeddedStack.start(settings, ephemeral_ports=True)
    try:
        yield running
    finally:
        await running.stop()

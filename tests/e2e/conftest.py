"""The whole platform in-process on ephemeral ports, on each test database backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from clarion.embedded import EmbeddedStack
from clarion.simulator import PushServiceSimulator


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def simulator() -> AsyncIterator[PushServiceSimulator]:
    sim = PushServiceSimulator()
    await sim.start("127.0.0.1", 0)
    yield sim
    await sim.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(settings_factory) -> AsyncIterator[EmbeddedStack]:  # type: ignore[no-untyped-def]
    settings = settings_factory(push_timeout_seconds=2.0, delivery_poll_seconds=0.05)
    running = await EmbeddedStack.start(settings, ephemeral_ports=True)
    yield running
    await running.stop()

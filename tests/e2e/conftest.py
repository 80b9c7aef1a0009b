"""The whole platform in-process on ephemeral ports, on each test database backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from clarion.embedded import EmbeddedStack
from clarion.simulator import PushServiceSimulator
from tests.support.stacks import running_simulator, running_stack


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def simulator() -> AsyncIterator[PushServiceSimulator]:
    async with running_simulator() as sim:
        yield sim


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(settings_factory) -> AsyncIterator[EmbeddedStack]:  # type: ignore[no-untyped-def]
    async with running_stack(settings_factory) as running:
        yield running

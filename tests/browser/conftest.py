"""The SDK in Debian's headless Chromium (driven by playwright-core from npm) against the
whole platform on ephemeral ports, with the push-service simulator.

Nothing here skips: a missing Chromium, node or npm package is a failure that says how
to install it (`make browser-deps`, `make sdk`), as `make test` installs them itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from clarion.demo_browser import browser_problems, sdk_dir, serve_site
from clarion.embedded import EmbeddedStack
from clarion.simulator import PushServiceSimulator
from tests.support.stacks import running_simulator, running_stack

SDK = Path(__file__).resolve().parents[2] / "sdk" / "web"


@pytest.fixture(scope="session")
def sdk() -> Path:
    assert sdk_dir().resolve() == SDK, "set CLARION_SDK_WEB to this checkout's sdk/web"
    problems = browser_problems(SDK)
    if problems:
        pytest.fail("the browser tests cannot run: " + "; ".join(problems), pytrace=False)
    return SDK


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page_url(sdk: Path) -> AsyncIterator[str]:
    """A site's origin on 127.0.0.1: the test page, the SDK and its service worker."""
    async with serve_site(sdk) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def simulator() -> AsyncIterator[PushServiceSimulator]:
    async with running_simulator() as sim:
        yield sim


# Module-scoped: an idle stack left running polls (and takes CPU from) every test after it.
@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(settings_factory) -> AsyncIterator[EmbeddedStack]:  # type: ignore[no-untyped-def]
    async with running_stack(settings_factory) as running:
        yield running

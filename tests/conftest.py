"""Real databases for every suite: SQLite always, PostgreSQL when CLARION_TEST_POSTGRES_URL is set.

Tests share one database per backend for the session; they stay apart the way users
do, by working in a site of their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from services.delivery.settings import DeliverySettings
from services.kit.config import Settings

POSTGRES_ENV = "CLARION_TEST_POSTGRES_URL"
INTERNAL_TOKEN = "internal-test-token-" + uuid.uuid4().hex
# Services the tests run as processes (`clarion serve`, `clarion up`) serve /metrics on
# free ports: fixed ones would collide between concurrent runs.
os.environ.setdefault("CLARION_METRICS_PORT", "0")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and not os.environ.get(POSTGRES_ENV):
        raise pytest.UsageError(f"CI must run on PostgreSQL too: set {POSTGRES_ENV}")


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(POSTGRES_ENV) else ["sqlite"]


@pytest.fixture(scope="session", params=_backends())
def database_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_factory(
    database_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], str]]:
    """Makes empty databases on the session's backend; PostgreSQL ones are dropped at the end.

    Each test deployment gets its own, as real deployments do: two delivery services
    on one database would share (and claim) each other's queue.
    """
    created: list[str] = []
    admin = None
    if database_backend == "postgresql":
        base = make_url(os.environ[POSTGRES_ENV]).set(drivername="postgresql+psycopg")
        admin = create_engine(base, isolation_level="AUTOCOMMIT")

    def make() -> str:
        if admin is None:
            return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'clarion.db'}"
        name = f"clarion_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return admin.url.set(database=name).render_as_string(hide_password=False)

    yield make
    if admin is not None:
        with admin.connect() as connection:
            for name in created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(database_factory: Callable[[], str]) -> str:
    """One database for the session's tests that need no deployment of their own."""
    return database_factory()


@pytest.fixture(scope="session")
def settings_factory(database_factory: Callable[[], str], tmp_path_factory: pytest.TempPathFactory):
    """Settings for one deployment under test: a fresh database of its own, the internal token.

    Pass `database_url=` to make a second deployment share the first one's database.
    """

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "internal_token": INTERNAL_TOKEN,
            "data_dir": Path(tmp_path_factory.mktemp("data")),
            "allow_insecure_endpoints": True,
            "log_format": "console",
        }
        values.update(overrides)
        if "database_url" not in values:
            values["database_url"] = database_factory()
        # Delivery's settings are the shared ones plus its own knobs: one object serves
        # every service of a test deployment.
        return DeliverySettings(**values)  # type: ignore[arg-type]

    return make

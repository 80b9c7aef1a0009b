"""Real databases for every suite: SQLite always, PostgreSQL when CLARION_TEST_POSTGRES_URL is set.

Tests share one database per backend for the session; they stay apart the way users
do, by working in a site of their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from services.kit.config import Settings

POSTGRES_ENV = "CLARION_TEST_POSTGRES_URL"
INTERNAL_TOKEN = "internal-test-token-" + uuid.uuid4().hex


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and not os.environ.get(POSTGRES_ENV):
        raise pytest.UsageError(f"CI must run on PostgreSQL too: set {POSTGRES_ENV}")


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(POSTGRES_ENV) else ["sqlite"]


@pytest.fixture(scope="session", params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'clarion.db'}"
        return
    base = make_url(os.environ[POSTGRES_ENV]).set(drivername="postgresql+psycopg")
    name = f"clarion_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def settings_factory(database_url: str, tmp_path_factory: pytest.TempPathFactory):
    """Settings for a service under test: the session's database, the internal token."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": database_url,
            "internal_token": INTERNAL_TOKEN,
            "data_dir": Path(tmp_path_factory.mktemp("data")),
            "allow_insecure_endpoints": True,
            "log_format": "console",
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make

"""Database bootstrap: one declarative base per service with a naming convention,
async engines for SQLite (embedded default) and PostgreSQL, Alembic upgrades."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator

from services.kit.operator import DatabaseUnavailable

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on both backends (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def async_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def sync_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+asyncpg"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the single writer; busy_timeout waits out a writer.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def create_engine_for(url: str) -> AsyncEngine:
    if is_sqlite(url):
        _ensure_sqlite_dir(url)
        engine = create_async_engine(async_url(url))
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(async_url(url), pool_size=10, max_overflow=10, pool_pre_ping=True)


def create_sync_engine_for(url: str, *, connections: int = 5) -> Engine:
    """A synchronous engine; on PostgreSQL it keeps `connections` open, the most its
    caller uses at once: one more would be opened and closed per use (a new server
    process each time, its prepared statements lost)."""
    from sqlalchemy import create_engine

    if is_sqlite(url):
        _ensure_sqlite_dir(url)
        engine = create_engine(sync_url(url))
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(sync_url(url), pool_size=connections, max_overflow=10)


def _first_line(error: BaseException) -> str:
    text_ = str(getattr(error, "orig", None) or error).strip()
    return text_.splitlines()[0].strip() if text_ else type(error).__name__


def check_database(url: str, *, service: str, variable: str) -> None:
    """Connects once; a URL that does not parse, a driver that is not installed or a
    database out of reach raises DatabaseUnavailable naming `variable` (the setting
    that chose the URL), the password left out."""
    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError):
        raise DatabaseUnavailable(
            f"{variable} is not a database URL (the {service} service's); give e.g. "
            "postgresql+psycopg://user:password@host:5432/clarion or sqlite:///path/to/file.db"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        engine = create_sync_engine_for(url)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as error:
        raise DatabaseUnavailable(
            f"{variable}: cannot use {shown} for the {service} service "
            f"({_first_line(error)}); use postgresql+psycopg://... or sqlite:///..."
        ) from None
    except OSError as error:  # SQLite's directory could not be made
        raise DatabaseUnavailable(
            f"the {service} database {shown} cannot be created: {error.strerror} "
            f"(set by {variable})"
        ) from None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except sa_exc.DBAPIError as error:
        raise DatabaseUnavailable(
            f"the {service} database is unreachable ({shown}, set by {variable}): "
            f"{_first_line(error)}"
        ) from None
    finally:
        engine.dispose()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def database_reachable(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return True


def _alembic_config(service: str, url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", f"services.{service}:migrations")
    config.set_main_option("version_table", f"alembic_version_{service}")
    config.attributes["service"] = service
    config.attributes["database_url"] = url
    return config


def schema_is_current(service: str, url: str) -> bool:
    """Whether the service's schema in this database is at this code's head revision."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(_alembic_config(service, url)).get_heads())
    engine = create_sync_engine_for(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": f"alembic_version_{service}"}
            )
            return set(context.get_current_heads()) == heads
    finally:
        engine.dispose()


def upgrade_to_head(service: str, url: str) -> None:
    """Runs the service's Alembic history (services/<service>/migrations) up to head.

    Each service keeps its own version table, so several can share one database.
    """
    from alembic import command

    command.upgrade(_alembic_config(service, url), "head")

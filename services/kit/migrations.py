"""The body of every service's Alembic env.py: one history per service, own version table."""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData

from services.kit.db import create_sync_engine_for, is_sqlite


def run_migrations(metadata: MetaData) -> None:
    config = context.config
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migration")
    version_table = config.get_main_option("version_table") or "alembic_version"
    engine = create_sync_engine_for(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                version_table=version_table,
                compare_type=True,
                render_as_batch=is_sqlite(url),
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()

"""The body of every service's Alembic env.py: one history per service, own version table.

Alembic's own INFO lines (the dialect it chose, every start) are left out of the log
(services.kit.logging); a revision that is applied is logged once, here."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import MetaData

from services.kit.db import create_sync_engine_for, is_sqlite
from services.kit.logging import get_logger

log = get_logger("clarion.migrations")


def _applied(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    """Alembic's on_version_apply hook: one line per revision applied (or reverted)."""
    log.info(
        "migration applied" if step.is_upgrade else "migration reverted",
        service=context.config.attributes.get("service", ""),
        revision=step.up_revision_id,
        description=(getattr(step.up_revision, "doc", "") or "").strip(),
    )


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
                on_version_apply=_applied,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()

"""subscribers: one key (site_id, subscriber_id), partial profile and sample indexes

Revision ID: 4e7aca71e35d
Revises: 42d41b2ed477
Create Date: 2026-12-02 06:36:33

The key (site_id, subscriber_id) replaces the key on subscriber_id and the index on
(site_id, subscriber_id); the profile index covers only subscribers of a profile, the
sample index only anonymous ones. An anonymous subscriber written costs two B-tree
entries less, one with a profile one less.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.kit.db

revision = "4e7aca71e35d"
down_revision = "42d41b2ed477"
branch_labels = None
depends_on = None

_TABLE = "segment_subscribers"
_KEY = "pk_segment_subscribers"
_SITE_SUBSCRIBER = "ix_segment_subscribers_site_id_subscriber_id"
# index: (columns, the rows it covers)
_PARTIAL = {
    "ix_segment_subscribers_site_id_profile_id": (
        ["site_id", "profile_id"],
        "profile_id IS NOT NULL",
    ),
    "ix_segment_subscribers_site_id_sample_bucket": (
        ["site_id", "sample_bucket"],
        "profile_id IS NULL",
    ),
}


def _sqlite_copy(key: list[str]) -> None:
    """SQLite changes a key by copying the table. Alembic's batch mode cannot do it here:
    reflection misreads the generated column ALTER TABLE appended, and the copy would
    insert into it. The copy has no indexes; the caller creates them."""
    copy = sa.Table(
        f"{_TABLE}_copy",
        sa.MetaData(),
        sa.Column("subscriber_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(2048), nullable=False),
        sa.Column("p256dh", sa.LargeBinary(65), nullable=False),
        sa.Column("auth", sa.LargeBinary(16), nullable=False),
        sa.Column("browser", sa.String(16), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("profile_id", sa.String(128)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("unsubscribe_reason", sa.String(128)),
        sa.Column("create_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("update_time", services.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("unsubscribe_time", services.kit.db.UTCDateTime(timezone=True)),
        sa.Column("vapid_key_id", sa.String(64)),
        sa.Column("sample_bucket", sa.SmallInteger(), sa.Computed("0", persisted=False)),
        sa.Column("apns_topic", sa.String(128)),
        sa.PrimaryKeyConstraint(*key, name=_KEY),
        sa.UniqueConstraint("site_id", "endpoint", name="uq_segment_subscribers_site_id_endpoint"),
    )
    copy.create(op.get_bind())
    stored = ", ".join(column.name for column in copy.columns if column.computed is None)
    op.execute(f"INSERT INTO {copy.name} ({stored}) SELECT {stored} FROM {_TABLE}")
    op.drop_table(_TABLE)
    op.rename_table(copy.name, _TABLE)


def _partial_indexes(partial: bool) -> None:
    for name, (columns, where) in _PARTIAL.items():
        predicate = sa.text(where) if partial else None
        op.create_index(name, _TABLE, columns, postgresql_where=predicate, sqlite_where=predicate)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(_SITE_SUBSCRIBER, _TABLE)
        op.drop_constraint(_KEY, _TABLE, type_="primary")
        op.create_primary_key(_KEY, _TABLE, ["site_id", "subscriber_id"])
        for name in _PARTIAL:
            op.drop_index(name, _TABLE)
    else:
        _sqlite_copy(["site_id", "subscriber_id"])
    _partial_indexes(True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in _PARTIAL:
            op.drop_index(name, _TABLE)
        op.drop_constraint(_KEY, _TABLE, type_="primary")
        op.create_primary_key(_KEY, _TABLE, ["subscriber_id"])
    else:
        _sqlite_copy(["subscriber_id"])
    _partial_indexes(False)
    op.create_index(_SITE_SUBSCRIBER, _TABLE, ["site_id", "subscriber_id"])

"""Persistence of subscribers: the only module of the segment service that speaks SQL.

Every function takes the caller's site id and filters on it, so a row of another site
is never read or changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.db import session_factory
from services.segment.models import Browser, SubscriberRow, SubscriberState


@dataclass(frozen=True)
class Subscriber:
    subscriber_id: str
    site_id: str
    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: Browser
    timezone: str
    profile_id: str | None
    state: SubscriberState
    unsubscribe_reason: str | None
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class NewSubscription:
    """What RegisterSubscriber stores, already validated by the domain."""

    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: Browser
    timezone: str
    profile_id: str | None


def _to_subscriber(row: SubscriberRow) -> Subscriber:
    return Subscriber(
        subscriber_id=row.subscriber_id,
        site_id=row.site_id,
        endpoint=row.endpoint,
        p256dh=bytes(row.p256dh),
        auth=bytes(row.auth),
        browser=Browser(row.browser),
        timezone=row.timezone,
        profile_id=row.profile_id,
        state=SubscriberState(row.state),
        unsubscribe_reason=row.unsubscribe_reason,
        create_time=row.create_time,
        update_time=row.update_time,
    )


class SubscriberStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = session_factory(engine)

    def _insert(self) -> Any:
        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(SubscriberRow)
        if dialect == "sqlite":
            return sqlite.insert(SubscriberRow)
        raise RuntimeError(f"unsupported database dialect {dialect!r}")

    async def upsert(
        self, site_id: str, new_subscriber_id: str, subscription: NewSubscription, now: datetime
    ) -> tuple[Subscriber, bool]:
        """Inserts the subscription, or updates and re-activates the site's row with the
        same endpoint. Returns the stored subscriber and whether it was created.

        One INSERT .. ON CONFLICT statement, so two concurrent registrations of one
        endpoint cannot both insert.
        """
        changes = {
            "p256dh": subscription.p256dh,
            "auth": subscription.auth,
            "browser": subscription.browser.value,
            "timezone": subscription.timezone,
            "profile_id": subscription.profile_id,
            "state": SubscriberState.ACTIVE.value,
            "unsubscribe_reason": None,
            "update_time": now,
        }
        statement = (
            self._insert()
            .values(
                subscriber_id=new_subscriber_id,
                site_id=site_id,
                endpoint=subscription.endpoint,
                create_time=now,
                **changes,
            )
            .on_conflict_do_update(index_elements=["site_id", "endpoint"], set_=changes)
            .returning(SubscriberRow)
        )
        async with self._sessions.begin() as session:
            row = (await session.execute(statement)).scalar_one()
            subscriber = _to_subscriber(row)
        return subscriber, subscriber.subscriber_id == new_subscriber_id

    async def get(self, site_id: str, subscriber_id: str) -> Subscriber | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(SubscriberRow).where(
                    SubscriberRow.site_id == site_id,
                    SubscriberRow.subscriber_id == subscriber_id,
                )
            )
            return _to_subscriber(row) if row is not None else None

    async def unsubscribe(
        self, site_id: str, subscriber_id: str, reason: str, now: datetime
    ) -> Subscriber | None:
        """Marks an active subscriber unsubscribed; an unsubscribed one stays as it was
        (first reason and time win). None when the site has no such subscriber."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(SubscriberRow)
                .where(
                    SubscriberRow.site_id == site_id,
                    SubscriberRow.subscriber_id == subscriber_id,
                    SubscriberRow.state == SubscriberState.ACTIVE.value,
                )
                .values(
                    state=SubscriberState.UNSUBSCRIBED.value,
                    unsubscribe_reason=reason,
                    update_time=now,
                )
                .execution_options(synchronize_session=False)
            )
            row = await session.scalar(
                select(SubscriberRow).where(
                    SubscriberRow.site_id == site_id,
                    SubscriberRow.subscriber_id == subscriber_id,
                )
            )
            return _to_subscriber(row) if row is not None else None

    async def page(
        self,
        site_id: str,
        *,
        after: str | None,
        limit: int,
        state: SubscriberState | None = None,
    ) -> list[Subscriber]:
        async with self._sessions() as session:
            rows = await session.scalars(page_query(site_id, after=after, limit=limit, state=state))
            return [_to_subscriber(row) for row in rows]


def page_query(
    site_id: str, *, after: str | None, limit: int, state: SubscriberState | None = None
) -> Select[SubscriberRow]:
    """Up to `limit` of the site's subscribers with ids above `after`, in id order.

    Keyset pagination: with the (site_id[, state], subscriber_id) indexes this is an
    index range scan, as cheap for the millionth row as for the first.
    """
    conditions = [SubscriberRow.site_id == site_id]
    if state is not None:
        conditions.append(SubscriberRow.state == state.value)
    if after is not None:
        conditions.append(SubscriberRow.subscriber_id > after)
    return (
        select(SubscriberRow)
        .where(and_(*conditions))
        .order_by(SubscriberRow.subscriber_id)
        .limit(limit)
    )

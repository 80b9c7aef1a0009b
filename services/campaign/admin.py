"""Operator tasks run outside the server (the `clarion site create` CLI)."""

from __future__ import annotations

import asyncio

from services.campaign.domain import CreatedSite, Sites
from services.campaign.store import CampaignStore
from services.kit.clock import Clock, SystemClock
from services.kit.config import Settings
from services.kit.db import check_database, create_engine_for, upgrade_to_head

__all__ = ["CreatedSite", "create_site"]


async def create_site(
    settings: Settings,
    name: str,
    vapid_subject: str,
    *,
    clock: Clock | None = None,
) -> CreatedSite:
    """Creates a site with a fresh VAPID key pair and API key; the key is returned only here.

    `vapid_subject` is the operator's choice, with no default: a mailto: address or https:
    URL on a real domain (Apple's push service refuses localhost, .local and IP addresses).

    Raises services.kit.errors.InvalidArgument for a bad name or subject (nothing stored),
    services.kit.operator.DatabaseUnavailable for a database out of reach.
    """
    url = settings.database_url_for("campaign")
    await asyncio.to_thread(
        check_database, url, service="campaign", variable=settings.database_variable_for("campaign")
    )
    await asyncio.to_thread(upgrade_to_head, "campaign", url)
    engine = create_engine_for(url)
    try:
        return await Sites(CampaignStore(engine), clock or SystemClock()).create(
            name, vapid_subject
        )
    finally:
        await engine.dispose()

"""A site resolver backed by a dict, for testing one service without the campaign service."""

from __future__ import annotations

import secrets
import uuid


class StaticSiteResolver:
    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    async def resolve(self, api_key: str) -> str | None:
        return self.keys.get(api_key)

    def new_site(self) -> tuple[str, str]:
        """Registers a fresh site; returns (site_id, api_key)."""
        site_id = f"site_{uuid.uuid4().hex}"
        api_key = f"ck_{secrets.token_urlsafe(32)}"
        self.keys[api_key] = site_id
        return site_id, api_key


def bearer(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),)

"""Sites: the tenants, their API keys and VAPID credentials."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.campaign.store import CampaignStore, SiteCredentials, SiteRecord
from services.kit.auth import hash_api_key
from services.kit.clock import Clock
from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import new_id
from services.kit.logging import get_logger

log = get_logger(__name__)

MAX_SITE_NAME_LENGTH = 200
MAX_SUBJECT_LENGTH = 2048
API_KEY_PREFIX = "ck_"
_ENGAGEMENT_SECRET_LABEL = b"clarion engagement secret v1"


@dataclass(frozen=True)
class CreatedSite:
    """A new site and its API key; the key's plaintext exists only here, once."""

    site_id: str
    name: str
    api_key: str
    vapid_public_key: bytes

    def __repr__(self) -> str:  # never print the key by accident
        return f"CreatedSite(site_id={self.site_id!r}, name={self.name!r}, api_key=<redacted>)"


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_vapid_key_pair() -> tuple[bytes, bytes]:
    """(PKCS#8 DER private key, 65-byte uncompressed public point) on P-256."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    private_der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_point = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return private_der, public_point


def engagement_secret(vapid_private_key: bytes) -> bytes:
    """The site's 32-byte key for engagement and unsubscribe tokens.

    Derived from the VAPID private key, so it needs no column of its own and rotating the
    VAPID key rotates it (outstanding tokens then stop verifying). A secret: never log it.
    """
    if not vapid_private_key:
        raise ValueError("the site has no VAPID private key to derive its engagement secret from")
    return hmac.new(vapid_private_key, _ENGAGEMENT_SECRET_LABEL, hashlib.sha256).digest()


def validate_site_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidArgument("INVALID_SITE_NAME", "the site needs a name", field="name")
    if len(name) > MAX_SITE_NAME_LENGTH:
        raise InvalidArgument(
            "INVALID_SITE_NAME",
            f"the site name is {len(name)} characters; at most {MAX_SITE_NAME_LENGTH} are allowed",
            field="name",
        )
    return name


def validate_vapid_subject(subject: str) -> str:
    """RFC 8292 `sub`: a mailto: or https: URL (Apple's push service rejects anything else)."""
    subject = subject.strip()
    problem = (
        "the VAPID subject must be a mailto: address or an https: URL, e.g. mailto:ops@example.com"
    )
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidArgument(
            "INVALID_VAPID_SUBJECT",
            f"the VAPID subject is {len(subject)} characters; "
            f"at most {MAX_SUBJECT_LENGTH} are allowed",
            field="vapid_subject",
        )
    if subject.startswith("mailto:"):
        local, at, domain = subject.removeprefix("mailto:").partition("@")
        if local and at and domain and not any(c.isspace() for c in subject):
            return subject
        raise InvalidArgument("INVALID_VAPID_SUBJECT", problem, field="vapid_subject")
    try:
        parts = urlsplit(subject)
    except ValueError:
        parts = None
    if parts is None or parts.scheme != "https" or not parts.hostname or " " in subject:
        raise InvalidArgument("INVALID_VAPID_SUBJECT", problem, field="vapid_subject")
    return subject


class Sites:
    def __init__(self, store: CampaignStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(self, name: str, vapid_subject: str) -> CreatedSite:
        name = validate_site_name(name)
        vapid_subject = validate_vapid_subject(vapid_subject)
        # Key generation is CPU work; keep the event loop free.
        private_der, public_point = await asyncio.to_thread(new_vapid_key_pair)
        api_key = new_api_key()
        site = SiteRecord(
            site_id=new_id("site"),
            name=name,
            vapid_public_key=public_point,
            vapid_subject=vapid_subject,
            create_time=self._clock.now(),
        )
        await self._store.insert_site(site, private_der, hash_api_key(api_key))
        log.info("site created", created_site_id=site.site_id)
        return CreatedSite(
            site_id=site.site_id, name=name, api_key=api_key, vapid_public_key=public_point
        )

    async def get(self, site_id: str) -> SiteRecord:
        site = await self._store.get_site(site_id) if site_id else None
        if site is None:
            raise _site_not_found(site_id)
        return site

    async def site_for_api_key(self, api_key: str) -> str | None:
        if not api_key:
            return None
        return await self._store.site_id_for_api_key_hash(hash_api_key(api_key))

    async def credentials(self, site_id: str) -> SiteCredentials:
        if not site_id:
            raise InvalidArgument(
                "MISSING_SITE",
                "name the site whose credentials you need in 'x-clarion-site-id' metadata",
                field="x-clarion-site-id",
            )
        credentials = await self._store.get_site_credentials(site_id)
        if credentials is None:
            raise _site_not_found(site_id)
        return credentials


class LocalSiteResolver:
    """Resolves API keys straight from the campaign database (the campaign server's own)."""

    def __init__(self, sites: Sites) -> None:
        self._sites = sites

    async def resolve(self, api_key: str) -> str | None:
        return await self._sites.site_for_api_key(api_key)


def _site_not_found(site_id: str) -> NotFound:
    return NotFound("SITE_NOT_FOUND", f"there is no site {site_id!r}", site_id=site_id)

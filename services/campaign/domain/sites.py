"""Sites: the tenants, their API keys and VAPID credentials."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clarion.campaign.v1 import campaign_pb2
from services.campaign.domain import policies, safari
from services.campaign.domain.pages import page_limit
from services.campaign.domain.vapid import check_public_key, parse_private_key
from services.campaign.store import (
    CampaignStore,
    LegacySafariCredentials,
    SiteCredentials,
    SiteRecord,
    VapidKeyRecord,
    WebsitePushIdTaken,
)
from services.kit.auth import hash_api_key
from services.kit.clock import Clock
from services.kit.egress import EgressRefused, parse_ip_literal
from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import new_id
from services.kit.logging import get_logger
from services.kit.pages import decode_page_token, encode_page_token

log = get_logger(__name__)

MAX_SITE_NAME_LENGTH = 200
MAX_SUBJECT_LENGTH = 2048
API_KEY_PREFIX = "ck_"
VAPID_KEY_ID_PREFIX = "vk"
UPDATABLE_SITE_PATHS = (
    "name", "vapid_subject", "timezone", "home_url", "delivery_policy",
    "delivery_policy.frequency_cap",
    "delivery_policy.quiet_hours", "delivery_policy.max_per_minute",
)  # fmt: skip
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


_SUBJECT_FORM = (
    "the VAPID subject must be a mailto: address or an https: URL where a push service can "
    "reach you, e.g. mailto:ops@example.com"
)


def validate_timezone(name: str) -> str:
    """An IANA time zone name (or "" for UTC), as Python's zoneinfo knows it."""
    name = name.strip()
    if name:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidArgument(
                "INVALID_TIMEZONE",
                f"timezone {name[:64]!r} is not an IANA time zone name, e.g. Europe/Berlin",
                field="timezone",
            ) from None
    return name


def validate_home_url(url: str) -> str:
    """An absolute http(s) URL with a host (or "" for none). Only ever redirected to,
    never fetched, so any host is fine."""
    url = url.strip()
    if url:
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InvalidArgument(
                "INVALID_HOME_URL",
                f"home_url {url[:100]!r} must be an absolute http or https URL, "
                "e.g. https://shop.example.com/",
                field="home_url",
            )
    return url


def validate_vapid_subject(subject: str) -> str:
    """RFC 8292 `sub`: a mailto: address or an https: URL, at a host Apple's push service
    accepts. Apple answers 403 BadJwtToken to every push signed with a subject at
    localhost, *.localhost, *.local or an IP address, so those are refused here, when a
    site is created and when its subject changes."""
    subject = subject.strip()
    if not subject:
        raise _bad_subject(f"the site needs a VAPID subject: {_SUBJECT_FORM}")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise _bad_subject(
            f"the VAPID subject is {len(subject)} characters; "
            f"at most {MAX_SUBJECT_LENGTH} are allowed"
        )
    if any(c.isspace() or not c.isprintable() for c in subject):
        raise _bad_subject(_SUBJECT_FORM)
    if subject.startswith("mailto:"):
        address = subject.removeprefix("mailto:").partition("?")[0]
        local, at, host = address.rpartition("@")
        if not (local and at and host):
            raise _bad_subject(_SUBJECT_FORM)
    else:
        try:
            parts = urlsplit(subject)
            _ = parts.port  # a port that is no number in range raises ValueError
        except ValueError:
            raise _bad_subject(_SUBJECT_FORM) from None
        if parts.scheme != "https" or not parts.hostname:
            raise _bad_subject(_SUBJECT_FORM)
        host = parts.hostname
    refused = _host_apple_refuses(host)
    if refused:
        raise _bad_subject(
            f"the VAPID subject is at {refused}: Apple's push service refuses such subjects "
            "(403 BadJwtToken), so Safari subscribers would get nothing; give a mailto: "
            "address or https: URL on a real domain, e.g. mailto:ops@example.com"
        )
    return subject


def _host_apple_refuses(host: str) -> str:
    """What is wrong with a subject's host for Apple ("" when nothing is)."""
    name = host.lower().removesuffix(".")
    if name.startswith("[") or ":" in name:
        return "an IP address"
    try:
        address = parse_ip_literal(name)
    except EgressRefused:  # looks numeric but is no valid address: no name either
        return "an IP address"
    if address is not None:
        return "an IP address"
    if name == "localhost" or name.endswith(".localhost"):
        return "localhost"
    if name.endswith(".local"):
        return "a .local host"
    return ""


def _bad_subject(message: str) -> InvalidArgument:
    return InvalidArgument("INVALID_VAPID_SUBJECT", message, field="vapid_subject")


@dataclass(frozen=True)
class RotatedApiKey:
    """A site's new API key; its plaintext exists only here, once."""

    site_id: str
    api_key: str

    def __repr__(self) -> str:  # never print the key by accident
        return f"RotatedApiKey(site_id={self.site_id!r}, api_key=<redacted>)"


@dataclass(frozen=True)
class ImportedVapidKey:
    vapid_key: VapidKeyRecord
    # False: the site already had this key pair (same public key).
    created: bool


@dataclass(frozen=True)
class SitePage:
    sites: list[SiteRecord]
    next_page_token: str


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
        await self._store.insert_site(
            site, private_der, hash_api_key(api_key), new_id(VAPID_KEY_ID_PREFIX)
        )
        log.info("site created", created_site_id=site.site_id)
        return CreatedSite(
            site_id=site.site_id, name=name, api_key=api_key, vapid_public_key=public_point
        )

    async def get(self, site_id: str) -> SiteRecord:
        site = await self._store.get_site(site_id) if site_id else None
        if site is None:
            raise _site_not_found(site_id)
        return site

    async def rotate_api_key(self, site_id: str) -> RotatedApiKey:
        """Gives the site a new random API key and deletes every earlier one, in one
        transaction. Campaign refuses an old key at once (it reads its database on every
        call); services that cache keys accept it until their cache entry expires."""
        if not site_id:
            raise _site_not_found(site_id)
        api_key = new_api_key()
        if not await self._store.replace_api_keys(
            site_id, hash_api_key(api_key), self._clock.now()
        ):
            raise _site_not_found(site_id)
        log.info("site API key rotated; earlier keys deleted", rotated_site_id=site_id)
        return RotatedApiKey(site_id=site_id, api_key=api_key)

    async def update(
        self,
        site_id: str,
        given_site_id: str,
        name: str,
        vapid_subject: str,
        paths: Sequence[str],
        timezone: str = "",
        delivery_policy: campaign_pb2.DeliveryPolicy | None = None,
        home_url: str = "",
    ) -> SiteRecord:
        """Changes the fields named in `paths` (update_mask: name, vapid_subject,
        timezone, home_url, delivery_policy or one part of it); every value is checked before
        anything is written. A part of the delivery policy replaces that part of the
        stored one, in the transaction that writes it."""
        if given_site_id and given_site_id != site_id:
            raise _site_not_found(given_site_id)
        if not paths:
            raise InvalidArgument(
                "MISSING_UPDATE_MASK",
                f"update_mask must name the fields to change: {', '.join(UPDATABLE_SITE_PATHS)}",
                field="update_mask",
            )
        changes: dict[str, str] = {}
        given = delivery_policy or campaign_pb2.DeliveryPolicy()
        # Each step rewrites a part of the stored policy (the whole policy for
        # "delivery_policy"), applied in mask order to the policy as stored.
        policy_steps: list[Callable[[campaign_pb2.DeliveryPolicy], None]] = []
        for path in paths:
            if path == "name":
                changes["name"] = validate_site_name(name)
            elif path == "vapid_subject":
                changes["vapid_subject"] = validate_vapid_subject(vapid_subject)
            elif path == "timezone":
                changes["timezone"] = validate_timezone(timezone)
            elif path == "home_url":
                changes["home_url"] = validate_home_url(home_url)
            elif path.split(".")[0] == "delivery_policy" and path in UPDATABLE_SITE_PATHS:
                policy_steps.append(_policy_step(path, given))
            else:
                raise InvalidArgument(
                    "INVALID_UPDATE_MASK",
                    f"update_mask path {path[:100]!r} is not a field of a site that can "
                    f"change; use {' or '.join(UPDATABLE_SITE_PATHS)}",
                    field="update_mask",
                    path=path,
                )
        policy_change = None
        if policy_steps:

            def policy_change(
                stored: campaign_pb2.DeliveryPolicy | None,
            ) -> campaign_pb2.DeliveryPolicy | None:
                policy = campaign_pb2.DeliveryPolicy()
                if stored is not None:
                    policy.CopyFrom(stored)
                for step in policy_steps:
                    step(policy)
                return policy if policy.ByteSize() else None

        site = await self._store.update_site(site_id, changes, policy_change) if site_id else None
        if site is None:
            raise _site_not_found(site_id)
        changed = sorted(changes) + [path for path in paths if path.startswith("delivery_policy")]
        log.info("site updated", updated_site_id=site_id, paths=",".join(changed))
        return site

    async def import_vapid_key(
        self, site_id: str, private_key: bytes, public_key: bytes
    ) -> ImportedVapidKey:
        """Adds another provider's key pair to the site (never its current key), so the
        subscribers moved with it are signed with it; the same pair again answers the key
        already stored. The private key is stored as the site's own is (PKCS#8 DER)."""
        pair = parse_private_key(private_key)
        check_public_key(public_key, pair)
        if not site_id:
            raise _site_not_found(site_id)
        stored = await self._store.import_vapid_key(
            site_id, new_id(VAPID_KEY_ID_PREFIX), pair.private_der, pair.public_point,
            self._clock.now(),
        )  # fmt: skip
        if stored is None:
            raise _site_not_found(site_id)
        key, created = stored
        log.info(
            "VAPID key imported" if created else "VAPID key already imported",
            vapid_key_id=key.vapid_key_id,
        )
        return ImportedVapidKey(vapid_key=key, created=created)

    async def set_legacy_safari(
        self, site_id: str, given: safari.LegacySafariInput
    ) -> SiteRecord:
        """Replaces the site's legacy Safari configuration with `given`, every field
        checked first (InvalidArgument naming the first bad one; nothing stored then).
        Key material is checked off the event loop (parsing, a trial signature)."""
        if not site_id:
            raise _site_not_found(site_id)
        record, secrets = await asyncio.to_thread(safari.check, given, self._clock.now())
        try:
            site = await self._store.set_legacy_safari(site_id, record, secrets)
        except WebsitePushIdTaken:
            raise InvalidArgument(
                "WEBSITE_PUSH_ID_TAKEN",
                f"another site already has Website Push ID {record.website_push_id!r}: each "
                "Website Push ID belongs to one site",
                field="website_push_id",
            ) from None
        if site is None:
            raise _site_not_found(site_id)
        log.info(
            "legacy Safari configured",
            website_push_id=record.website_push_id,
            apns_key_id=record.apns_key_id,
            certificate_expire_time=record.certificate_expire_time.isoformat(),
        )
        return site

    async def site_for_website_push_id(self, website_push_id: str) -> str:
        site_id = (
            await self._store.site_id_for_website_push_id(website_push_id)
            if website_push_id
            else None
        )
        if site_id is None:
            raise NotFound(
                "WEBSITE_PUSH_ID_NOT_FOUND",
                f"no site has Website Push ID {website_push_id[:128]!r}",
                field="website_push_id",
            )
        return site_id

    async def legacy_safari_credentials(
        self, site_id: str, *, include_push_package: bool
    ) -> LegacySafariCredentials:
        if not site_id:
            raise InvalidArgument(
                "MISSING_SITE",
                "name the site whose credentials you need in 'x-clarion-site-id' metadata",
                field="x-clarion-site-id",
            )
        credentials = await self._store.legacy_safari_credentials(
            site_id, include_push_package=include_push_package
        )
        if credentials is None:
            if await self._store.get_site(site_id) is None:
                raise _site_not_found(site_id)
            raise NotFound(
                "LEGACY_SAFARI_NOT_CONFIGURED",
                f"site {site_id!r} has no legacy Safari configuration (SetLegacySafari)",
                site_id=site_id,
            )
        return credentials

    async def list(self, page_size: int, page_token: str) -> SitePage:
        """Every site, by id, a page at a time (for operators)."""
        limit = page_limit(page_size)
        after = decode_page_token(page_token) or ""
        rows = await self._store.list_sites(after, limit + 1)
        page = rows[:limit]
        next_token = encode_page_token(page[-1].site_id) if len(rows) > limit else ""
        return SitePage(sites=page, next_page_token=next_token)

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


def _policy_step(
    path: str, given: campaign_pb2.DeliveryPolicy
) -> Callable[[campaign_pb2.DeliveryPolicy], None]:
    """The change `path` makes to a stored delivery policy, with the given value checked
    now (InvalidArgument naming the field), before anything is written."""
    if path == "delivery_policy":
        whole = policies.delivery_policy(given) or campaign_pb2.DeliveryPolicy()
        return lambda policy: policy.CopyFrom(whole)
    if path == "delivery_policy.frequency_cap":
        policies.check_frequency_cap(given.frequency_cap, field="delivery_policy.frequency_cap")
        cap = given.frequency_cap
        return lambda policy: _set_part(policy, "frequency_cap", cap)
    if path == "delivery_policy.quiet_hours":
        hours = policies.check_quiet_hours(given.quiet_hours, field="delivery_policy.quiet_hours")
        return lambda policy: _set_part(policy, "quiet_hours", hours)
    policies.check_max_per_minute(given.max_per_minute, field="delivery_policy.max_per_minute")
    limit = given.max_per_minute
    return lambda policy: setattr(policy, "max_per_minute", limit)


def _set_part(
    policy: campaign_pb2.DeliveryPolicy,
    name: str,
    value: campaign_pb2.FrequencyCap | campaign_pb2.QuietHours | None,
) -> None:
    """Replaces a message field of the policy; None or an all-default value clears it."""
    if value is None or value.ByteSize() == 0:
        policy.ClearField(name)
    else:
        getattr(policy, name).CopyFrom(value)


def _site_not_found(site_id: str) -> NotFound:
    return NotFound("SITE_NOT_FOUND", f"there is no site {site_id!r}", site_id=site_id)

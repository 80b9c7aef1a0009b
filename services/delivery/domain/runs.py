"""The rules of a delivery run's life: create, queue recipients, start, and ask about it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from services.delivery.domain.payload import MAX_PAYLOAD_BYTES, URGENCIES, build_payload
from services.delivery.models import MAX_ENDPOINT_LENGTH, MAX_ID_LENGTH, RunState
from services.delivery.store import (
    DeliveryStore,
    NewRecipient,
    NewRun,
    RecipientView,
    Run,
    RunCounts,
)
from services.kit.clock import Clock
from services.kit.config import Settings
from services.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

# One call's worth: large enough for a page of an audience, small enough for one transaction.
MAX_RECIPIENTS_PER_CALL = 5000
# FCM's and Mozilla's ceiling; 0 in a request means this default.
MAX_TTL_SECONDS = 28 * 24 * 3600
DEFAULT_TTL_SECONDS = MAX_TTL_SECONDS
DEFAULT_URGENCY = "normal"
_ID = re.compile(r"^[A-Za-z0-9._:~-]+$")


@dataclass(frozen=True)
class Notification:
    title: str
    body: str = ""
    icon_url: str = ""
    image_url: str = ""
    target_url: str = ""


@dataclass(frozen=True)
class RecipientInput:
    """A recipient as a caller sends it (validated before anything is stored)."""

    subscriber_id: str
    endpoint: str
    p256dh: bytes
    auth: bytes
    browser: int


@dataclass(frozen=True)
class RunWithCounts:
    run: Run
    counts: RunCounts


def _check_id(value: str, field: str) -> None:
    if not value:
        raise InvalidArgument("MISSING_FIELD", f"{field} is required", field=field)
    if len(value) > MAX_ID_LENGTH or not _ID.match(value):
        raise InvalidArgument(
            "INVALID_ID",
            f"{field} must be 1-{MAX_ID_LENGTH} characters of letters, digits and ._:~-",
            field=field,
        )


def _check_url(value: str, field: str) -> None:
    if not value:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InvalidArgument(
            "INVALID_URL",
            f"{field} must be an absolute http(s) URL, got {value[:100]!r}",
            field=field,
        )


class DeliveryRuns:
    def __init__(self, settings: Settings, store: DeliveryStore, clock: Clock) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock

    async def create(
        self,
        site_id: str,
        run_id: str,
        campaign_id: str,
        notification: Notification,
        ttl_seconds: int,
        urgency: str | None,
    ) -> RunWithCounts:
        """Opens a run in QUEUEING; repeating the call for the same campaign returns it."""
        _check_id(run_id, "run_id")
        _check_id(campaign_id, "campaign_id")
        if not notification.title.strip():
            raise InvalidArgument(
                "MISSING_FIELD", "notification.title is required", field="notification.title"
            )
        for name in ("icon_url", "image_url", "target_url"):
            _check_url(getattr(notification, name), f"notification.{name}")
        if not 0 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise InvalidArgument(
                "INVALID_TTL",
                f"ttl_seconds must be between 0 (the default, {DEFAULT_TTL_SECONDS}) "
                f"and {MAX_TTL_SECONDS}",
                field="ttl_seconds",
            )
        if urgency is not None and urgency not in URGENCIES:
            raise InvalidArgument(
                "INVALID_URGENCY", "urgency is not a known value", field="urgency"
            )
        new = NewRun(
            site_id=site_id,
            run_id=run_id,
            campaign_id=campaign_id,
            title=notification.title,
            body=notification.body,
            icon_url=notification.icon_url,
            image_url=notification.image_url,
            target_url=notification.target_url,
            ttl_seconds=ttl_seconds or DEFAULT_TTL_SECONDS,
            urgency=urgency or DEFAULT_URGENCY,
        )
        size = len(build_payload(new))
        if size > MAX_PAYLOAD_BYTES:
            raise InvalidArgument(
                "PAYLOAD_TOO_LARGE",
                f"the notification encodes to {size} bytes; Web Push allows {MAX_PAYLOAD_BYTES}: "
                "shorten the title, body or URLs",
                field="notification",
            )
        run, created = await self._store.create_run(new, self._clock.now())
        if not created and run.campaign_id != campaign_id:
            raise AlreadyExists(
                "RUN_ID_TAKEN",
                f"run {run_id!r} already belongs to campaign {run.campaign_id!r}; use a new run_id",
                field="run_id",
            )
        return await self._with_counts(run)

    async def enqueue(self, site_id: str, run_id: str, recipients: Sequence[RecipientInput]) -> int:
        """Queues recipients durably; returns how many were new to the run."""
        _check_id(run_id, "run_id")
        if len(recipients) > MAX_RECIPIENTS_PER_CALL:
            raise InvalidArgument(
                "TOO_MANY_RECIPIENTS",
                f"{len(recipients)} recipients in one call; send at most "
                f"{MAX_RECIPIENTS_PER_CALL} per call",
                field="recipients",
            )
        checked = [self._check_recipient(i, r) for i, r in enumerate(recipients)]
        result = await self._store.enqueue(
            site_id, run_id, checked, self._settings.delivery_chunk_size, self._clock.now()
        )
        if result.run_state is None:
            raise self._run_not_found(run_id)
        if result.run_state is not RunState.QUEUEING:
            raise FailedPrecondition(
                "RUN_ALREADY_STARTED",
                f"run {run_id!r} is {result.run_state.value}: recipients can only be queued "
                "before StartDeliveryRun",
                run_id=run_id,
            )
        return result.queued

    def _check_recipient(self, index: int, recipient: RecipientInput) -> NewRecipient:
        prefix = f"recipients[{index}]"
        if not recipient.subscriber_id or len(recipient.subscriber_id) > MAX_ID_LENGTH:
            raise InvalidArgument(
                "INVALID_SUBSCRIBER_ID",
                f"{prefix}.subscriber_id must be 1-{MAX_ID_LENGTH} characters",
                field=f"{prefix}.subscriber_id",
            )
        field = f"{prefix}.push_subscription.endpoint"
        parts = urlsplit(recipient.endpoint)
        schemes = ("https", "http") if self._settings.allow_insecure_endpoints else ("https",)
        if parts.scheme not in schemes or not parts.hostname:
            raise InvalidArgument(
                "INVALID_ENDPOINT",
                f"{field} must be an absolute {' or '.join(schemes)} URL",
                field=field,
            )
        if len(recipient.endpoint) > MAX_ENDPOINT_LENGTH:
            raise InvalidArgument(
                "INVALID_ENDPOINT", f"{field} is longer than {MAX_ENDPOINT_LENGTH}", field=field
            )
        field = f"{prefix}.push_subscription.p256dh"
        if len(recipient.p256dh) != 65 or not _on_curve(recipient.p256dh):
            raise InvalidArgument(
                "INVALID_P256DH",
                f"{field} must be a 65-byte uncompressed P-256 point "
                f"(got {len(recipient.p256dh)} bytes)",
                field=field,
            )
        field = f"{prefix}.push_subscription.auth"
        if len(recipient.auth) != 16:
            raise InvalidArgument(
                "INVALID_AUTH",
                f"{field} must be the 16-byte auth secret (got {len(recipient.auth)} bytes)",
                field=field,
            )
        return NewRecipient(
            subscriber_id=recipient.subscriber_id,
            endpoint=recipient.endpoint,
            p256dh=recipient.p256dh,
            auth=recipient.auth,
            browser=recipient.browser,
        )

    async def start(self, site_id: str, run_id: str) -> RunWithCounts:
        _check_id(run_id, "run_id")
        run = await self._store.start_run(site_id, run_id, self._clock.now())
        if run is None:
            raise self._run_not_found(run_id)
        return await self._with_counts(run)

    async def get(self, site_id: str, run_id: str) -> RunWithCounts:
        _check_id(run_id, "run_id")
        run = await self._store.get_run(site_id, run_id)
        if run is None:
            raise self._run_not_found(run_id)
        return await self._with_counts(run)

    async def recipient_outcome(
        self, site_id: str, run_id: str, subscriber_id: str
    ) -> RecipientView:
        _check_id(run_id, "run_id")
        if not subscriber_id:
            raise InvalidArgument(
                "MISSING_FIELD", "subscriber_id is required", field="subscriber_id"
            )
        if await self._store.get_run(site_id, run_id) is None:
            raise self._run_not_found(run_id)
        view = await self._store.recipient(site_id, run_id, subscriber_id)
        if view is None:
            raise NotFound(
                "RECIPIENT_NOT_QUEUED",
                f"subscriber {subscriber_id!r} was never queued for run {run_id!r}: it was not "
                "in the run's audience (or was filtered out before delivery)",
                subscriber_id=subscriber_id,
            )
        return view

    async def _with_counts(self, run: Run) -> RunWithCounts:
        return RunWithCounts(run, await self._store.run_counts(run.site_id, run.run_id))

    @staticmethod
    def _run_not_found(run_id: str) -> NotFound:
        return NotFound("RUN_NOT_FOUND", f"no delivery run {run_id!r} in this site", run_id=run_id)


def _on_curve(point: bytes) -> bool:
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return False
    return point[0] == 4

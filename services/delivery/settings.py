"""Delivery's own settings (prefix CLARION_): the kit's shared ones plus its knobs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from yarl import URL

from services.kit.config import Settings


class DeliverySettings(Settings):
    """The docstring under each field is its description (`clarion serve --help`)."""

    encryptor: Literal["native", "python"] = "native"
    """Who encrypts payloads: the native crate (default) or pywebpush's Python code."""
    push_transport: Literal["native", "aiohttp"] = "native"
    """Who posts to push services: the native crate on its own threads (default), or
    aiohttp on this process's event loop."""
    push_transport_threads: int = Field(default=1, ge=1, le=16)
    """Threads of the native transport's runtime."""
    delivery_workers: int = Field(default=4, ge=1)
    """Sender tasks per delivery process."""
    delivery_chunk_size: int = Field(default=500, ge=1, le=5000)
    """Recipients per chunk (the unit a sender claims)."""
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    """How long a claim on a chunk, a preparation or outbox rows lasts unrenewed."""
    delivery_poll_seconds: float = Field(default=0.2, gt=0)
    """How often idle workers look for due work, in seconds."""
    delivery_concurrency: int = Field(default=512, ge=1)
    """Push requests in flight at most per delivery process. Also how many answers one
    commit can record: at 128 a PostgreSQL commit held ~19 answers and the statement
    per commit cost more than the pushes (0.57 against 0.45 ms of CPU a message at 512)."""
    delivery_prepare_page_size: int = Field(default=1000, ge=1, le=5000)
    """Audience members pulled from segment per page while preparing a run."""
    delivery_origin_rate_per_second: float = Field(default=0.0, ge=0)
    """Requests per second to any one push service (origin) from one delivery process;
    0 means no limit. Either way a push service answering 429 is slowed (halved, at
    most once a second) and sped up again gradually, up to this (or where it was)."""
    delivery_origin_rate_floor: float = Field(default=1.0, gt=0)
    """The slowest a push service answering 429 is sent to, in requests per second
    per delivery process."""
    delivery_prepare_deadline_seconds: float = Field(default=3600.0, gt=0)
    """How long segment may stay unreachable before a preparing run is failed."""
    push_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long one request to a push service may take."""
    push_max_attempts: int = Field(default=5, ge=1)
    """Attempts per recipient before a transient failure (429, 5xx, timeout) is final."""
    push_retry_base_seconds: float = Field(default=2.0, gt=0)
    """First delay of the exponential backoff between push retries (5xx, timeouts,
    429 without Retry-After)."""
    push_retry_max_seconds: float = Field(default=600.0, gt=0)
    """Longest delay between push retries."""
    apns_url: str = "https://api.push.apple.com"
    """Where legacy Safari pushes go: Apple's APNs provider API. Another https URL
    (host and port) points delivery at a stand-in, e.g. `clarion simulator`'s APNs."""
    apns_ca_file: str = ""
    """A PEM file of the CA(s) to trust for apns_url instead of the system's (the APNs
    simulator's CA, written by `clarion simulator --apns-ca-file`)."""
    apns_max_connections: int = Field(default=2, ge=1, le=32)
    """HTTP/2 connections to APNs per site key and delivery process (all share one
    provider token per team)."""

    @field_validator("apns_url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        url = URL(value)
        if url.scheme != "https" or not url.host or url.path not in ("", "/"):
            raise ValueError(
                "apns_url must be an https URL of a host (and port), e.g. "
                "https://api.push.apple.com"
            )
        return value


def delivery_settings(settings: Settings) -> DeliverySettings:
    """`settings` with delivery's knobs: as given, or read from the environment."""
    if isinstance(settings, DeliverySettings):
        return settings
    return DeliverySettings(**settings.model_dump())

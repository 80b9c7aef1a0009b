"""Typed settings from the environment (prefix CLARION_)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ServiceName = Literal["campaign", "segment", "delivery", "reporting"]
SERVICE_NAMES: tuple[ServiceName, ...] = ("campaign", "segment", "delivery", "reporting")

# The push services of Chrome/Opera/Samsung (FCM), Firefox (autopush), Safari and Edge (WNS).
DEFAULT_PUSH_SERVICE_HOSTS: tuple[str, ...] = (
    "fcm.googleapis.com",
    "updates.push.services.mozilla.com",
    "*.push.services.mozilla.com",
    "*.push.apple.com",
    "*.notify.windows.com",
)


class Settings(BaseSettings):
    """What every service reads. A service's own knobs live with it (delivery's in
    services.delivery.settings), in a subclass of this."""

    model_config = SettingsConfigDict(env_prefix="CLARION_", extra="ignore", populate_by_name=True)

    # Where the embedded default keeps its SQLite files.
    data_dir: Path = Path(".clarion")
    # One URL for every service (e.g. postgresql+psycopg://...); empty means SQLite
    # files under data_dir, one per service. Per-service URLs override it.
    database_url: str = ""
    campaign_database_url: str = ""
    segment_database_url: str = ""
    delivery_database_url: str = ""
    reporting_database_url: str = ""

    # Shared by the services to call each other on behalf of a site.
    internal_token: SecretStr = SecretStr("")

    # Where each service listens (its own server) and where others reach it.
    campaign_listen: str = "127.0.0.1:50051"
    segment_listen: str = "127.0.0.1:50052"
    delivery_listen: str = "127.0.0.1:50053"
    reporting_listen: str = "127.0.0.1:50054"
    campaign_address: str = "127.0.0.1:50051"
    segment_address: str = "127.0.0.1:50052"
    delivery_address: str = "127.0.0.1:50053"
    reporting_address: str = "127.0.0.1:50054"
    gateway_listen: str = "127.0.0.1:8080"

    # Bring the service's schema to head when it starts (the embedded default). A
    # deployment runs `clarion migrate` once instead and sets this false, so replicas do
    # not race to migrate; a service then refuses to start on an older schema.
    migrate_on_start: bool = True

    # Deadline for service-to-service calls.
    rpc_timeout_seconds: float = 10.0

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"

    # The push services subscriptions may point at and delivery may POST to: exact
    # hosts and "*.suffix" wildcards, comma separated (CLARION_PUSH_SERVICE_HOSTS).
    # Anything else (other hosts, IP addresses, http://, ports other than 443) is
    # refused at registration and at send time (services.kit.egress).
    push_service_hosts: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PUSH_SERVICE_HOSTS
    # FOR THE SIMULATOR AND TESTS ONLY: accept and send to any http:// or https:// push
    # endpoint on any host, loopback and private addresses included, i.e. no SSRF
    # protection. CLARION_PUSH_TEST_ENDPOINTS=true (the old name
    # CLARION_ALLOW_INSECURE_ENDPOINTS still works); a warning is logged at start-up.
    allow_insecure_endpoints: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "CLARION_PUSH_TEST_ENDPOINTS", "CLARION_ALLOW_INSECURE_ENDPOINTS"
        ),
    )

    @field_validator("push_service_hosts", mode="before")
    @classmethod
    def _split_push_service_hosts(cls, value: object) -> object:
        from services.kit.egress import parse_host_patterns

        if isinstance(value, str):
            # Empty means the defaults, as for the other settings.
            value = tuple(value.split(",")) if value.strip() else DEFAULT_PUSH_SERVICE_HOSTS
        if isinstance(value, list | tuple):
            try:
                return tuple(p.text for p in parse_host_patterns(str(v) for v in value))
            except ValueError as error:
                raise ValueError(f"CLARION_PUSH_SERVICE_HOSTS: {error}") from None
        return value

    @property
    def push_test_endpoints(self) -> bool:
        """CLARION_PUSH_TEST_ENDPOINTS: http and any host allowed (simulator, tests)."""
        return self.allow_insecure_endpoints

    def database_url_for(self, service: str) -> str:
        own = getattr(self, f"{service}_database_url", "")
        if own:
            return own
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def listen_for(self, service: str) -> str:
        return str(getattr(self, f"{service}_listen"))

    def address_for(self, service: str) -> str:
        return str(getattr(self, f"{service}_address"))

    @cached_property
    def internal_token_value(self) -> str:
        token = self.internal_token.get_secret_value()
        if not token:
            raise RuntimeError(
                "CLARION_INTERNAL_TOKEN is not set: services need it to call each other"
            )
        return token

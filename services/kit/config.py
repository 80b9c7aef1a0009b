"""Typed settings from the environment (prefix CLARION_)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.kit.operator import MissingSetting

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

    model_config = SettingsConfigDict(
        env_prefix="CLARION_",
        extra="ignore",
        populate_by_name=True,
        # The docstring under each field is its description (`clarion <command> --help`).
        use_attribute_docstrings=True,
    )

    data_dir: Path = Path(".clarion")
    """Where the embedded default keeps its SQLite files, one per service."""
    database_url: str = ""
    """One database URL for every service (e.g. postgresql+psycopg://user:pass@host/db);
    empty: SQLite files under the data directory. Per-service URLs override it."""
    campaign_database_url: str = ""
    """The campaign service's database URL (overrides CLARION_DATABASE_URL)."""
    segment_database_url: str = ""
    """The segment service's database URL (overrides CLARION_DATABASE_URL)."""
    delivery_database_url: str = ""
    """The delivery service's database URL (overrides CLARION_DATABASE_URL)."""
    reporting_database_url: str = ""
    """The reporting service's database URL (overrides CLARION_DATABASE_URL)."""

    internal_token: SecretStr = SecretStr("")
    """The secret the services share to call each other on behalf of a site: the same
    random value for every service (`clarion up` makes one when unset)."""

    campaign_listen: str = "127.0.0.1:50051"
    """Where the campaign service listens (host:port)."""
    segment_listen: str = "127.0.0.1:50052"
    """Where the segment service listens (host:port)."""
    delivery_listen: str = "127.0.0.1:50053"
    """Where the delivery service listens (host:port)."""
    reporting_listen: str = "127.0.0.1:50054"
    """Where the reporting service listens (host:port)."""
    campaign_address: str = "127.0.0.1:50051"
    """Where the other services reach campaign (host:port)."""
    segment_address: str = "127.0.0.1:50052"
    """Where the other services reach segment (host:port)."""
    delivery_address: str = "127.0.0.1:50053"
    """Where the other services reach delivery (host:port)."""
    reporting_address: str = "127.0.0.1:50054"
    """Where the other services reach reporting (host:port)."""
    gateway_listen: str = "127.0.0.1:8080"
    """Where the browser-facing HTTP gateway listens (host:port)."""
    gateway_public_url: str = ""
    """The gateway's URL as browsers reach it, e.g. https://push.example.com (nothing
    after the host and port): legacy Safari's push packages name it as their
    webServiceURL, where Safari registers its devices (Apple requires https). Empty:
    the scheme and host each package request came with (X-Forwarded-Proto honoured)."""
    metrics_port: int = 9464
    """The first port of the services' Prometheus endpoints (GET /metrics), each on the
    host of its service's listen address: campaign on this port, segment on the next,
    delivery +2, reporting +3 (so services on one host do not collide; `clarion up`
    serves its one process on campaign's and delivery's process on delivery's). 0 picks
    free ports, a negative value serves none. The gateway answers GET /metrics on its
    own port."""
    metrics_refresh_seconds: float = Field(default=10.0, gt=0)
    """How often delivery and reporting refresh the gauges they read from their
    database (queue depth, webhook backlog), in seconds."""

    migrate_on_start: bool = True
    """Bring the service's schema to head when it starts (the embedded default). A
    deployment runs `clarion migrate` once instead and sets this false, so replicas do
    not race to migrate; a service then refuses to start on an older schema."""

    rpc_timeout_seconds: float = 10.0
    """Deadline for service-to-service calls, in seconds."""

    log_format: Literal["auto", "json", "console"] = "auto"
    """json (one JSON object per line), console (readable), or auto: console at a
    terminal, json otherwise."""
    log_level: str = "INFO"
    """The least severe level logged: DEBUG, INFO, WARNING or ERROR."""

    push_service_hosts: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PUSH_SERVICE_HOSTS
    """The push services subscriptions may point at and delivery may POST to: exact
    hosts and "*.suffix" wildcards, comma separated (default: FCM, Mozilla, Apple,
    Windows). Anything else (other hosts, IP addresses, http://, ports other than 443)
    is refused at registration and at send time (services.kit.egress)."""
    allow_insecure_endpoints: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "CLARION_PUSH_TEST_ENDPOINTS", "CLARION_ALLOW_INSECURE_ENDPOINTS"
        ),
    )
    """FOR THE SIMULATOR AND TESTS ONLY: accept and send to any http:// or https:// push
    endpoint on any host, loopback and private addresses included, i.e. no SSRF
    protection (the old name CLARION_ALLOW_INSECURE_ENDPOINTS still works); a warning
    is logged at start-up."""

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

    @field_validator("gateway_public_url")
    @classmethod
    def _check_gateway_public_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        value = value.strip().rstrip("/")
        if value:
            parts = urlsplit(value)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path
                or parts.query
                or parts.fragment
            ):
                raise ValueError(
                    "CLARION_GATEWAY_PUBLIC_URL must be the gateway's http(s) URL with nothing "
                    f"after the host and port, e.g. https://push.example.com; got {value[:100]!r}"
                )
        return value

    @property
    def push_test_endpoints(self) -> bool:
        """CLARION_PUSH_TEST_ENDPOINTS: http and any host allowed (simulator, tests)."""
        return self.allow_insecure_endpoints

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable that sets `field` (its first name, for an alias)."""
        info = cls.model_fields[field]
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            return str(alias.choices[0])
        if isinstance(alias, str):
            return alias
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    def database_url_for(self, service: str) -> str:
        own = getattr(self, f"{service}_database_url", "")
        if own:
            return own
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def database_variable_for(self, service: str) -> str:
        """The variable that chose the service's database (CLARION_DATA_DIR for the
        embedded SQLite default)."""
        if getattr(self, f"{service}_database_url", ""):
            return self.variable(f"{service}_database_url")
        if self.database_url:
            return self.variable("database_url")
        return self.variable("data_dir")

    def listen_for(self, service: str) -> str:
        return str(getattr(self, f"{service}_listen"))

    def listen_variable(self, service: str) -> str:
        """The variable that sets where `service` (or "gateway") listens."""
        return self.variable(f"{service}_listen")

    def listen_variable_for_address(self, address: str) -> str:
        """The variable(s) whose listen address is `address` ("or" between several),
        for messages about it; "the listen address" when none is (tests, ephemeral)."""
        fields = [
            name
            for name in type(self).model_fields
            if name.endswith("_listen") and getattr(self, name) == address
        ]
        return " or ".join(self.variable(f) for f in fields) or "the listen address"

    def metrics_port_for(self, service: str) -> int:
        """Where `service` serves /metrics: CLARION_METRICS_PORT plus its offset (0:
        a free port; negative: none)."""
        if self.metrics_port <= 0:
            return self.metrics_port
        offsets: dict[str, int] = {name: n for n, name in enumerate(SERVICE_NAMES)}
        return self.metrics_port + offsets[service]

    def address_for(self, service: str) -> str:
        return str(getattr(self, f"{service}_address"))

    @cached_property
    def internal_token_value(self) -> str:
        token = self.internal_token.get_secret_value()
        if not token:
            raise MissingSetting(
                f"{self.variable('internal_token')} is not set: the services use it to call "
                "each other; give every service the same random value "
                "(e.g. `openssl rand -hex 32`)"
            )
        return token

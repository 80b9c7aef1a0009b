"""Reporting's own settings (prefix CLARION_): the kit's shared ones plus its knobs."""

from __future__ import annotations

from services.kit.config import Settings


class ReportingSettings(Settings):
    """The docstring under each field is its description (`clarion serve --help`)."""

    webhook_allow_private_addresses: bool = False
    """FOR LOCAL TESTING ONLY: let webhooks connect to loopback, private, link-local
    and other non-public addresses (the cloud metadata address included), i.e. no SSRF
    protection for webhook URLs; a warning is logged at start-up. Off: only public
    addresses are connected to, checked at connect time."""


def reporting_settings(settings: Settings) -> ReportingSettings:
    """`settings` with reporting's knobs: as given, or read from the environment."""
    if isinstance(settings, ReportingSettings):
        return settings
    return ReportingSettings(**settings.model_dump())

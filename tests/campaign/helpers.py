"""Small helpers for the campaign suite."""

from __future__ import annotations

import socket

import grpc

from services.kit.config import Settings
from services.kit.errors import error_info


def closed_port_address() -> str:
    """An address nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


def internal(settings: Settings, site_id: str = "") -> tuple[tuple[str, str], ...]:
    """Metadata of a Clarion service calling on behalf of `site_id` (or of no site)."""
    metadata = [("authorization", f"Bearer {settings.internal_token_value}")]
    if site_id:
        metadata.append(("x-clarion-site-id", site_id))
    return tuple(metadata)


def reason(error: grpc.aio.AioRpcError) -> str:
    info = error_info(error)
    return info.reason if info is not None else ""


def field(error: grpc.aio.AioRpcError) -> str:
    """The request field an INVALID_ARGUMENT names in its ErrorInfo."""
    info = error_info(error)
    return info.metadata.get("field", "") if info is not None else ""

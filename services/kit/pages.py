"""AIP-158 paging shared by every listing: a page size within bounds, and an opaque
keyset token naming the last id a page ended on."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable

from services.kit.errors import InvalidArgument


def page_size(requested: int, *, default: int, maximum: int) -> int:
    """How many items a page holds: 0 means `default`; above `maximum` is coerced to it
    (AIP-158), a negative size is refused."""
    if requested < 0:
        raise InvalidArgument(
            "INVALID_PAGE_SIZE",
            f"page_size must be 0 (default {default}) or positive, got {requested}",
            field="page_size",
        )
    return min(requested or default, maximum)


def encode_page_token(after: str) -> str:
    raw = json.dumps({"after": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, *, valid: Callable[[str], object] = bool) -> str | None:
    """The id a page token continues after; None for the first page (an empty token).
    A token this service did not hand out, or whose id `valid` refuses, is INVALID_ARGUMENT."""
    if not token:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeError, binascii.Error):
        payload = None
    after = payload.get("after") if isinstance(payload, dict) else None
    if not isinstance(after, str) or not after or not valid(after):
        raise InvalidArgument(
            "INVALID_PAGE_TOKEN",
            "page_token is not one this service returned; pass a next_page_token unchanged, "
            "or empty for the first page",
            field="page_token",
        )
    return after

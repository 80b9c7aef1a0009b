"""AIP-158 pages shared by the campaign service's listings: page sizes and the opaque
tokens that carry the last id of a page."""

from __future__ import annotations

import base64
import binascii
import json

from services.kit.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_limit(page_size: int) -> int:
    """How many items a page holds: 0 means the default, more than the maximum is capped."""
    if page_size < 0:
        raise InvalidArgument(
            "INVALID_PAGE_SIZE",
            f"page_size is {page_size}; give 1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}",
            field="page_size",
        )
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(after_id: str) -> str:
    raw = json.dumps({"after": after_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> str:
    """The id a page token continues after; "" for the first page."""
    if not token:
        return ""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        after = json.loads(raw)["after"]
    except (ValueError, binascii.Error, KeyError, TypeError, UnicodeDecodeError):
        after = None
    if not isinstance(after, str) or not after:
        raise InvalidArgument(
            "INVALID_PAGE_TOKEN",
            "page_token is not one this service handed out; pass next_page_token unchanged",
            field="page_token",
        )
    return after

"""Identifiers: a readable prefix and 128 random bits, sortable by creation time."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    # 48-bit millisecond timestamp first keeps ids (and page tokens) in creation order.
    millis = int(time.time() * 1000)
    return f"{prefix}_{millis:012x}{secrets.token_hex(10)}"

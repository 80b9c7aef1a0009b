"""Identifiers: a readable prefix, a creation time and randomness, sortable by creation.

The first 48 bits are the millisecond; within one millisecond a process keeps counting
up from where its last id was (as ULIDs do), so ids made one after another by one
process sort in the order they were made.
"""

from __future__ import annotations

import secrets
import threading
import time

_RANDOM_BITS = 80
_lock = threading.Lock()
_last = (0, 0)  # (millisecond, random part) of the last id made here


def new_id(prefix: str) -> str:
    global _last
    millis = int(time.time() * 1000)
    with _lock:
        last_millis, last_random = _last
        if millis <= last_millis:
            # Same (or a clock stepped back): one more than the last keeps the order.
            millis, random_part = last_millis, last_random + 1
            if random_part >= 1 << _RANDOM_BITS:
                millis, random_part = millis + 1, secrets.randbits(_RANDOM_BITS - 1)
        else:
            # Leave headroom so the count within a millisecond cannot overflow.
            random_part = secrets.randbits(_RANDOM_BITS - 1)
        _last = (millis, random_part)
    return f"{prefix}_{millis:012x}{random_part:020x}"

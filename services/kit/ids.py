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
    return new_ids(prefix, 1)[0]


def new_ids(prefix: str, count: int) -> list[str]:
    """`count` ids in the order they sort, as `count` calls of new_id would make them
    (one lock and one draw of randomness for all: an import's batch of 1,000 new
    subscribers)."""
    global _last
    if count <= 0:
        return []
    millis = int(time.time() * 1000)
    with _lock:
        last_millis, last_random = _last
        if millis <= last_millis:
            # Same (or a clock stepped back): one more than the last keeps the order.
            millis, first = last_millis, last_random + 1
        else:
            # Leave headroom so the count within a millisecond cannot overflow.
            first = secrets.randbits(_RANDOM_BITS - 1)
        if first + count > 1 << _RANDOM_BITS:
            millis, first = millis + 1, secrets.randbits(_RANDOM_BITS - 1)
        _last = (millis, first + count - 1)
    head = f"{prefix}_{millis:012x}"
    return [f"{head}{random_part:020x}" for random_part in range(first, first + count)]

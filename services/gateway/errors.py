"""The one error type of the gateway: what the browser sees, and with which HTTP status."""

from __future__ import annotations

import re

# However an error came about, its message never carries more than this many characters
# (a downstream service's message included); a caller's own value is quoted shorter still.
MAX_MESSAGE_LENGTH = 400
# How much of a caller's value a message may quote.
MAX_QUOTED = 40
# No message carries a word (a run without spaces) longer than this.
MAX_QUOTED_WORD = 100
_LONG_WORD = re.compile(rf"\S{{{MAX_QUOTED_WORD + 1},}}")


class ApiError(Exception):
    """An error the browser sees as {"error": {"code", "message"}} with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def quote(value: str, limit: int = MAX_QUOTED) -> str:
    """`value` as a message may show it: repr'd (controls escaped), at most `limit` + 2 long."""
    shown = repr(value[:limit])
    if len(value) <= limit and len(shown) <= limit + 2:
        return shown
    return shown[: limit + 1] + "…"


def bounded(message: str) -> str:
    """`message` with no word longer than MAX_QUOTED_WORD, and at most MAX_MESSAGE_LENGTH.

    A message another service wrote may quote a caller's value whole (a host name of a
    thousand characters); cutting every long word keeps such an echo short too.
    """
    message = _LONG_WORD.sub(lambda word: word.group()[:MAX_QUOTED_WORD] + "…", message)
    if len(message) <= MAX_MESSAGE_LENGTH:
        return message
    return message[: MAX_MESSAGE_LENGTH - 1] + "…"

"""The one error type of the gateway: what the browser sees, and with which HTTP status."""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc

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


@dataclass(frozen=True)
class Upstream:
    """How the gateway answers a service's gRPC error, for the JSON API and the pages alike.

    `server_fault` errors are Clarion's, not the caller's: their details stay in the log.
    """

    status: int
    code: str
    message: str
    title: str
    server_fault: bool = False


def upstream(code: grpc.StatusCode, reason: str, details: str) -> Upstream:
    """The answer to a service's `code` (with its ErrorInfo `reason`, "" without one)."""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return Upstream(400, reason or code.name, details or "invalid request", "Bad request")
    if code == grpc.StatusCode.NOT_FOUND:
        return Upstream(404, reason or code.name, details or "not found", "Not found")
    if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS):
        return Upstream(409, reason or code.name, details or "conflict", "Not possible now")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return Upstream(
            429, reason or code.name, "too many requests; retry later", "Too many requests"
        )
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Upstream(
            503,
            "SERVICE_UNAVAILABLE",
            "a Clarion service is unavailable; retry shortly",
            "Service unavailable",
            server_fault=True,
        )
    # Anything else (a refused internal token, an internal error) is Clarion's fault.
    return Upstream(
        502,
        "UPSTREAM_ERROR",
        "a Clarion service failed; see the gateway log",
        "Something went wrong",
        server_fault=True,
    )

"""structlog: JSON lines in deployment, readable lines at a terminal; secrets redacted.

Clarion's own loggers (`get_logger`) and the standard library's (grpc, sqlalchemy,
aiohttp, alembic, asyncio) go through one handler on the root logger, formatted by
structlog's ProcessorFormatter: the same fields, the same renderer, and the same
redaction for both. Secrets are replaced before a line is written: by key name (any
key containing token, secret, key, authorization, password, auth, cookie or credential)
and by value pattern (`Bearer ...`, a VAPID `t=` JWT, `name=value` pairs with such a
name, and the query string of any http(s) URL) in every string, the message and a
formatted traceback included.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Hashable, MutableMapping
from typing import Any, TextIO

import structlog
from cachetools import TTLCache

REDACTED = "[redacted]"

# Any event key containing one of these has its (string) value replaced.
_SECRET_MARKERS = (
    "token",
    "secret",
    "key",
    "authorization",
    "password",
    "passwd",
    "auth",
    "cookie",
    "credential",
)
# Keys structlog itself writes; never secrets.
_OWN_KEYS = frozenset({"event", "level", "logger", "timestamp", "exception", "stack"})
_SECRET_NAME = r"[\w-]*(?:token|secret|key|auth|password|passwd|cookie|credential)[\w-]*"
# A value: quoted (to its closing quote; b'...' too) or a run of non-separators.
_VALUE = r"""(?!\[redacted\]|bearer\b|vapid\b)(b?"[^"]*"|b?'[^']*'|[^\s'",;&)\]}]+)"""


def _keep_quotes(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value.lstrip("b")[:1] if value.lstrip("b")[:1] in "\"'" else ""
    prefix = value[: len(value) - len(value.lstrip("b"))] if quote else ""
    return f"{match.group('name')}{prefix}{quote}{REDACTED}{quote}"


_VALUE_PATTERNS: tuple[tuple[re.Pattern[str], Any], ...] = (
    # Authorization header values: a bearer token, a VAPID JWT.
    (re.compile(r"(?i)\b(bearer)(\s+)(?!<|\[redacted\])[^\s'\",;)\]}]+"), rf"\1\2{REDACTED}"),
    (re.compile(r"(?i)\b(vapid\s+t=)[^\s'\",;)\]}]+"), rf"\1{REDACTED}"),
    # name=value, and "name": "value" (JSON, a dict's repr), with a secret-looking name.
    (re.compile(rf"(?i)(?P<name>\b{_SECRET_NAME}\s*=\s*)(?P<value>{_VALUE})"), _keep_quotes),
    (
        re.compile(rf"""(?i)(?P<name>(["']){_SECRET_NAME}\2\s*:\s*)(?P<value>{_VALUE})"""),
        _keep_quotes,
    ),
    # Query strings of URLs (push endpoints carry credentials there, as may others).
    (re.compile(r"(?i)\b(https?://[^\s?#'\"<>]+)\?[^\s#'\"<>]*"), rf"\1?{REDACTED}"),
)


def redact_text(text: str) -> str:
    """`text` with bearer tokens, VAPID JWTs, secret-named values and URL query strings
    replaced by [redacted]."""
    for pattern, replacement in _VALUE_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _secret_name(key: str) -> bool:
    lowered = key.lower()
    return lowered not in _OWN_KEYS and any(marker in lowered for marker in _SECRET_MARKERS)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if isinstance(k, str) and _secret_name(k) and _is_secret_like(v)
                else _redact_value(v)
            )
            for k, v in value.items()
        }
    if type(value) in (list, tuple):
        return type(value)(_redact_value(v) for v in value)
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else is written as its repr (both renderers do): redacted as text.
    return redact_text(repr(value))


def _is_secret_like(value: Any) -> bool:
    # Counts and flags under a secret-looking name (tokens_asked=3) are not secrets.
    return not isinstance(value, bool | int | float) and value is not None


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The structlog processor: secrets out of every key and value of the event."""
    for key, value in list(event.items()):
        if key.startswith("_"):  # ProcessorFormatter's own (_record, _from_structlog)
            continue
        if _secret_name(key) and _is_secret_like(value):
            event[key] = REDACTED
        else:
            event[key] = _redact_value(value)
    return event


# The handler configure_logging installed, replaced when it is called again.
_HANDLER_MARK = "_clarion_handler"


def configure_logging(
    fmt: str = "auto", level: str = "INFO", *, stream: TextIO | None = None
) -> None:
    """Routes structlog and the standard library's logging to `stream` (stderr)."""
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", lambda: False)()
    json_lines = fmt == "json" or (fmt == "auto" and not isatty)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=isatty)
    )
    number = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    formatter = structlog.stdlib.ProcessorFormatter(
        # Records of other libraries first gain what structlog's own events carry.
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            timestamper,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            # After the traceback is text, so that it is redacted too.
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(number)
    # Alembic says at INFO which dialect it uses on every start; a migration that runs
    # is logged by services.kit.migrations instead.
    logging.getLogger("alembic").setLevel(
        logging.DEBUG if number <= logging.DEBUG else logging.WARNING
    )
    # aiosqlite logs every statement with its parameters (secrets among them) at DEBUG.
    logging.getLogger("aiosqlite").setLevel(max(number, logging.INFO))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]


class OncePer:
    """Yes the first time a key is seen in each window of `seconds`, no after: for a log
    line about a condition that persists (a push service throttling us), once per key
    and window rather than once per recipient. Bounded: at most `max_keys` keys are
    remembered, the least recently used going first."""

    def __init__(
        self,
        seconds: float,
        *,
        max_keys: int = 1024,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seen: TTLCache[Hashable, bool] = TTLCache(max_keys, seconds, timer=timer)

    def __call__(self, key: Hashable) -> bool:
        if key in self._seen:
            return False
        self._seen[key] = True
        return True

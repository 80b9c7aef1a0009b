"""structlog: JSON lines in deployment, readable lines at a terminal; secrets redacted."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

# Any event key that looks like one of these is replaced before it is written.
_SECRET_MARKERS = ("api_key", "private_key", "authorization", "token", "secret", "password", "auth")


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        lowered = key.lower()
        if lowered != "event" and any(marker in lowered for marker in _SECRET_MARKERS):
            event[key] = "[redacted]"
    return event


def configure_logging(fmt: str = "auto", level: str = "INFO") -> None:
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer()
    )
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]

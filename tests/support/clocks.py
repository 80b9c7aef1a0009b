"""Clocks the tests move: real time plus an offset, for services that must keep running."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.kit.clock import SystemClock


class JumpClock(SystemClock):
    """The system's clock, moved forward by the test."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return super().now() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

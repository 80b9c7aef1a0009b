"""What each browser family can show of a push payload, as data: content reads this
table, and no other code asks which browser it is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from clarion.common.v1 import common_pb2


@dataclass(frozen=True)
class BrowserRule:
    # How people know the browser, for messages ("Safari").
    name: str
    # PushPayload fields the browser cannot show: its recipients get a copy without them.
    drops: frozenset[str]
    # The browser opens nothing on a click without the payload's url (the deeplink).
    needs_click_url: bool
    # The prefix of its warnings' codes ("SAFARI" -> SAFARI_FIELDS_DROPPED); "": the
    # name's, upper case.
    code: str = ""

    @property
    def warning_code(self) -> str:
        return self.code or self.name.upper()


RULES: Mapping[int, BrowserRule] = {
    common_pb2.BROWSER_SAFARI: BrowserRule(
        name="Safari",
        drops=frozenset({"icon", "image", "badge", "actions"}),
        needs_click_url=True,
    ),
    # Legacy Safari (macOS Safari <= 15 website push, over APNs): delivery sends it
    # aps.alert {title, body, action} only, and Safari opens the click URL through the
    # site's URL format string (url-args), so a notification without one opens nothing.
    common_pb2.BROWSER_SAFARI_LEGACY: BrowserRule(
        name="Legacy Safari",
        drops=frozenset(
            {
                "icon",
                "image",
                "badge",
                "actions",
                "require_interaction",
                "silent",
                "tag",
                "renotify",
            }
        ),
        needs_click_url=True,
        code="SAFARI_LEGACY",
    ),
}

# Every browser family an audience may hold when nothing narrows it.
ALL_BROWSERS: tuple[int, ...] = tuple(common_pb2.Browser.values())

"""Where a click on a recipient's push leads (ResolveClickTarget), for the gateway's click
redirect: the URL is never taken from the click link, only from the push delivery made.

The recipient's payload is made again exactly as the worker made it at send time: its
variant's payload (the run's without variants), its browser's if the run has one, and,
for a templated run, rendered with the template context its recipient row still keeps
(`delivery_recipients.context` stays after sending). Campaign has already added the UTM
parameters to `url` and `actions[].url`, so the URL comes back with them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cachetools import LRUCache

from services.delivery.domain.content import ContentOptions, compile_payload, template_context
from services.delivery.models import RecipientState
from services.delivery.store import ClickRecipient, DeliveryStore
from services.kit.errors import NotFound
from services.kit.templates import MissingValue, PayloadTemplate, RenderRefused

# Compiled templates per (site, run, variant, browser): the runs being clicked at once.
_TEMPLATE_CACHE_SIZE = 256


@dataclass(frozen=True)
class ClickTarget:
    # "" when the body (or that button) has no URL, or the copy cannot be made again.
    url: str
    # The button's `action` ("action_1", "action_2"); "" for the body, and for a
    # button the push did not have.
    action: str
    sent: bool
    sent_time: datetime | None
    campaign_id: str


class DeliveryClicks:
    def __init__(self, store: DeliveryStore) -> None:
        self._store = store
        self._templates: LRUCache[tuple[str, str, str, int], PayloadTemplate | None] = LRUCache(
            maxsize=_TEMPLATE_CACHE_SIZE
        )

    async def target(
        self, site_id: str, run_id: str, subscriber_id: str, button: int
    ) -> ClickTarget:
        """Where a click on `button` (0: the body; 1, 2: its actions) of the recipient's
        push leads; NOT_FOUND (RECIPIENT_NOT_QUEUED) when the run has no such recipient."""
        recipient = await self._store.click_recipient(site_id, run_id, subscriber_id)
        if recipient is None:
            raise NotFound(
                "RECIPIENT_NOT_QUEUED",
                f"subscriber {subscriber_id!r} is not a recipient of run {run_id!r} in this site",
                run_id=run_id,
                subscriber_id=subscriber_id,
            )
        sent = recipient.state is RecipientState.SENT
        document = self._payload(site_id, run_id, recipient)
        url, action = _link(document, button)
        return ClickTarget(
            url=url,
            action=action,
            sent=sent,
            sent_time=recipient.finish_time if sent else None,
            campaign_id=recipient.campaign_id,
        )

    def _payload(self, site_id: str, run_id: str, recipient: ClickRecipient) -> dict[str, Any]:
        """The recipient's payload as a JSON object (without the per-recipient fields,
        which hold no link); {} when it cannot be made again (a recipient the worker
        suppressed or failed for its personalization)."""
        if recipient.variant_payload is not None:
            payload = recipient.variant_payload
            options = ContentOptions.from_json(recipient.variant_options)
        else:
            payload = recipient.payload
            options = ContentOptions.from_json(recipient.content_options)
        payload = options.payload_for(recipient.browser, payload)
        rendered = payload
        if options.templated:
            key = (site_id, run_id, recipient.variant, recipient.browser)
            if key not in self._templates:
                self._templates[key] = compile_payload(payload, options)
            template = self._templates[key]
            if template is not None:
                try:
                    rendered = template.render(template_context(recipient.context))
                except (MissingValue, RenderRefused):
                    return {}
        try:
            document = json.loads(rendered)
        except ValueError:
            return {}
        return document if isinstance(document, dict) else {}


def _link(document: dict[str, Any], button: int) -> tuple[str, str]:
    """(url, action) of the body (button 0) or of action button 1 or 2."""
    if button == 0:
        url = document.get("url")
        return (url if isinstance(url, str) else ""), ""
    actions = document.get("actions")
    if not isinstance(actions, list) or len(actions) < button:
        return "", ""  # no such button
    item = actions[button - 1]
    if not isinstance(item, dict):
        return "", ""
    url, action = item.get("url"), item.get("action")
    return (
        url if isinstance(url, str) else "",
        action if isinstance(action, str) and action else f"action_{button}",
    )


__all__ = ["ClickTarget", "DeliveryClicks"]

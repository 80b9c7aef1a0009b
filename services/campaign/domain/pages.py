"""The campaign service's page sizes (AIP-158); sizes and tokens are the kit's."""

from __future__ import annotations

from services.kit.pages import page_size

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_limit(requested: int) -> int:
    """How many items a page holds: 0 means the default, more than the maximum is capped."""
    return page_size(requested, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)

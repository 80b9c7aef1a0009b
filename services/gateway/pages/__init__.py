"""Report pages served by the gateway under `/reports/` (docs/services/gateway.md,
"Report pages"): server-rendered HTML for a site's people, signed in with the site's
API key.

`install(app, peers, metadata)` adds the routes, the templates, the session cache and the
security headers every `/reports` answer carries. The pages store nothing: they read
campaign and reporting with the internal token on behalf of the signed-in site.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jinja2
from aiohttp import web

from services.gateway.limits import TokenBuckets
from services.gateway.pages import views, words
from services.gateway.pages.assets import STATIC_DIR, Assets
from services.gateway.pages.session import KEY_CACHE_SECONDS, KEY_CACHE_SIZE, SiteSessions
from services.kit.clock import Clock, SystemClock
from services.kit.peers import Peers

PREFIX = "/reports"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_CORS_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
)

Metadata = tuple[tuple[str, str], ...]


def templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(words.FILTERS)
    return environment


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every `/reports` answer: the CSP, no sniffing, no referrer, not stored (except the
    content-hashed assets, which say so themselves), and no CORS (the API's `*` is for
    the SDK, not for pages behind a session cookie)."""
    if request.path != PREFIX and not request.path.startswith(PREFIX + "/"):
        return
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("Cache-Control", "no-store")
    if request.method != "OPTIONS":
        for name in _CORS_HEADERS:
            response.headers.popall(name, None)


def install(
    app: web.Application,
    peers: Peers,
    metadata: Callable[[str], Metadata],
    *,
    clock: Clock | None = None,
    key_cache_seconds: float = KEY_CACHE_SECONDS,
    key_cache_size: int = KEY_CACHE_SIZE,
    static_dir: Path = STATIC_DIR,
    sign_in_failures: TokenBuckets | None = None,
) -> None:
    """Adds the report pages to `app`. `metadata(site_id)` is the metadata of a call on
    the site's behalf (the internal token); `clock` times the API-key cache."""
    app[views.TEMPLATES] = templates()
    app[views.ASSETS] = Assets.load(static_dir)
    app[views.BACKEND] = views.Backend(peers, metadata)
    app[views.SIGN_IN_FAILURES] = sign_in_failures or TokenBuckets(
        views.SIGN_IN_BURST, views.SIGN_IN_REFILL_PER_SECOND
    )
    app[views.SESSIONS] = SiteSessions(
        peers, metadata, clock or SystemClock(), key_cache_seconds, key_cache_size
    )
    app.on_response_prepare.append(_security_headers)
    router = app.router
    router.add_get(PREFIX, views.to_home)
    router.add_get(PREFIX + "/", views.campaigns)
    router.add_get(PREFIX + "/sign-in", views.sign_in_form)
    router.add_post(PREFIX + "/sign-in", views.sign_in)
    router.add_post(PREFIX + "/sign-out", views.sign_out)
    router.add_get(PREFIX + "/campaigns/{campaign_id}", views.campaign_report)
    router.add_get(PREFIX + "/campaigns/{campaign_id}/why", views.why)
    router.add_get(PREFIX + "/campaigns/{campaign_id}/plan", views.plan)
    router.add_get(PREFIX + "/static/{name}", views.static)
    router.add_get(PREFIX + "/{tail:.*}", views.not_found)

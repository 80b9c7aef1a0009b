"""The report pages' handlers: sign-in and sign-out, the campaigns list, a campaign's
report, a person's "why" trail and the delivery plan preview.

Each page reads campaign's and reporting's gRPC services with the internal token on
behalf of the signed-in site (so another site's campaign is not found), and renders a
Jinja2 template (autoescaped). A service's NOT_FOUND is a 404 page, INVALID_ARGUMENT a
400, FAILED_PRECONDITION a 409, UNAVAILABLE (or no answer in time) a 503; nothing a
service answers becomes a 500 or shows a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import jinja2
from aiohttp import web

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from clarion.reporting.v1 import reporting_pb2, reporting_service_pb2, reporting_service_pb2_grpc
from services.gateway.errors import bounded, upstream
from services.gateway.limits import TokenBuckets
from services.gateway.pages import words
from services.gateway.pages.assets import Assets
from services.gateway.pages.session import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SiteSession,
    SiteSessions,
    clear_session,
    csrf_refusal,
    csrf_token,
    remember_csrf,
    set_session,
)
from services.kit.logging import get_logger
from services.kit.peers import Peers

log = get_logger("clarion.gateway")

Metadata = tuple[tuple[str, str], ...]
T = TypeVar("T")

HOME = "/reports/"
SIGN_IN = "/reports/sign-in"
CAMPAIGNS_PER_PAGE = 20
RUNS_PER_PAGE = 20
# At most this many report calls of one page in flight at once.
CONCURRENT_CALLS = 8
MAX_PAGE_TOKEN = 512
# Ids as the contracts declare them (TEXT_FORMAT_ID), and a profile id (one line).
_ID = re.compile(r"[A-Za-z0-9\-_.:]{1,128}")
_PAGE_TOKEN = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_PAGE_TOKEN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Backend:
    """The services the pages read, with the metadata of a call on a site's behalf."""

    peers: Peers
    metadata: Callable[[str], Metadata]

    def campaigns(self) -> campaign_service_pb2_grpc.CampaignServiceStub:
        return campaign_service_pb2_grpc.CampaignServiceStub(self.peers.channel("campaign"))

    def reporting(self) -> reporting_service_pb2_grpc.ReportingServiceStub:
        return reporting_service_pb2_grpc.ReportingServiceStub(self.peers.channel("reporting"))

    def options(self, site: SiteSession) -> dict[str, Any]:
        return {"metadata": self.metadata(site.site_id), "timeout": self.peers.timeout}


TEMPLATES = web.AppKey("reports_templates", jinja2.Environment)
SESSIONS = web.AppKey("reports_sessions", SiteSessions)
ASSETS = web.AppKey("reports_assets", Assets)
BACKEND = web.AppKey("reports_backend", Backend)
# Refused API keys per client address: a guesser is slowed to a few tries a minute.
SIGN_IN_FAILURES = web.AppKey("reports_sign_in_failures", TokenBuckets)
SIGN_IN_BURST = 10
SIGN_IN_REFILL_PER_SECOND = 0.1
_SITE = web.RequestKey("clarion_reports_site", SiteSession)


class PageError(Exception):
    """A page the reader gets instead of the one asked for."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


# --- rendering -------------------------------------------------------------------------


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    html = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(
            assets=request.app[ASSETS],
            csrf=csrf_token(request),
            csrf_field=CSRF_FIELD,
            site=request.get(_SITE),
            **context,
        )
    )
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    remember_csrf(response, request)
    return response


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return render(request, "error.html", status=status, title=title, message=message)


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


# What a page says when a service's error has no message of its own to show.
_PAGE_MESSAGES = {
    400: "The request was not valid.",
    404: "There is nothing here.",
    409: "Not possible now.",
    429: "Too many requests right now. Try again in a moment.",
    503: "A Clarion service is unavailable right now. Try again in a moment.",
    502: "A Clarion service failed to answer this page. The gateway's log says more.",
}


def _rpc_error_page(request: web.Request, error: grpc.aio.AioRpcError) -> web.Response:
    """The page for a service's error: the status and title the JSON API answers with
    (services.gateway.errors.upstream), in words for a person."""
    code = error.code()
    answer = upstream(code, "", "")
    if answer.status == 503:
        log.warning("upstream unavailable", grpc_code=code.name, page=request.path)
    elif answer.server_fault:
        log.error("upstream call failed", grpc_code=code.name, details=error.details())
    shown = "" if answer.server_fault else bounded(error.details() or "")
    return error_page(request, answer.status, answer.title, shown or _PAGE_MESSAGES[answer.status])


async def _answered(
    request: web.Request, make: Callable[[], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await make()
    except PageError as error:
        return error_page(request, error.status, error.title, error.message)
    except grpc.aio.AioRpcError as error:
        return _rpc_error_page(request, error)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("report page failed", page=request.path)
        return error_page(
            request,
            500,
            "Something went wrong",
            "This page could not be made. The gateway's log says more.",
        )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SiteHandler = Callable[[web.Request, SiteSession], Awaitable[web.StreamResponse]]


def public(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def page(request: web.Request) -> web.StreamResponse:
        return await _answered(request, lambda: handler(request))

    return page


def signed_in(handler: SiteHandler) -> Handler:
    """A page of the signed-in site; without a session whose key still resolves, a 303
    to the sign-in form (and the stale cookie cleared)."""

    @functools.wraps(handler)
    async def page(request: web.Request) -> web.StreamResponse:
        async def make() -> web.StreamResponse:
            key = request.cookies.get(SESSION_COOKIE, "")
            site = await request.app[SESSIONS].resolve(key)
            if site is None:
                response = see_other(SIGN_IN)
                if key:
                    clear_session(response, request)
                return response
            request[_SITE] = site
            return await handler(request, site)

        return await _answered(request, make)

    return page


async def _bounded_gather(calls: list[Coroutine[Any, Any, T]]) -> list[T]:
    limit = asyncio.Semaphore(CONCURRENT_CALLS)

    async def one(call: Coroutine[Any, Any, T]) -> T:
        async with limit:
            return await call

    return list(await asyncio.gather(*(one(call) for call in calls)))


# --- inputs ----------------------------------------------------------------------------


def _page_token(request: web.Request, name: str) -> str:
    token = request.query.get(name, "")
    if token and not _PAGE_TOKEN.fullmatch(token):
        raise PageError(
            400,
            "Bad request",
            f"{name} must be the page link's value unchanged (at most {MAX_PAGE_TOKEN} "
            "printable characters); go back to the first page.",
        )
    return token


def _campaign_id(request: web.Request) -> str:
    campaign_id = request.match_info["campaign_id"]
    if not _ID.fullmatch(campaign_id):
        raise PageError(404, "Not found", "There is no such campaign in this site.")
    return campaign_id


async def _campaign(backend: Backend, site: SiteSession, campaign_id: str) -> campaign_pb2.Campaign:
    response = await backend.campaigns().GetCampaign(
        campaign_service_pb2.GetCampaignRequest(campaign_id=campaign_id), **backend.options(site)
    )
    return response.campaign


async def _report(
    backend: Backend, site: SiteSession, campaign_id: str
) -> reporting_pb2.CampaignReport | None:
    """The campaign's report; None when no run of it was recorded (never sent)."""
    try:
        response = await backend.reporting().GetCampaignReport(
            reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
            **backend.options(site),
        )
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return response.report


# --- sign-in ---------------------------------------------------------------------------


@public
async def sign_in_form(request: web.Request) -> web.StreamResponse:
    if await request.app[SESSIONS].resolve(request.cookies.get(SESSION_COOKIE, "")):
        return see_other(HOME)
    return render(request, "sign_in.html", error="")


async def _form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {name: value for name, value in form.items() if isinstance(value, str)}


@public
async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    refusal = csrf_refusal(request, form.get(CSRF_FIELD, ""))
    if refusal:
        return error_page(request, 403, "Form refused", refusal)
    failures, address = request.app[SIGN_IN_FAILURES], request.remote or ""
    if not failures.has_token(address):
        return _too_many_attempts(request)
    api_key = form.get("api_key", "").strip()
    site = await request.app[SESSIONS].resolve(api_key)
    if site is None:
        if not failures.take(address):
            return _too_many_attempts(request)
        return render(
            request,
            "sign_in.html",
            status=401,
            error="That API key was not accepted. Check that it is the site's current key.",
        )
    response = see_other(HOME)
    set_session(response, request, api_key)
    return response


def _too_many_attempts(request: web.Request) -> web.Response:
    response = error_page(
        request,
        429,
        "Too many sign-in attempts",
        "Too many API keys were refused from this address. Wait a minute and try again.",
    )
    response.headers["Retry-After"] = str(round(1 / SIGN_IN_REFILL_PER_SECOND))
    return response


@public
async def sign_out(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    refusal = csrf_refusal(request, form.get(CSRF_FIELD, ""))
    if refusal:
        return error_page(request, 403, "Form refused", refusal)
    response = see_other(SIGN_IN)
    clear_session(response, request)
    return response


# --- pages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignRow:
    campaign: campaign_pb2.Campaign
    report: reporting_pb2.CampaignReport | None


@signed_in
async def campaigns(request: web.Request, site: SiteSession) -> web.StreamResponse:
    backend = request.app[BACKEND]
    token = _page_token(request, "page")
    listed = await backend.campaigns().ListCampaigns(
        campaign_service_pb2.ListCampaignsRequest(page_size=CAMPAIGNS_PER_PAGE, page_token=token),
        **backend.options(site),
    )
    reports = await _bounded_gather(
        [_report(backend, site, c.campaign_id) for c in listed.campaigns]
    )
    rows = [CampaignRow(c, r) for c, r in zip(listed.campaigns, reports, strict=True)]
    return render(
        request,
        "campaigns.html",
        rows=rows,
        next_page=listed.next_page_token,
        first_page=not token,
        words=words,
    )


@dataclass(frozen=True)
class RunRow:
    report: reporting_pb2.RunReport
    run: campaign_pb2.Run | None


def timeline_data(report: reporting_pb2.CampaignReport | None) -> dict[str, Any]:
    """The hourly timeline as the chart script reads it: hours in epoch seconds and one
    equally long list per series."""
    hours = list(report.timeline) if report is not None else []
    return {
        "hours": [hour.hour_start_time.seconds for hour in hours],
        "series": {
            name: [getattr(hour, name) for hour in hours]
            for name in ("sent", "viewed", "clicked", "converted")
        },
    }


@signed_in
async def campaign_report(request: web.Request, site: SiteSession) -> web.StreamResponse:
    backend = request.app[BACKEND]
    campaign_id = _campaign_id(request)
    runs_token = _page_token(request, "runs_page")
    campaign = await _campaign(backend, site, campaign_id)
    report, listed = await asyncio.gather(
        _report(backend, site, campaign_id),
        backend.reporting().ListRunReports(
            reporting_service_pb2.ListRunReportsRequest(
                campaign_id=campaign_id, page_size=RUNS_PER_PAGE, page_token=runs_token
            ),
            **backend.options(site),
        ),
    )

    async def run_of(run_id: str) -> campaign_pb2.Run | None:
        try:
            response = await backend.campaigns().GetRun(
                campaign_service_pb2.GetRunRequest(run_id=run_id), **backend.options(site)
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return response.run

    runs = await _bounded_gather([run_of(r.run_id) for r in listed.reports])
    timeline = timeline_data(report)
    return render(
        request,
        "report.html",
        campaign=campaign,
        report=report,
        runs=[RunRow(r, run) for r, run in zip(listed.reports, runs, strict=True)],
        next_runs_page=listed.next_page_token,
        first_runs_page=not runs_token,
        timeline=timeline,
        timeline_rows=list(zip(timeline["hours"], *timeline["series"].values(), strict=True)),
        words=words,
    )


def _person(request: web.Request) -> tuple[str, str]:
    """("subscriber_id" or "profile_id", the value) from the query; a PageError naming the
    field when neither, both, or a malformed one is given."""
    subscriber_id = request.query.get("subscriber_id", "").strip()
    profile_id = request.query.get("profile_id", "").strip()
    if subscriber_id and profile_id:
        raise PageError(400, "Bad request", "Give a subscriber_id or a profile_id, not both.")
    if subscriber_id:
        if not _ID.fullmatch(subscriber_id):
            raise PageError(
                400,
                "Bad request",
                "subscriber_id must be 1 to 128 characters of A-Z a-z 0-9 - _ . :",
            )
        return "subscriber_id", subscriber_id
    if profile_id:
        if len(profile_id) > 128 or _CONTROL.search(profile_id):
            raise PageError(
                400,
                "Bad request",
                "profile_id must be 1 to 128 characters on one line, without control characters",
            )
        return "profile_id", profile_id
    raise PageError(400, "Bad request", "Give a subscriber_id or a profile_id to explain.")


@signed_in
async def why(request: web.Request, site: SiteSession) -> web.StreamResponse:
    backend = request.app[BACKEND]
    campaign_id = _campaign_id(request)
    field, value = _person(request)
    campaign = await _campaign(backend, site, campaign_id)
    request_message = campaign_service_pb2.ExplainRecipientRequest(campaign_id=campaign_id)
    setattr(request_message, field, value)
    response = await backend.campaigns().ExplainRecipient(request_message, **backend.options(site))
    return render(
        request,
        "why.html",
        campaign=campaign,
        field=field,
        person=value,
        explanations=list(response.explanations),
        words=words,
    )


@dataclass(frozen=True)
class PlanTotals:
    sent: int
    suppressed: list[tuple[int, int]]

    @property
    def suppressed_total(self) -> int:
        return sum(count for _, count in self.suppressed)


def plan_totals(plan: campaign_pb2.DeliveryPlan) -> PlanTotals:
    suppressed: Counter[int] = Counter()
    for row in plan.rows:
        for item in row.suppressed:
            suppressed[item.reason] += item.count
    return PlanTotals(
        sent=sum(row.sent for row in plan.rows),
        suppressed=sorted(suppressed.items(), key=lambda item: (-item[1], item[0])),
    )


@signed_in
async def plan(request: web.Request, site: SiteSession) -> web.StreamResponse:
    backend = request.app[BACKEND]
    campaign_id = _campaign_id(request)
    campaign = await _campaign(backend, site, campaign_id)
    response = await backend.campaigns().PreviewCampaign(
        campaign_service_pb2.PreviewCampaignRequest(campaign_id=campaign_id),
        **backend.options(site),
    )
    return render(
        request,
        "plan.html",
        campaign=campaign,
        plan=response.plan,
        totals=plan_totals(response.plan),
        words=words,
    )


@public
async def static(request: web.Request) -> web.StreamResponse:
    response = request.app[ASSETS].response(request.match_info["name"])
    if response is None:
        return error_page(request, 404, "Not found", "There is no such file.")
    return response


@public
async def not_found(request: web.Request) -> web.StreamResponse:
    return error_page(request, 404, "Not found", "There is no such page.")


async def to_home(request: web.Request) -> web.StreamResponse:
    return see_other(HOME)

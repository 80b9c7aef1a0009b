"""A service's gRPC error reaches a browser with the same HTTP status whether it came
through the JSON API or a report page (services.gateway.errors.upstream)."""

from __future__ import annotations

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from services.gateway import app
from services.gateway.errors import upstream
from services.gateway.pages import templates, views
from services.gateway.pages.assets import STATIC_DIR, Assets

EXPECTED = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    grpc.StatusCode.INTERNAL: 502,
    grpc.StatusCode.UNAUTHENTICATED: 502,
    grpc.StatusCode.PERMISSION_DENIED: 502,
    grpc.StatusCode.UNKNOWN: 502,
}


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def page_for(error: grpc.aio.AioRpcError) -> web.Response:
    app = web.Application()
    app[views.TEMPLATES] = templates()
    app[views.ASSETS] = Assets.load(STATIC_DIR)
    request = make_mocked_request("GET", "/reports/campaigns/cmp_1", app=app)
    return views._rpc_error_page(request, error)


@pytest.mark.parametrize("code", list(EXPECTED), ids=lambda code: code.name)
def test_the_api_and_the_pages_answer_a_service_error_with_one_status(
    code: grpc.StatusCode,
) -> None:
    answer = upstream(code, "", "the service's words")
    page = page_for(rpc_error(code, "the service's words"))
    api = app._rpc_error_response(rpc_error(code, "the service's words"))
    assert answer.status == page.status == api.status == EXPECTED[code]
    assert answer.title in (page.text or "")


def test_a_throttled_page_says_so_with_429() -> None:
    page = page_for(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many exports at once"))
    assert page.status == 429
    assert "too many exports at once" in (page.text or "")


def test_a_services_own_failure_is_not_shown_on_the_page() -> None:
    page = page_for(rpc_error(grpc.StatusCode.INTERNAL, "psycopg.OperationalError: secret"))
    assert page.status == 502
    assert "psycopg" not in (page.text or "")
    assert "The gateway&#39;s log says more" in (page.text or "")

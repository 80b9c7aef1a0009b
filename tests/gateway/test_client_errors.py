"""POST /v1/sites/{site_id}/client-errors: what browsers report, logged and counted,
validated like every route, and limited per site."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from services.gateway.client_errors import BURST
from services.gateway.limits import TokenBuckets
from tests.gateway.conftest import GatewaySite, Stack
from tests.gateway.test_gateway import assert_error, post


def counted(kind: str, name: str = "clarion_gateway_client_errors_total") -> float:
    return REGISTRY.get_sample_value(name, {"kind": kind}) or 0.0


def report(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "kind": "bad_payload",
        "message": "NOT_JSON: the push data is not JSON",
        "sdk_version": "0.1.0",
        "subscriber_id": "sub_0123",
        "run_id": "run_0123",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


async def send(stack: Stack, site_id: str, body: object) -> tuple[int, dict]:
    status, answer, _ = await post(stack, f"/v1/sites/{site_id}/client-errors", json=body)
    return status, answer


class TestClientErrors:
    async def test_a_report_is_202_logged_and_counted(self, stack, site: GatewaySite):
        before = counted("unknown_version")

        with capture_logs() as logs:
            status, body = await send(
                stack,
                site.site_id,
                report(kind="unknown_version", message="line one\nline\x00two\u202e!"),
            )

        assert (status, body) == (202, {"recorded": True})
        assert counted("unknown_version") == before + 1
        [line] = [entry for entry in logs if entry["event"] == "client error"]
        assert line == {
            "event": "client error",
            "log_level": "warning",
            "site_id": site.site_id,
            "kind": "unknown_version",
            # Control and bidi characters replaced by spaces: one line, shown as sent.
            "client_message": "line one line two !",
            "sdk_version": "0.1.0",
            "subscriber_id": "sub_0123",
            "run_id": "run_0123",
        }

    async def test_the_ids_are_optional(self, stack, site):
        status, body = await send(
            stack, site.site_id, report(kind="subscribe_failed", subscriber_id=None, run_id=None)
        )
        assert (status, body) == (202, {"recorded": True})

    @pytest.mark.parametrize(
        ("overrides", "code", "field"),
        [
            ({"kind": "exploded"}, "INVALID_KIND", "kind"),
            ({"kind": None}, "MISSING_FIELD", "kind"),
            ({"message": ""}, "MISSING_FIELD", "message"),
            ({"message": 42}, "INVALID_FIELD_TYPE", "message"),
            ({"message": "m" * 501}, "FIELD_TOO_LONG", "message"),
            ({"sdk_version": None}, "MISSING_FIELD", "sdk_version"),
            ({"sdk_version": "1.0 beta"}, "INVALID_SDK_VERSION", "sdk_version"),
            ({"sdk_version": "1" * 33}, "FIELD_TOO_LONG", "sdk_version"),
            ({"subscriber_id": "sub/1"}, "INVALID_ID", "subscriber_id"),
            ({"run_id": "r" * 129}, "FIELD_TOO_LONG", "run_id"),
        ],
    )
    async def test_a_bad_report_is_400_naming_the_field_and_not_counted(
        self, stack, site, overrides, code, field
    ):
        kind = overrides.get("kind") or "bad_payload"
        before = counted(kind) if isinstance(kind, str) else 0.0

        status, body = await send(stack, site.site_id, report(**overrides))

        assert_error(status, body, 400, code)
        assert body["error"]["message"].startswith(field)
        if isinstance(kind, str):
            assert counted(kind) == before

    async def test_a_body_over_16_kib_is_413(self, stack, site):
        status, body = await send(stack, site.site_id, report(message="m" * (17 * 1024)))
        assert_error(status, body, 413, "PAYLOAD_TOO_LARGE")

    async def test_an_unknown_site_is_404(self, stack):
        before = counted("bad_payload")
        for site_id in ("site_nobody", "not.a.site.id"):
            status, body, _ = await post(stack, f"/v1/sites/{site_id}/client-errors", json=report())
            assert_error(status, body, 404, "SITE_NOT_FOUND")
        assert counted("bad_payload") == before

    async def test_a_flood_is_429_counted_and_other_sites_still_report(
        self, stack, site, other_site
    ):
        limited = "clarion_gateway_client_errors_rate_limited_total"
        before = counted("show_failed"), counted("show_failed", limited)

        statuses = [
            (await send(stack, site.site_id, report(kind="show_failed")))[0]
            for _ in range(BURST + 5)
        ]

        # BURST at once (a token may come back during the loop: a second passes at most).
        assert statuses[:BURST] == [202] * BURST
        assert statuses[-1] == 429
        refused = statuses.count(429)
        assert 3 <= refused <= 5
        assert counted("show_failed") == before[0] + statuses.count(202)
        assert counted("show_failed", limited) == before[1] + refused
        status, body = await send(stack, site.site_id, report(kind="show_failed"))
        assert_error(status, body, 429, "TOO_MANY_CLIENT_ERRORS")
        assert (await send(stack, other_site.site_id, report()))[0] == 202


class TestTokenBuckets:
    def test_a_key_gets_its_burst_then_the_refill(self):
        now = [100.0]
        buckets = TokenBuckets(burst=3, refill_per_second=0.5, monotonic=lambda: now[0])

        assert [buckets.take("a") for _ in range(4)] == [True, True, True, False]
        assert buckets.take("b")  # another key has its own bucket
        now[0] += 1.0  # half a token
        assert not buckets.take("a")
        now[0] += 1.0
        assert buckets.take("a") and not buckets.take("a")
        now[0] += 3600
        assert [buckets.take("a") for _ in range(4)] == [True, True, True, False]

    def test_the_map_stays_bounded(self):
        buckets = TokenBuckets(burst=1, refill_per_second=1.0, max_keys=2, monotonic=lambda: 0.0)
        assert buckets.take("a") and not buckets.take("a")
        buckets.take("b")
        buckets.take("c")  # "a", the least recently seen, is forgotten: a new bucket
        assert buckets.take("a")

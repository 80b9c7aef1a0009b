"""services.kit.metrics: the /metrics endpoint, the RPC latency interceptor on a real
gRPC server, push-service labels, and the gauges' refresher."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from services.kit.grpcserver import build_server, client_channel
from services.kit.metrics import (
    GaugeRefresher,
    PushServiceLabels,
    count_outcomes,
    count_webhook_attempts,
    observe_push,
    serve_metrics,
    set_delivery_queue,
    set_webhook_backlog,
    start_metrics_server,
)
from services.kit.operator import PortInUse

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> tuple[str, Samples]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            assert response.status == 200
            content_type = response.headers["Content-Type"]
            text = await response.text()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return content_type, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def metrics_url():  # type: ignore[no-untyped-def]
    server = await start_metrics_server("127.0.0.1", 0)
    yield server.url
    await server.stop()


class TestEndpoint:
    async def test_serves_the_registry_in_the_prometheus_text_format(
        self, metrics_url: str
    ) -> None:
        count_outcomes([("sent", ""), ("failed", "push_service_410")])
        content_type, samples = await scrape(metrics_url)
        assert content_type.startswith("text/plain; version=")
        assert value(samples, "clarion_delivery_outcomes_total", status="sent", reason="none") >= 1
        assert (
            value(
                samples,
                "clarion_delivery_outcomes_total",
                status="failed",
                reason="push_service_410",
            )
            >= 1
        )

    async def test_a_taken_port_names_the_setting(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(PortInUse, match="CLARION_METRICS_PORT"):
                await serve_metrics("127.0.0.1:50051", port, "CLARION_METRICS_PORT")

    async def test_a_negative_port_serves_nothing(self) -> None:
        assert await serve_metrics("127.0.0.1:50051", -1, "CLARION_METRICS_PORT") is None


class TestRpcLatency:
    async def test_every_answered_call_is_observed_with_its_method_and_code(
        self, metrics_url: str
    ) -> None:
        # Two servers in one process (as tests and the embedded stack run them) share
        # the metrics: no "Duplicated timeseries".
        servers = [build_server("127.0.0.1:0", [], []) for _ in range(2)]
        for server in servers:
            await server.start()
        try:
            _, before = await scrape(metrics_url)
            async with client_channel(servers[0].address) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
                assert refused.value.code() is grpc.StatusCode.NOT_FOUND
                unknown = channel.unary_unary("/made.up.Service/Anything")
                with pytest.raises(grpc.aio.AioRpcError):
                    await unknown(b"", timeout=5)
            _, after = await scrape(metrics_url)
        finally:
            for server in servers:
                await server.stop(0)

        def calls(code: str) -> float:
            labels = {"service": "grpc.health.v1.Health", "method": "Check", "code": code}
            name = "clarion_rpc_duration_seconds_count"
            return value(after, name, **labels) - value(before, name, **labels)

        assert (calls("OK"), calls("NOT_FOUND")) == (1, 1)
        # A method the server does not have is no label value (callers choose its name).
        assert not any("made.up.Service" in str(labels) for _, labels in after)


class TestPushServiceLabels:
    def test_known_push_services_are_named_by_their_pattern(self) -> None:
        label = PushServiceLabels()
        assert label("https://fcm.googleapis.com/fcm/send/abc") == "fcm.googleapis.com"
        assert label("https://wns2-par02p.notify.windows.com/w/?token=x") == "*.notify.windows.com"
        assert label("https://web.push.apple.com/QGx") == "*.push.apple.com"

    def test_other_hosts_are_capped_and_never_carry_path_port_or_user(self) -> None:
        label = PushServiceLabels(limit=2)
        assert label("http://user:secret@127.0.0.1:8090/push/sub-1") == "127.0.0.1"
        assert label("https://a.example/push/sub-2") == "a.example"
        assert label("https://b.example/push/sub-3") == "other"
        assert label("https://a.example/push/sub-4") == "a.example"
        assert label("not a url") == "other"

    async def test_push_answers_count_by_status_class(self, metrics_url: str) -> None:
        _, before = await scrape(metrics_url)
        observe_push("test.example", 0.05, 201, "")
        observe_push("test.example", 0.2, 410, "")
        observe_push("test.example", 2.0, None, "timeout")
        _, after = await scrape(metrics_url)

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        responses = "clarion_push_responses_total"
        assert delta(responses, push_service="test.example", status_class="2xx") == 1
        assert delta(responses, push_service="test.example", status_class="4xx") == 1
        assert delta(responses, push_service="test.example", status_class="timeout") == 1
        # Latency is of HTTP answers: a timeout is counted, not timed.
        histogram = "clarion_push_request_duration_seconds_count"
        assert delta(histogram, push_service="test.example") == 2


class TestGauges:
    async def test_queue_and_backlog_gauges_show_what_was_read(self, metrics_url: str) -> None:
        now = datetime(2026, 1, 1, 12, tzinfo=UTC)
        set_delivery_queue(1200, now - timedelta(seconds=90), {"sending": 2, "done": 7}, now)
        set_webhook_backlog(5, (now - timedelta(seconds=30)).replace(tzinfo=None), 3, now)
        count_webhook_attempts(["delivered", "failed", "dead"])
        _, samples = await scrape(metrics_url)
        assert value(samples, "clarion_delivery_queue_depth") == 1200
        assert value(samples, "clarion_delivery_queue_oldest_due_age_seconds") == 90
        assert value(samples, "clarion_delivery_runs", state="sending") == 2
        assert value(samples, "clarion_webhook_backlog") == 5
        assert value(samples, "clarion_webhook_backlog_oldest_due_age_seconds") == 30
        assert value(samples, "clarion_webhook_dead_letters") == 3
        assert value(samples, "clarion_webhook_attempts_total", result="dead") >= 1
        set_delivery_queue(0, None, {}, now)
        _, samples = await scrape(metrics_url)
        assert value(samples, "clarion_delivery_queue_oldest_due_age_seconds") == 0

    async def test_refresher_runs_at_start_and_survives_a_failure(self) -> None:
        calls = 0

        async def refresh() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("database away")

        refresher = GaugeRefresher("test-gauges", refresh, interval=0.01)
        await refresher.start()
        for _ in range(200):
            if calls >= 3:
                break
            await asyncio.sleep(0.01)
        await refresher.stop()
        assert calls >= 3

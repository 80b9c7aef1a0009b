"""/metrics as an operator's Prometheus sees it: the embedded stack with its metrics
endpoints (delivery in a process of its own), scraped over HTTP around a real send."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clarion.embedded import EmbeddedStack
from clarion.simulator import Behaviour, PushServiceSimulator
from services.campaign.admin import create_site
from services.kit.grpcserver import client_channel
from tests.e2e.test_platform import (
    ROOT,
    _create_campaign,
    _free_port,
    _send_now,
    _settled_report,
    register_browsers,
)
from tests.kit.test_metrics import Samples, scrape, value


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def metered(settings_factory) -> AsyncIterator[EmbeddedStack]:  # type: ignore[no-untyped-def]
    settings = settings_factory(
        push_timeout_seconds=2.0, delivery_poll_seconds=0.05, metrics_refresh_seconds=0.2
    )
    running = await EmbeddedStack.start(settings, ephemeral_ports=True, metrics=True)
    yield running
    await running.stop()


async def _until(url: str, done, timeout: float = 30.0) -> Samples:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        _, samples = await scrape(url)
        if done(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.1)


class TestMetrics:
    async def test_every_service_and_the_gateway_serve_metrics(
        self, metered: EmbeddedStack
    ) -> None:
        urls = metered.metrics_urls()
        assert set(urls) == {"campaign", "segment", "reporting", "delivery", "gateway"}
        # Delivery runs in a process of its own, with an endpoint of its own.
        assert urls["delivery"] != urls["campaign"]
        for url in set(urls.values()):
            content_type, samples = await scrape(url)
            assert content_type.startswith("text/plain; version="), url
            assert any(name.startswith("clarion_") for name, _ in samples), url

    async def test_a_send_shows_in_outcomes_push_answers_rpc_latency_and_queue(
        self, metered: EmbeddedStack, simulator: PushServiceSimulator
    ) -> None:
        urls = metered.metrics_urls()
        _, delivery_before = await scrape(urls["delivery"])
        site = await create_site(metered.settings, "Metrics", "mailto:ops@example.com")
        subscriptions = [simulator.mint_subscription() for _ in range(4)]
        simulator.set_behaviour(subscriptions[0].endpoint, Behaviour(status=410))
        async with aiohttp.ClientSession() as session:
            await register_browsers(session, metered.gateway_url, site.site_id, subscriptions)
        campaign_id = await _create_campaign(metered, site.api_key)
        await _send_now(metered, site.api_key, campaign_id)
        report = await _settled_report(metered, site.api_key, campaign_id)
        assert (report.sent, report.failed) == (3, 1)

        def delta(after: Samples, name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(delivery_before, name, **labels)

        # Queue gauges are refreshed in the background: wait for the finished run.
        after = await _until(
            urls["delivery"],
            lambda s: (
                delta(s, "clarion_delivery_runs", state="done") >= 1
                and value(s, "clarion_delivery_queue_depth") == 0
            ),
        )
        outcomes = "clarion_delivery_outcomes_total"
        assert delta(after, outcomes, status="sent", reason="none") == report.sent
        assert delta(after, outcomes, status="failed", reason="push_service_410") == report.failed
        # The simulator is on loopback: its push_service label is its host.
        responses = "clarion_push_responses_total"
        assert delta(after, responses, push_service="127.0.0.1", status_class="2xx") == 3
        assert delta(after, responses, push_service="127.0.0.1", status_class="4xx") == 1
        timed = "clarion_push_request_duration_seconds_count"
        assert delta(after, timed, push_service="127.0.0.1") == 4
        rpc = "clarion_rpc_duration_seconds_count"
        started = {
            "service": "clarion.delivery.v1.DeliveryService",
            "method": "StartDeliveryRun",
            "code": "OK",
        }
        assert delta(after, rpc, **started) >= 1
        assert value(after, "clarion_delivery_queue_depth") == 0
        assert value(after, "clarion_delivery_queue_oldest_due_age_seconds") == 0

        # Campaign, segment and reporting share this process's endpoint.
        _, here = await scrape(urls["campaign"])
        sent_now = {
            "service": "clarion.campaign.v1.CampaignService",
            "method": "SendCampaignNow",
            "code": "OK",
        }
        assert value(here, rpc, **sent_now) >= 1
        assert ("clarion_webhook_backlog", frozenset()) in here


class TestServeCommand:
    def test_clarion_serve_answers_metrics_on_its_services_port(
        self, tmp_path: Path, database_url: str
    ) -> None:
        """`clarion serve segment` as deployed: /metrics on CLARION_METRICS_PORT + 1,
        showing the calls it answered."""
        base, listen = _free_port_pair(), f"127.0.0.1:{_free_port()}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CLARION_DATA_DIR": str(tmp_path),
            "CLARION_DATABASE_URL": database_url,
            "CLARION_INTERNAL_TOKEN": "metrics-serve-token",
            "CLARION_SEGMENT_LISTEN": listen,
            "CLARION_METRICS_PORT": str(base),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "clarion", "serve", "segment"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            samples = asyncio.run(_checked_then_scraped(listen, base + 1, process))
        except AssertionError as failed:
            # Still running but silent: what it logged says where it stands.
            process.send_signal(signal.SIGTERM)
            raise AssertionError(f"{failed}; its stderr: {process.communicate(timeout=30)[1]}")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        check = {"service": "grpc.health.v1.Health", "method": "Check", "code": "OK"}
        assert value(samples, "clarion_rpc_duration_seconds_count", **check) >= 1


def _free_port_pair() -> int:
    """A port free together with the next one (the segment service's metrics port is
    CLARION_METRICS_PORT + 1): both held while chosen, so neither is a client's."""
    while True:
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            base = int(first.getsockname()[1])
            try:
                second.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
            return base


async def _checked_then_scraped(
    address: str, metrics_port: int, process: subprocess.Popen[str], timeout: float = 60.0
) -> Samples:
    deadline = time.monotonic() + timeout

    def still_running(what: str) -> None:
        # A service that refused to start says why on stderr: show it, not a timeout.
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"clarion serve exited {process.returncode}: {err}")
        assert time.monotonic() < deadline, what

    async with client_channel(address) as channel:
        while True:
            try:
                await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
                break
            except grpc.aio.AioRpcError:
                still_running(f"nothing answered at {address}")
                await asyncio.sleep(0.2)
    while True:  # the endpoint starts just after the gRPC server
        try:
            return (await scrape(f"http://127.0.0.1:{metrics_port}/metrics"))[1]
        except aiohttp.ClientConnectionError:
            still_running(f"no /metrics on port {metrics_port}")
            await asyncio.sleep(0.1)

"""End to end: sites and auth, health, and a campaign delivered to the simulator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clarion.campaign.v1 import (
    campaign_service_pb2,
    campaign_service_pb2_grpc,
    site_service_pb2,
    site_service_pb2_grpc,
)
from clarion.common.v1 import common_pb2
from clarion.demo import register_browsers, run_demo
from clarion.embedded import EmbeddedStack
from clarion.reporting.v1 import reporting_service_pb2, reporting_service_pb2_grpc
from clarion.segment.v1 import (
    segment_service_pb2,
    segment_service_pb2_grpc,
    subscriber_pb2,
)
from clarion.simulator import Behaviour, PushServiceSimulator
from services.campaign.admin import create_site
from services.kit.errors import error_info
from services.kit.grpcserver import client_channel
from tests.support.services import assert_internal_only, reflected_services

ROOT = Path(__file__).resolve().parents[2]
SERVICE_FULL_NAMES = {
    "campaign": "clarion.campaign.v1.CampaignService",
    "segment": "clarion.segment.v1.SegmentService",
    "delivery": "clarion.delivery.v1.DeliveryService",
    "reporting": "clarion.reporting.v1.ReportingService",
}
# Services only Clarion's own services call (internal token; a site API key gets
# PERMISSION_DENIED), by the server that hosts them. Delivery's one service is internal.
INTERNAL_SERVICE_FULL_NAMES = {
    "campaign": ("clarion.campaign.v1.SiteInternalService",),
    "segment": ("clarion.segment.v1.SegmentInternalService",),
    "delivery": ("clarion.delivery.v1.DeliveryService",),
    "reporting": ("clarion.reporting.v1.ReportingInternalService",),
}


def hosted(name: str) -> set[str]:
    """Every Clarion service the server `name` hosts, public and internal."""
    return {SERVICE_FULL_NAMES[name], *INTERNAL_SERVICE_FULL_NAMES.get(name, ())}


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def _send_now(stack: EmbeddedStack, api_key: str, campaign_id: str) -> None:
    async with client_channel(stack.address("campaign")) as channel:
        await campaign_service_pb2_grpc.CampaignServiceStub(channel).SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign_id),
            metadata=bearer(api_key),
            timeout=30,
        )


async def _create_campaign(stack: EmbeddedStack, api_key: str, title: str = "Hi") -> str:
    async with client_channel(stack.address("campaign")) as channel:
        response = await campaign_service_pb2_grpc.CampaignServiceStub(channel).CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                notification=common_pb2.Notification(
                    title=title, body="body", target_url="https://shop.example/"
                )
            ),
            metadata=bearer(api_key),
            timeout=10,
        )
    return response.campaign.campaign_id


class TestHealth:
    async def test_every_service_answers_serving(self, stack: EmbeddedStack) -> None:
        for name in SERVICE_FULL_NAMES:
            async with client_channel(stack.address(name)) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                for service in ("", *sorted(hosted(name))):
                    response = await health.Check(
                        health_pb2.HealthCheckRequest(service=service), timeout=5
                    )
                    assert response.status == health_pb2.HealthCheckResponse.SERVING, (name, service)

    async def test_every_service_lists_itself_through_reflection(self, stack: EmbeddedStack) -> None:
        # What an integrator's `grpcurl -plaintext <address> list` shows: the public
        # service and, marked internal in its proto, the internal one.
        for name in SERVICE_FULL_NAMES:
            async with client_channel(stack.address(name)) as channel:
                listed = await reflected_services(channel)
            assert {*hosted(name), "grpc.health.v1.Health"} <= listed, (name, listed)

    async def test_gateway_answers_healthz(self, stack: EmbeddedStack) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{stack.gateway_url}/healthz") as response:
                assert response.status == 200


class TestAuth:
    async def test_wrong_or_missing_key_is_unauthenticated_on_every_service(
        self, stack: EmbeddedStack
    ) -> None:
        calls = {
            "campaign": lambda ch, md: campaign_service_pb2_grpc.CampaignServiceStub(ch).ListCampaigns(
                campaign_service_pb2.ListCampaignsRequest(), metadata=md, timeout=5
            ),
            "segment": lambda ch, md: segment_service_pb2_grpc.SegmentServiceStub(ch).ListSubscribers(
                segment_service_pb2.ListSubscribersRequest(), metadata=md, timeout=5
            ),
            "reporting": lambda ch, md: reporting_service_pb2_grpc.ReportingServiceStub(
                ch
            ).GetCampaignReport(
                reporting_service_pb2.GetCampaignReportRequest(campaign_id="cmp_x"), metadata=md, timeout=5
            ),
        }
        for name, call in calls.items():
            async with client_channel(stack.address(name)) as channel:
                for metadata in (bearer("ck_not-a-real-key"), ()):
                    with pytest.raises(grpc.aio.AioRpcError) as raised:
                        await call(channel, metadata)
                    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED, name

    async def test_a_site_api_key_is_refused_on_every_internal_method(
        self, stack: EmbeddedStack
    ) -> None:
        site = await create_site(stack.settings, "Internal", "mailto:ops@example.com")
        for name, services in INTERNAL_SERVICE_FULL_NAMES.items():
            async with client_channel(stack.address(name)) as channel:
                for service in services:
                    await assert_internal_only(channel, service, bearer(site.api_key))

    async def test_site_b_cannot_read_site_a_campaign(self, stack: EmbeddedStack) -> None:
        site_a = await create_site(stack.settings, "A", "mailto:ops@example.com")
        site_b = await create_site(stack.settings, "B", "mailto:ops@example.com")
        campaign_id = await _create_campaign(stack, site_a.api_key)
        async with client_channel(stack.address("campaign")) as channel:
            stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            own = await stub.GetCampaign(
                campaign_service_pb2.GetCampaignRequest(campaign_id=campaign_id),
                metadata=bearer(site_a.api_key),
                timeout=5,
            )
            assert own.campaign.campaign_id == campaign_id
            for call in (stub.GetCampaign, stub.SendCampaignNow):
                request_type = (
                    campaign_service_pb2.GetCampaignRequest
                    if call is stub.GetCampaign
                    else campaign_service_pb2.SendCampaignNowRequest
                )
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call(request_type(campaign_id=campaign_id), metadata=bearer(site_b.api_key), timeout=5)
                assert raised.value.code() == grpc.StatusCode.NOT_FOUND
            listed = await stub.ListCampaigns(
                campaign_service_pb2.ListCampaignsRequest(), metadata=bearer(site_b.api_key), timeout=5
            )
            assert campaign_id not in [c.campaign_id for c in listed.campaigns]

    async def test_unknown_campaign_is_not_found_with_a_reason(self, stack: EmbeddedStack) -> None:
        site = await create_site(stack.settings, "C", "mailto:ops@example.com")
        async with client_channel(stack.address("campaign")) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await campaign_service_pb2_grpc.CampaignServiceStub(channel).SendCampaignNow(
                    campaign_service_pb2.SendCampaignNowRequest(campaign_id="cmp_missing"),
                    metadata=bearer(site.api_key),
                    timeout=5,
                )
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        info = error_info(raised.value)
        assert info is not None and info.reason


class TestCampaignDelivery:
    async def test_demo_path_delivers_every_message_decryptably(
        self, settings_factory  # type: ignore[no-untyped-def]
    ) -> None:
        settings = settings_factory(push_timeout_seconds=2.0, delivery_poll_seconds=0.05)
        result = await run_demo(60, settings.data_dir, settings=settings, timeout_seconds=120)
        assert result.ok, result.as_json()
        assert result.audience == 60
        # Every browser reported its notification shown; every 10th clicked it.
        assert (result.viewed, result.clicked) == (60, 6)
        assert result.click_through_rate == pytest.approx(0.1)

    async def test_gone_subscription_fails_and_is_unsubscribed(
        self, stack: EmbeddedStack, simulator: PushServiceSimulator
    ) -> None:
        site = await create_site(stack.settings, "Pruning", "mailto:ops@example.com")
        subscriptions = [simulator.mint_subscription() for _ in range(3)]
        simulator.set_behaviour(subscriptions[0].endpoint, Behaviour(status=410))
        async with aiohttp.ClientSession() as session:
            ids = await register_browsers(session, stack.gateway_url, site.site_id, subscriptions)
        campaign_id = await _create_campaign(stack, site.api_key)
        await _send_now(stack, site.api_key, campaign_id)
        report = await _settled_report(stack, site.api_key, campaign_id)
        assert (report.audience, report.sent, report.failed) == (3, 2, 1)
        async with client_channel(stack.address("segment")) as channel:
            gone = await segment_service_pb2_grpc.SegmentServiceStub(channel).GetSubscriber(
                segment_service_pb2.GetSubscriberRequest(subscriber_id=ids[0]),
                metadata=bearer(site.api_key),
                timeout=5,
            )
        assert gone.subscriber.state == subscriber_pb2.SUBSCRIBER_STATE_UNSUBSCRIBED

    async def test_report_counts_views_and_clicks_from_the_gateway(
        self, stack: EmbeddedStack, simulator: PushServiceSimulator
    ) -> None:
        site = await create_site(stack.settings, "Engagement", "mailto:ops@example.com")
        subscriptions = [simulator.mint_subscription() for _ in range(4)]
        async with aiohttp.ClientSession() as session:
            ids = await register_browsers(session, stack.gateway_url, site.site_id, subscriptions)
            campaign_id = await _create_campaign(stack, site.api_key)
            async with client_channel(stack.address("campaign")) as channel:
                sent = await campaign_service_pb2_grpc.CampaignServiceStub(channel).SendCampaignNow(
                    campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign_id),
                    metadata=bearer(site.api_key),
                    timeout=30,
                )
            await _settled_report(stack, site.api_key, campaign_id)
            # What the service worker would do: read the pushed payload, report back with
            # the subscriber id and engagement token that payload carried.
            payloads = [
                json.loads(simulator.messages(s.endpoint)[-1].plaintext) for s in subscriptions[:2]
            ]
            assert [p["subscriber_id"] for p in payloads] == ids[:2]
            assert payloads[0]["run_id"] == sent.run.run_id and payloads[0]["title"] == "Hi"
            for payload, kind in [
                (payloads[0], "viewed"),
                (payloads[1], "viewed"),
                (payloads[0], "clicked"),
                (payloads[0], "clicked"),
            ]:
                async with session.post(
                    f"{stack.gateway_url}/v1/sites/{site.site_id}/events",
                    json={
                        "kind": kind,
                        "run_id": payload["run_id"],
                        "campaign_id": campaign_id,
                        "subscriber_id": payload["subscriber_id"],
                        "engagement_token": payload["engagement_token"],
                    },
                ) as response:
                    assert response.status == 202, await response.text()
        report = await _settled_report(stack, site.api_key, campaign_id)
        assert (report.sent, report.viewed, report.clicked) == (4, 2, 1)
        assert report.click_through_rate == pytest.approx(0.25)


async def _settled_report(stack: EmbeddedStack, api_key: str, campaign_id: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    async with client_channel(stack.address("reporting")) as channel:
        stub = reporting_service_pb2_grpc.ReportingServiceStub(channel)
        while True:
            try:
                response = await stub.GetCampaignReport(
                    reporting_service_pb2.GetCampaignReportRequest(campaign_id=campaign_id),
                    metadata=bearer(api_key),
                    timeout=5,
                )
                report = response.report
                settled = report.sent + report.failed + report.suppressed + report.expired
                # The audience arrives once delivery has resolved it; until then it is 0.
                if report.audience and settled >= report.audience:
                    return report
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            assert time.monotonic() < deadline, f"report for {campaign_id} never settled"
            await asyncio.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    """Whether something on this machine accepts connections on `port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _site_and_ports(
    tmp_path: Path,
) -> tuple[dict[str, str], dict[str, int], subprocess.CompletedProcess[str]]:
    """`clarion site create --json` in a data directory of its own; the environment for
    `clarion up` there with every service on a free port, the ports, what it printed."""
    env = {**os.environ, "CLARION_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    created = subprocess.run(
        [sys.executable, "-m", "clarion", "site", "create", "Acme", "--json", "--subject", "mailto:ops@example.com"],
        env=env, capture_output=True, text=True, check=True, cwd=ROOT,
    )
    ports = {name: _free_port() for name in (*SERVICE_FULL_NAMES, "gateway")}
    for name, port in ports.items():
        env[f"CLARION_{name.upper()}_LISTEN"] = f"127.0.0.1:{port}"
    return env, ports, created


class TestCommandLine:
    def test_site_create_then_up_serves_every_service_with_that_key(self, tmp_path: Path) -> None:
        env, ports, created = _site_and_ports(tmp_path)
        site = json.loads(created.stdout)
        assert site["api_key"] not in created.stderr
        up = subprocess.Popen(
            [sys.executable, "-m", "clarion", "up"], env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            asyncio.run(self._check_running(ports, site))
        finally:
            up.send_signal(signal.SIGTERM)
            _, err = up.communicate(timeout=30)
        assert up.returncode == 0, err
        assert site["api_key"] not in err  # secrets never reach a log

    def test_after_up_is_killed_its_other_processes_stop_too(self, tmp_path: Path) -> None:
        env, ports, created = _site_and_ports(tmp_path)
        site = json.loads(created.stdout)
        up = subprocess.Popen(
            [sys.executable, "-m", "clarion", "up"], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            asyncio.run(self._check_running(ports, site))
        finally:
            # kill -9: no SIGTERM reaches the delivery and gateway processes from it.
            up.kill()
            up.wait(timeout=30)
        # Delivery and the gateway run in processes of their own: they notice and stop,
        # freeing their ports for the stack started next.
        deadline = time.monotonic() + 30
        serving = ["delivery", "gateway"]
        while serving:
            serving = [name for name in serving if _accepts(ports[name])]
            assert time.monotonic() < deadline, f"{serving} still serving after up was killed"
            time.sleep(0.2)

    async def _check_running(self, ports: dict[str, int], site: dict[str, str]) -> None:
        deadline = time.monotonic() + 60
        for name, full_name in SERVICE_FULL_NAMES.items():
            async with client_channel(f"127.0.0.1:{ports[name]}") as channel:
                while True:
                    try:
                        response = await health_pb2_grpc.HealthStub(channel).Check(
                            health_pb2.HealthCheckRequest(service=full_name), timeout=2
                        )
                        if response.status == health_pb2.HealthCheckResponse.SERVING:
                            break
                    except grpc.aio.AioRpcError:
                        pass
                    assert time.monotonic() < deadline, f"{name} never became SERVING"
                    await asyncio.sleep(0.2)
        async with client_channel(f"127.0.0.1:{ports['campaign']}") as channel:
            got = await site_service_pb2_grpc.SiteServiceStub(channel).GetSite(
                site_service_pb2.GetSiteRequest(), metadata=bearer(site["api_key"]), timeout=5
            )
        assert got.site.site_id == site["site_id"]


class TestServicesAsSeparateProcesses:
    """The deployed shape: each service its own process, configured only by environment."""

    def test_segment_process_authenticates_through_the_campaign_process(
        self, tmp_path: Path, database_url: str
    ) -> None:
        ports = {name: _free_port() for name in ("campaign", "segment")}
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CLARION_DATA_DIR": str(tmp_path),
            "CLARION_DATABASE_URL": database_url,
            "CLARION_INTERNAL_TOKEN": "separate-processes-token",
            "CLARION_ALLOW_INSECURE_ENDPOINTS": "true",
        }
        for name, port in ports.items():
            env[f"CLARION_{name.upper()}_LISTEN"] = f"127.0.0.1:{port}"
            env[f"CLARION_{name.upper()}_ADDRESS"] = f"127.0.0.1:{port}"
        created = subprocess.run(
            [sys.executable, "-m", "clarion", "site", "create", "Separate", "--json", "--subject", "mailto:ops@example.com"],
            env=env, capture_output=True, text=True, check=True, cwd=ROOT,
        )
        site = json.loads(created.stdout)
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "clarion", "serve", name], env=env, cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            for name in ports
        ]
        try:
            asyncio.run(self._register_through_segment(ports, site))
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            logs = [process.communicate(timeout=30)[1] for process in processes]
        assert [p.returncode for p in processes] == [0, 0], logs
        assert all(site["api_key"] not in log for log in logs)

    async def _register_through_segment(self, ports: dict[str, int], site: dict[str, str]) -> None:
        simulator = PushServiceSimulator()
        await simulator.start()
        subscription = simulator.mint_subscription()
        request = segment_service_pb2.RegisterSubscriberRequest(
            push_subscription=common_pb2.PushSubscription(
                endpoint=subscription.endpoint, p256dh=subscription.p256dh, auth=subscription.auth
            ),
            browser=common_pb2.BROWSER_FIREFOX,
        )
        deadline = time.monotonic() + 60
        try:
            async with client_channel(f"127.0.0.1:{ports['segment']}") as channel:
                stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
                while True:
                    try:
                        registered = await stub.RegisterSubscriber(
                            request, metadata=bearer(site["api_key"]), timeout=5
                        )
                        break
                    except grpc.aio.AioRpcError as error:
                        # Until both processes listen: UNAVAILABLE from segment or from its call to campaign.
                        assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                        assert time.monotonic() < deadline, "the services never came up"
                        await asyncio.sleep(0.3)
                assert registered.created
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await stub.RegisterSubscriber(request, metadata=bearer("ck_wrong"), timeout=5)
                assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await simulator.stop()

    def test_simulator_process_mints_subscriptions_over_its_control_api(self) -> None:
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "clarion", "simulator", "--port", str(port)],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            minted = asyncio.run(self._mint(f"http://127.0.0.1:{port}"))
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
        assert len(minted) == 2
        assert all(m["endpoint"].startswith(f"http://127.0.0.1:{port}/push/") for m in minted)
        assert process.returncode == 0

    async def _mint(self, base: str) -> list[dict[str, object]]:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.post(f"{base}/control/subscriptions?count=2") as response:
                        assert response.status == 201
                        return list(await response.json())
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, "simulator never came up"
                    await asyncio.sleep(0.2)

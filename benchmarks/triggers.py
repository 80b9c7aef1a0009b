"""Trigger-to-push latency of a live campaign on the embedded default.

    python -m benchmarks.triggers --json                  # 500 events/s for 60 s
    python -m benchmarks.triggers --rate 200 --seconds 20 # another load, as a table
    python -m benchmarks.triggers --quick --json          # 100 events/s for 10 s: a smoke run

The embedded stack (clarion.embedded: SQLite files in a temp dir, delivery in a process
of its own) with one site of `rate x seconds` people, each a profile with one browser
whose endpoint is a path on our own nginx (the push service: it answers 201 and logs
when each request arrived, to the millisecond). One live campaign pushes on every
"Added To Cart" event.

A load generator in a process of its own (as a shop's backend is) calls segment's
TrackEvents every 20 ms with the events due by then (one per person, so each push is
the answer to exactly one event), at most 64 calls in flight, for `seconds`. How each
figure is taken:

- latency_ms p50/p95/p99/max: from the moment the TrackEvents call carrying the event
  was made to the moment nginx received that person's push.
- events_per_s: events TrackEvents accepted / the time the generator ran (the rate
  sustained; below `rate` when ingestion could not keep up).
- pushed, missing, duplicated: people whose endpoint got exactly one, no, or more than
  one push, waiting up to 60 s after the last event for the stragglers.
- runs: how many runs the campaign started (firings close together share one).
- cpu_seconds: CPU time over the load window of this process (campaign, segment,
  reporting), the delivery process, the generator and nginx; loadavg_1m before and
  after. The machine has 2 cores: 60 s of load is at most 120 CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.delivery import NginxSink, SinkUnavailable, make_audience, own_cpu_seconds

DEFAULT_RATE = 500
DEFAULT_SECONDS = 60
TICK_SECONDS = 0.02
IN_FLIGHT = 64
REGISTER_BATCH = 1000
STRAGGLER_SECONDS = 60.0
TARGET_P95_MS = 2000
EXIT_NO_SINK = 3  # nginx is missing and cannot be installed
EVENT_NAME = "Added To Cart"


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def _generate(address: str, api_key: str, rate: int, seconds: float) -> dict[str, Any]:
    """The load generator (its own process): TrackEvents at `rate` for `seconds`, one
    event per person in order; returns when each call carrying person i was made."""
    import grpc
    from google.protobuf.timestamp_pb2 import Timestamp

    from clarion.segment.v1 import profile_pb2, segment_service_pb2, segment_service_pb2_grpc

    async def run() -> dict[str, Any]:
        metadata = (("authorization", f"Bearer {api_key}"),)
        total = int(rate * seconds)
        made: list[float] = [0.0] * total
        refused: list[str] = []
        async with grpc.aio.insecure_channel(address) as channel:
            stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
            slots = asyncio.Semaphore(IN_FLIGHT)
            tasks = []

            async def send(first: int, last: int) -> None:
                async with slots:
                    now = time.time()
                    stamp = Timestamp()
                    stamp.FromNanoseconds(int(now * 1e9))
                    events = [
                        profile_pb2.Event(
                            event_id=f"cart-{i}", name=EVENT_NAME, profile_id=f"person-{i}",
                            occur_time=stamp,
                        )
                        for i in range(first, last)
                    ]  # fmt: skip
                    for i in range(first, last):
                        made[i] = now
                    try:
                        response = await stub.TrackEvents(
                            segment_service_pb2.TrackEventsRequest(events=events),
                            metadata=metadata,
                            timeout=30,
                        )
                    except grpc.aio.AioRpcError as error:
                        refused.append(f"{error.code().name}: {error.details()}")
                        return
                    refused.extend(r.reason for r in response.results if not r.ok)

            started = time.monotonic()
            sent = 0
            while sent < total:
                due = min(total, int((time.monotonic() - started) * rate) + 1)
                if due > sent:
                    tasks.append(asyncio.create_task(send(sent, due)))
                    sent = due
                await asyncio.sleep(TICK_SECONDS)
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - started
        return {"made": made, "refused": refused, "elapsed": elapsed}

    return asyncio.run(run())


async def measure(rate: int, seconds: float, workdir: Path) -> dict[str, Any]:
    from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
    from clarion.common.v1 import common_pb2
    from clarion.embedded import EmbeddedStack
    from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
    from services.campaign.admin import create_site
    from services.kit.config import Settings
    from services.kit.grpcserver import client_channel
    from services.kit.logging import configure_logging

    people = int(rate * seconds)
    sink = NginxSink.start(workdir / "nginx", access_log=True)
    settings = Settings(data_dir=workdir / "data", log_level="WARNING")
    settings.allow_insecure_endpoints = True
    configure_logging(settings.log_format, settings.log_level)
    stack = await EmbeddedStack.start(settings, ephemeral_ports=True, with_gateway=False)
    try:
        site = await create_site(settings, "Triggers benchmark", "mailto:bench@clarion.invalid")
        metadata = (("authorization", f"Bearer {site.api_key}"),)
        segment_channel = client_channel(stack.address("segment"))
        campaign_channel = client_channel(stack.address("campaign"))
        segments = segment_service_pb2_grpc.SegmentServiceStub(segment_channel)
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(campaign_channel)

        progress(f"registering {people:,} people, one browser each")
        audience = make_audience(people, sink)
        for start in range(0, people, REGISTER_BATCH):
            await segments.BatchRegisterSubscribers(
                segment_service_pb2.BatchRegisterSubscribersRequest(
                    requests=[
                        segment_service_pb2.RegisterSubscriberRequest(
                            push_subscription=common_pb2.PushSubscription(
                                endpoint=s.endpoint, p256dh=s.p256dh, auth=s.auth
                            ),
                            browser=common_pb2.BROWSER_CHROME,
                            timezone="UTC",
                            profile_id=f"person-{start + offset}",
                        )
                        for offset, s in enumerate(audience[start : start + REGISTER_BATCH])
                    ]
                ),
                metadata=metadata,
                timeout=120,
            )
        created = await campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                name="Cart",
                notification=common_pb2.Notification(
                    title="Still thinking it over?", body="Your cart is waiting",
                    target_url="https://shop.example/cart",
                ),
                trigger=campaign_pb2.Trigger(event_name=EVENT_NAME),
                ttl_seconds=3600,
            ),
            metadata=metadata,
            timeout=30,
        )  # fmt: skip
        campaign_id = created.campaign.campaign_id

        progress(f"{rate} events/s for {seconds:g} s")
        load_before = loadavg()
        cpu_before = own_cpu_seconds() + sink.cpu_seconds()
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            generated = await asyncio.get_running_loop().run_in_executor(
                pool, _generate, stack.address("segment"), site.api_key, rate, seconds
            )
        cpu = own_cpu_seconds() + sink.cpu_seconds() - cpu_before
        load_after = loadavg()

        paths = {sink.endpoint(i).removeprefix(sink.origin): i for i in range(people)}
        deadline = time.monotonic() + STRAGGLER_SECONDS
        while True:
            arrivals = sink.access_times()
            if len(arrivals) >= people or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # a late duplicate would show now
        arrivals = sink.access_times()
        first: dict[int, float] = {}
        duplicated = 0
        for arrival, path in arrivals:
            index = paths.get(path)
            if index is None:
                continue
            if index in first:
                duplicated += 1
            else:
                first[index] = arrival
        made = generated["made"]
        latencies = sorted((first[i] - made[i]) * 1000 for i in first if made[i] > 0)
        runs = await campaigns.ListRuns(
            campaign_service_pb2.ListRunsRequest(campaign_id=campaign_id, page_size=1000),
            metadata=metadata,
            timeout=30,
        )
        await segment_channel.close()
        await campaign_channel.close()
    finally:
        await stack.stop()
        sink.stop()

    def percentile(share: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(share * len(latencies)))], 1)

    accepted = people - len(generated["refused"])
    p95 = percentile(0.95)
    return {
        "benchmark": "triggers",
        "database": "sqlite",
        "rate_asked": rate,
        "seconds": seconds,
        "events": people,
        "events_refused": len(generated["refused"]),
        "refusals": generated["refused"][:5],
        "events_per_s": round(accepted / generated["elapsed"], 1),
        "latency_ms": {
            "p50": percentile(0.50),
            "p95": p95,
            "p99": percentile(0.99),
            "max": round(latencies[-1], 1) if latencies else None,
            "mean": round(statistics.fmean(latencies), 1) if latencies else None,
        },
        "pushed": len(first),
        "missing": people - len(first),
        "duplicated": duplicated,
        "runs": len(runs.runs) if not runs.next_page_token else f">{len(runs.runs)}",
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": p95 is not None and p95 < TARGET_P95_MS and len(first) == people,
        "cpu_seconds": round(cpu, 1),
        "loadavg_1m_before": load_before,
        "loadavg_1m_after": load_after,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="100 events/s for 10 s")
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE, help="events a second")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    args = parser.parse_args(argv)
    rate, seconds = (100, 10.0) if args.quick else (args.rate, args.seconds)
    with tempfile.TemporaryDirectory(prefix="clarion-triggers-") as tmp:
        try:
            result = asyncio.run(measure(rate, seconds, Path(tmp)))
        except SinkUnavailable as error:
            print(f"benchmarks.triggers: no push-service sink: {error}", file=sys.stderr)
            return EXIT_NO_SINK
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        latency = result["latency_ms"]
        print(
            f"{result['events_per_s']} events/s sustained of {rate} asked; latency p50 "
            f"{latency['p50']} ms, p95 {latency['p95']} ms, p99 {latency['p99']} ms; pushed "
            f"{result['pushed']} of {result['events']}, {result['duplicated']} duplicated; "
            f"{result['runs']} runs"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

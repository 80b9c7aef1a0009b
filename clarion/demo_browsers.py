"""`clarion demo --scenario browsers`: one campaign to every kind of browser.

Starts the embedded stack with both simulators (Web Push, and APNs for legacy Safari,
which delivery reaches through CLARION_APNS_URL and trusts through
CLARION_APNS_CA_FILE), gives a site its legacy Safari configuration (a made-up .p8 key
the APNs simulator trusts, a self-signed Website Push ID certificate, icons), registers
Chrome, Firefox and Edge browsers, Safari 16 (standard Web Push) and legacy Safari
devices (APNs device tokens), sends one campaign with an icon, an image and buttons,
and prints per browser: audience, sent (the report's), received and decrypted (Web
Push simulator) or accepted (APNs simulator), and the content rules applied: what each
browser's copy carried, what the campaign was warned about, and for legacy Safari the
APNs alert and url-args.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from clarion.campaign.v1 import (
    campaign_service_pb2,
    campaign_service_pb2_grpc,
    site_pb2,
    site_service_pb2,
    site_service_pb2_grpc,
)
from clarion.common.v1 import common_pb2
from clarion.demo import wait_for_report, wait_for_run
from clarion.embedded import EmbeddedStack
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from services.kit.config import Settings
from services.kit.grpcserver import client_channel

WEBSITE_PUSH_ID = "web.com.example.shop"
URL_FORMAT = "https://shop.example.com/%@?from=safari"
TARGET_URL = "https://shop.example.com/spring-sale?from=safari"
WEB_PUSH_BROWSERS = {
    "chrome": common_pb2.BROWSER_CHROME,
    "firefox": common_pb2.BROWSER_FIREFOX,
    "edge": common_pb2.BROWSER_EDGE,
    "safari": common_pb2.BROWSER_SAFARI,
}
_UID = x509.ObjectIdentifier("0.9.2342.19200300.100.1.1")
_ICON_SIZES = {
    "icon_16x16": 16,
    "icon_16x16_2x": 32,
    "icon_32x32": 32,
    "icon_32x32_2x": 64,
    "icon_128x128": 128,
    "icon_128x128_2x": 256,
}


def _png(size: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    row = b"\x00" + bytes((30, 90, 200)) * size
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def _pem(key: Any) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def legacy_safari_request(p8: str, key_id: str, team_id: str) -> Any:
    """A SetLegacySafariRequest with a self-signed stand-in for Apple's certificate."""
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(_UID, WEBSITE_PUSH_ID),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Website Push ID: {WEBSITE_PUSH_ID}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Clarion demo shop"),
        ]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signing_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(signing_key, hashes.SHA256())
    )
    return site_service_pb2.SetLegacySafariRequest(
        apns_private_key=p8.encode(),
        apns_key_id=key_id,
        apns_team_id=team_id,
        website_push_id=WEBSITE_PUSH_ID,
        website_name="Clarion demo shop",
        allowed_domains=["https://shop.example.com"],
        url_format_string=URL_FORMAT,
        certificate=certificate.public_bytes(serialization.Encoding.PEM),
        certificate_private_key=_pem(signing_key),
        icons=site_pb2.LegacySafariIcons(**{n: _png(s) for n, s in _ICON_SIZES.items()}),
    )


async def run_browsers_demo(
    data_dir: Path, per_browser: int, *, settings: Settings | None = None
) -> dict[str, Any]:
    """Runs the scenario; `settings`: the deployment's (tests: their database), else the
    embedded default in `data_dir`."""
    from clarion.simulator import PushServiceSimulator
    from clarion.simulator.apns import ApnsSimulator
    from services.campaign.admin import create_site
    from services.delivery.settings import DeliverySettings

    simulator = PushServiceSimulator()
    await simulator.start("127.0.0.1", 0)
    apns = ApnsSimulator()
    await apns.start()
    ca_file = data_dir / "apns-simulator-ca.pem"
    ca_file.write_text(apns.ca_pem)
    given = (
        settings.model_dump()
        if settings is not None
        else {"data_dir": data_dir, "log_level": "WARNING", "log_format": "console"}
    )
    settings = DeliverySettings(
        **{
            **given,
            # The Web Push simulator is plain http on loopback.
            "allow_insecure_endpoints": True,
            "apns_url": apns.base_url,
            "apns_ca_file": str(ca_file),
        }
    )
    stack = await EmbeddedStack.start(settings, ephemeral_ports=True)
    channels = []
    try:
        site = await create_site(settings, "Browsers demo", "mailto:demo@clarion.invalid")
        metadata = (("authorization", f"Bearer {site.api_key}"),)
        campaign_channel = client_channel(stack.address("campaign"))
        segment_channel = client_channel(stack.address("segment"))
        channels = [campaign_channel, segment_channel]
        key = apns.new_key()
        await site_service_pb2_grpc.SiteServiceStub(campaign_channel).SetLegacySafari(
            legacy_safari_request(key.p8, key.key_id, key.team_id), metadata=metadata, timeout=30
        )
        segment = segment_service_pb2_grpc.SegmentServiceStub(segment_channel)
        web: dict[str, list[Any]] = {}
        requests = []
        for name, browser in WEB_PUSH_BROWSERS.items():
            web[name] = [
                simulator.mint_subscription(application_server_key=site.vapid_public_key)
                for _ in range(per_browser)
            ]
            requests += [
                segment_service_pb2.RegisterSubscriberRequest(
                    push_subscription=common_pb2.PushSubscription(
                        endpoint=s.endpoint, p256dh=s.p256dh, auth=s.auth
                    ),
                    browser=browser,
                    timezone="UTC",
                )
                for s in web[name]
            ]
        tokens = [apns.mint_device(WEBSITE_PUSH_ID) for _ in range(per_browser)]
        requests += [
            segment_service_pb2.RegisterSubscriberRequest(
                apns_device=common_pb2.ApnsDevice(device_token=token, topic=WEBSITE_PUSH_ID),
                browser=common_pb2.BROWSER_SAFARI_LEGACY,
                timezone="UTC",
            )
            for token in tokens
        ]
        await segment.BatchRegisterSubscribers(
            segment_service_pb2.BatchRegisterSubscribersRequest(requests=requests),
            metadata=metadata,
            timeout=60,
        )

        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(campaign_channel)
        created = await campaigns.CreateCampaign(
            campaign_service_pb2.CreateCampaignRequest(
                name="Spring sale, every browser",
                notification=common_pb2.Notification(
                    title="Spring sale",
                    body="50% off everything today",
                    target_url=TARGET_URL,
                    icon_url="https://shop.example.com/icon.png",
                    image_url="https://shop.example.com/hero.png",
                    actions=[
                        common_pb2.NotificationAction(
                            title="Shop now", url="https://shop.example.com/sale"
                        )
                    ],
                ),
                ttl_seconds=3600,
                urgency=common_pb2.URGENCY_NORMAL,
            ),
            metadata=metadata,
            timeout=30,
        )
        campaign_id = created.campaign.campaign_id
        sent_run = await campaigns.SendCampaignNow(
            campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign_id),
            metadata=metadata,
            timeout=30,
        )
        await wait_for_run(campaigns, sent_run.run.run_id, metadata, lambda _: None, 120.0)
        report = await wait_for_report(stack, campaign_id, metadata, 120.0)
        by_browser = {b.browser: b for b in report.browsers}
        warnings: dict[str, list[str]] = {}
        for warning in created.warnings:
            warnings.setdefault(warning.reason, []).append(warning.field)

        browsers: dict[str, Any] = {}
        for name, browser in WEB_PUSH_BROWSERS.items():
            messages = [m for s in web[name] for m in simulator.messages(s.endpoint)]
            payloads = [m.payload() for m in messages]
            shown = sorted(set().union(*(p.keys() for p in payloads if p)) & _SHOWN_FIELDS)
            row = by_browser.get(browser)
            browsers[name] = {
                "transport": "web_push",
                "audience": row.audience if row else 0,
                "sent": row.sent if row else 0,
                "received": len(messages),
                "decrypted": sum(p is not None for p in payloads),
                "content": shown,
            }
        accepted = [n for token in tokens for n in apns.notifications(token)]
        row = by_browser.get(common_pb2.BROWSER_SAFARI_LEGACY)
        sample = accepted[0].payload if accepted else {}
        browsers["safari_legacy"] = {
            "transport": "apns",
            "audience": row.audience if row else 0,
            "sent": row.sent if row else 0,
            "accepted": len(accepted),
            "content": sample,
            "safari_problems": sum(len(n.safari_problems) for n in accepted),
        }
        return {
            "campaign_id": campaign_id,
            "browsers": browsers,
            "content_rules": {
                "warnings": warnings,
                "safari_drops": _dropped(browsers, "safari"),
                "safari_legacy": "aps.alert {title, body, action} and url-args by "
                f"{URL_FORMAT}; no icon, image or buttons",
            },
            "web_push_conformance_problems": simulator.stats.problems_total,
            "apns_duplicates": len(apns.stats.duplicates),
        }
    finally:
        for channel in channels:
            await channel.close()
        await stack.stop()
        await apns.stop()
        await simulator.stop()


_SHOWN_FIELDS = frozenset({"title", "body", "icon", "image", "url", "badge", "actions"})


def _dropped(browsers: dict[str, Any], name: str) -> list[str]:
    return sorted(set(browsers["chrome"]["content"]) - set(browsers[name]["content"]))


def ok(result: dict[str, Any]) -> bool:
    browsers = result["browsers"]
    web_ok = all(
        b["audience"] == b["sent"] == b["received"] == b["decrypted"] > 0
        for b in browsers.values()
        if b["transport"] == "web_push"
    )
    legacy = browsers["safari_legacy"]
    return (
        web_ok
        and legacy["audience"] == legacy["sent"] == legacy["accepted"] > 0
        and legacy["safari_problems"] == 0
        and result["web_push_conformance_problems"] == 0
        and result["apns_duplicates"] == 0
    )


def main(data_dir: Path | None, as_json: bool, per_browser: int = 5) -> int:
    with tempfile.TemporaryDirectory(prefix="clarion-demo-") as tmp:
        base = data_dir or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run_browsers_demo(base, per_browser))
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        for name, row in result["browsers"].items():
            counts = {k: v for k, v in row.items() if k != "content"}
            print(f"{name:>14}: {counts}")
            print(f"{'':>14}  content: {row['content']}")
        print(f"content rules: {json.dumps(result['content_rules'])}")
    if not ok(result):
        print("demo FAILED: the counts above disagree", file=sys.stderr)
        return 1
    return 0

"""Apple's web service for legacy Safari at the gateway, against real campaign and segment
servers: the push package (checked independently: unzip, SHA-512 manifest, and the
detached signature verified by OpenSSL in a subprocess), device registration with the
package's authentication token (a forged one is 401), removal, and Safari's log."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import uuid
import zipfile
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from clarion.campaign.v1 import site_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.segment.v1 import segment_pb2, segment_service_pb2, subscriber_pb2
from services.gateway.safari import MAX_LOG_LINES, logged_path
from services.kit.config import Settings
from services.kit.grpcserver import client_channel
from services.kit.tokens import safari_authentication_token
from tests.gateway.conftest import GatewaySite, Stack
from tests.gateway.test_gateway import assert_error
from tests.support import safari
from tests.support.sites import bearer

PACKAGE_FILES = {
    "website.json",
    "manifest.json",
    "signature",
    "icon.iconset/icon_16x16.png",
    "icon.iconset/icon_16x16@2x.png",
    "icon.iconset/icon_32x32.png",
    "icon.iconset/icon_32x32@2x.png",
    "icon.iconset/icon_128x128.png",
    "icon.iconset/icon_128x128@2x.png",
}
ICON_NAMES = {
    "icon_16x16": "icon_16x16.png",
    "icon_16x16_2x": "icon_16x16@2x.png",
    "icon_32x32": "icon_32x32.png",
    "icon_32x32_2x": "icon_32x32@2x.png",
    "icon_128x128": "icon_128x128.png",
    "icon_128x128_2x": "icon_128x128@2x.png",
}


async def configure(stack: Stack, site: GatewaySite, key_index: int = 0) -> safari.SafariSetup:
    """Sets the site's legacy Safari configuration through campaign's SiteService."""
    setup = safari.setup(f"web.test.shop.s{uuid.uuid4().hex[:12]}", key_index)
    async with client_channel(stack.settings.campaign_address) as channel:
        await site_service_pb2_grpc.SiteServiceStub(channel).SetLegacySafari(
            setup.request(), metadata=bearer(site.api_key)
        )
    return setup


@pytest_asyncio.fixture(loop_scope="session")
async def shop(stack: Stack, site: GatewaySite) -> safari.SafariSetup:
    return await configure(stack, site)


async def download(stack: Stack, push_id: str) -> tuple[int, bytes, dict[str, str]]:
    async with stack.http.post(
        stack.url(f"/v2/pushPackages/{push_id}"), json={"customer": "c-42"}
    ) as response:
        return response.status, await response.read(), dict(response.headers)


async def package_token(stack: Stack, push_id: str) -> str:
    status, body, _ = await download(stack, push_id)
    assert status == 200
    website = json.loads(zipfile.ZipFile(io.BytesIO(body)).read("website.json"))
    return website["authenticationToken"]


def device_token() -> str:
    return uuid.uuid4().hex.upper() + uuid.uuid4().hex.upper()


async def registration(
    stack: Stack, method: str, token: str | None, device: str, push_id: str
) -> tuple[int, dict, dict[str, str]]:
    headers = {} if token is None else {"Authorization": f"ApplePushNotifications {token}"}
    url = stack.url(f"/v1/devices/{device}/registrations/{push_id}")
    async with stack.http.request(method, url, headers=headers) as response:
        return response.status, await response.json(), dict(response.headers)


async def subscriber(
    stack: Stack, site: GatewaySite, subscriber_id: str
) -> subscriber_pb2.Subscriber:
    response = await stack.segment.GetSubscriber(
        segment_service_pb2.GetSubscriberRequest(subscriber_id=subscriber_id),
        metadata=bearer(site.api_key),
    )
    return response.subscriber


def openssl_verify(folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """OpenSSL (an implementation independent of `cryptography`'s builder) checks the
    detached signature against manifest.json as it is in the package."""
    return subprocess.run(
        [
            "openssl", "smime", "-verify", "-binary", "-inform", "DER",
            "-in", str(folder / "signature"), "-content", str(folder / "manifest.json"),
            "-out", str(folder / "verified"), *extra,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip


class TestPushPackage:
    async def test_the_package_is_complete_and_verifies_independently(
        self, stack: Stack, site: GatewaySite, shop: safari.SafariSetup, tmp_path: Path
    ) -> None:
        status, body, headers = await download(stack, shop.website_push_id)

        assert status == 200
        assert headers["Content-Type"] == "application/zip"
        assert headers["Cache-Control"] == "no-store"
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            assert set(archive.namelist()) == PACKAGE_FILES
            archive.extractall(tmp_path)
        website = json.loads((tmp_path / "website.json").read_text("utf-8"))
        assert website == {
            "websiteName": "Example Shop",
            "websitePushID": shop.website_push_id,
            "allowedDomains": ["https://shop.example.com", "https://www.example.com"],
            "urlFormatString": "https://shop.example.com/%@?from=safari",
            "authenticationToken": website["authenticationToken"],
            "webServiceURL": stack.gateway.url,
        }
        assert len(website["authenticationToken"]) >= 16
        for name, file in ICON_NAMES.items():
            assert (tmp_path / "icon.iconset" / file).read_bytes() == shop.icons[name]
        # manifest.json, version 2: every other file's SHA-512, computed here again.
        manifest = json.loads((tmp_path / "manifest.json").read_text("utf-8"))
        assert set(manifest) == PACKAGE_FILES - {"manifest.json", "signature"}
        for path, entry in manifest.items():
            assert entry == {
                "hashType": "sha512",
                "hashValue": hashlib.sha512((tmp_path / path).read_bytes()).hexdigest(),
            }
        verified = openssl_verify(tmp_path, "-noverify")
        assert verified.returncode == 0, verified.stderr
        assert "Verification successful" in verified.stderr
        assert (tmp_path / "verified").read_bytes() == (tmp_path / "manifest.json").read_bytes()
        # With the site's certificate as the trust anchor, the signer chain checks too.
        anchor = tmp_path / "anchor.pem"
        anchor.write_bytes(shop.certificate_pem)
        chained = openssl_verify(tmp_path, "-CAfile", str(anchor), "-purpose", "any")
        assert chained.returncode == 0, chained.stderr
        signature = str(tmp_path / "signature")
        signer = subprocess.run(
            ["openssl", "pkcs7", "-inform", "DER", "-in", signature, "-print_certs"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert f"UID = {shop.website_push_id}" in signer.stdout.replace("UID=", "UID = ")

    async def test_a_changed_manifest_fails_verification(
        self, stack: Stack, shop: safari.SafariSetup, tmp_path: Path
    ) -> None:
        _, body, _ = await download(stack, shop.website_push_id)
        zipfile.ZipFile(io.BytesIO(body)).extractall(tmp_path)
        manifest = tmp_path / "manifest.json"
        manifest.write_bytes(manifest.read_bytes().replace(b"sha512", b"sha256", 1))

        verified = openssl_verify(tmp_path, "-noverify")

        assert verified.returncode != 0

    async def test_an_unknown_or_malformed_push_id_is_404(self, stack: Stack) -> None:
        for push_id in ("web.com.nobody.here", "not-a-push-id", "web." + "a" * 200 + ".com"):
            async with stack.http.post(stack.url(f"/v2/pushPackages/{push_id}")) as response:
                assert_error(
                    response.status, await response.json(), 404, "WEBSITE_PUSH_ID_NOT_FOUND"
                )

    async def test_the_public_url_setting_names_the_web_service(self) -> None:
        settings = Settings(gateway_public_url="https://push.example.com/")

        assert settings.gateway_public_url == "https://push.example.com"
        with pytest.raises(ValueError, match="CLARION_GATEWAY_PUBLIC_URL"):
            Settings(gateway_public_url="https://push.example.com/safari")


class TestRegistration:
    async def test_a_device_registers_with_the_package_token_and_is_in_the_audience(
        self, stack: Stack, site: GatewaySite, shop: safari.SafariSetup
    ) -> None:
        token = await package_token(stack, shop.website_push_id)
        device = device_token()

        status, body, _ = await registration(stack, "POST", token, device, shop.website_push_id)
        again_status, again, _ = await registration(
            stack, "POST", token, device, shop.website_push_id
        )

        assert (status, body["created"]) == (200, True)
        assert (again_status, again) == (
            200,
            {"subscriber_id": body["subscriber_id"], "created": False},
        )
        stored = await subscriber(stack, site, body["subscriber_id"])
        assert stored.browser == common_pb2.BROWSER_SAFARI_LEGACY
        assert stored.apns_device == common_pb2.ApnsDevice(
            device_token=device, topic=shop.website_push_id
        )
        assert stored.state == subscriber_pb2.SUBSCRIBER_STATE_ACTIVE
        # A campaign's audience: legacy Safari counts in the reach by browser, and a
        # condition on the browser selects it.
        reach = await stack.segment.EstimateReach(
            segment_service_pb2.EstimateReachRequest(
                audience=segment_pb2.AudienceSelector(
                    definition=segment_pb2.SegmentDefinition(
                        condition=segment_pb2.Condition(
                            subscriber=segment_pb2.SubscriberCondition(
                                browsers=[common_pb2.BROWSER_SAFARI_LEGACY]
                            )
                        )
                    )
                ),
                exact=True,
            ),
            metadata=bearer(site.api_key),
        )
        assert {b.browser: b.subscribers for b in reach.browsers} == {
            common_pb2.BROWSER_SAFARI_LEGACY: 1
        }

    async def test_a_forged_missing_or_other_sites_token_is_401_and_registers_nothing(
        self, stack: Stack, site: GatewaySite, other_site: GatewaySite, shop: safari.SafariSetup
    ) -> None:
        other = await configure(stack, other_site, key_index=1)
        other_token = await package_token(stack, other.website_push_id)
        forged = safari_authentication_token(b"\x01" * 32, site.site_id, shop.website_push_id)
        device = device_token()

        answers = [
            await registration(stack, "POST", forged, device, shop.website_push_id),
            await registration(stack, "POST", other_token, device, shop.website_push_id),
            await registration(stack, "POST", None, device, shop.website_push_id),
            await registration(stack, "POST", "A" * 43, device, shop.website_push_id),
        ]

        for status, body, headers in answers:
            assert_error(status, body, 401)
            assert headers["WWW-Authenticate"] == "ApplePushNotifications"
        assert [body["error"]["code"] for _, body, _ in answers] == [
            "INVALID_AUTHENTICATION_TOKEN",
            "INVALID_AUTHENTICATION_TOKEN",
            "AUTHENTICATION_TOKEN_REQUIRED",
            "INVALID_AUTHENTICATION_TOKEN",
        ]
        listed = await stack.segment.ListSubscribers(
            segment_service_pb2.ListSubscribersRequest(), metadata=bearer(site.api_key)
        )
        assert not listed.subscribers

    async def test_a_bad_device_token_is_400_and_an_unknown_push_id_404(
        self, stack: Stack, shop: safari.SafariSetup
    ) -> None:
        token = await package_token(stack, shop.website_push_id)

        for device in ("ABC", "G" * 64, "A" * 65):
            status, body, _ = await registration(stack, "POST", token, device, shop.website_push_id)
            assert_error(status, body, 400, "INVALID_DEVICE_TOKEN")
        status, body, _ = await registration(
            stack, "POST", token, device_token(), "web.com.nobody.x"
        )
        assert_error(status, body, 404, "WEBSITE_PUSH_ID_NOT_FOUND")

    async def test_delete_unsubscribes_and_again_is_200(
        self, stack: Stack, site: GatewaySite, shop: safari.SafariSetup
    ) -> None:
        token = await package_token(stack, shop.website_push_id)
        device = device_token()
        _, registered, _ = await registration(stack, "POST", token, device, shop.website_push_id)

        status, body, _ = await registration(stack, "DELETE", token, device, shop.website_push_id)
        again, _, _ = await registration(stack, "DELETE", token, device, shop.website_push_id)
        never, _, _ = await registration(
            stack, "DELETE", token, device_token(), shop.website_push_id
        )
        forged, _, _ = await registration(stack, "DELETE", "B" * 43, device, shop.website_push_id)

        assert (status, body["state"]) == (200, "unsubscribed")
        assert (again, never, forged) == (200, 200, 401)
        stored = await subscriber(stack, site, registered["subscriber_id"])
        assert stored.state == subscriber_pb2.SUBSCRIBER_STATE_UNSUBSCRIBED
        assert stored.unsubscribe_reason == "user_unsubscribed"


def counted(kind: str) -> float:
    return REGISTRY.get_sample_value("clarion_gateway_safari_logs_total", {"kind": kind}) or 0.0


def dropped() -> float:
    return REGISTRY.get_sample_value("clarion_gateway_safari_logs_dropped_total") or 0.0


class TestLog:
    async def test_lines_are_logged_bounded_and_counted_by_kind(self, stack: Stack) -> None:
        before_signature, before_other, before_dropped = (
            counted("signature"),
            counted("other"),
            dropped(),
        )
        lines = [
            "Signature verification of push package failed",
            "line\nwith\x00controls " + "x" * 900,
        ]
        lines += [f"Something else {n}" for n in range(MAX_LOG_LINES)]

        with capture_logs() as logs:
            async with stack.http.post(stack.url("/v1/log"), json={"logs": lines}) as response:
                status, body = response.status, await response.json()

        assert (status, body) == (200, {"recorded": MAX_LOG_LINES})
        safari_lines = [entry for entry in logs if entry["event"] == "safari log"]
        assert len(safari_lines) == MAX_LOG_LINES
        assert safari_lines[0]["kind"] == "signature"
        second = safari_lines[1]["safari_message"]
        assert "\n" not in second and "\x00" not in second and len(second) <= 501
        assert counted("signature") == before_signature + 1
        assert counted("other") == before_other + len(lines) - 1
        assert dropped() == before_dropped + len(lines) - MAX_LOG_LINES

    async def test_a_body_that_is_not_a_list_of_lines_is_400(self, stack: Stack) -> None:
        for sent in ({"logs": "one"}, {"logs": [1, 2]}, {"other": []}, ["x"]):
            async with stack.http.post(stack.url("/v1/log"), json=sent) as response:
                assert_error(response.status, await response.json(), 400)


class TestNothingSecretIsLogged:
    async def test_keys_tokens_and_device_tokens_stay_out_of_the_logs(
        self, stack: Stack, site: GatewaySite, shop: safari.SafariSetup,
        capfd: pytest.CaptureFixture[str],
    ) -> None:  # fmt: skip
        device = device_token()
        capfd.readouterr()

        with capture_logs() as logs:
            token = await package_token(stack, shop.website_push_id)
            await registration(stack, "POST", token, device, shop.website_push_id)
            await registration(stack, "DELETE", token, device, shop.website_push_id)
            await registration(stack, "POST", "C" * 43, device, shop.website_push_id)

        captured = capfd.readouterr()
        output = captured.out + captured.err + repr(logs)
        der = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8
        none = serialization.NoEncryption()
        for secret in (
            shop.signing_key.private_bytes(*der, none),
            shop.apns_key.private_bytes(*der, none),
        ):
            assert secret.hex()[:64] not in output
        assert safari.pem_private(shop.signing_key).decode()[40:120] not in output
        assert token not in output
        assert device not in output and device.lower() not in output
        paths = [entry["path"] for entry in logs if entry["event"] == "http request"]
        assert f"/v1/devices/…/registrations/{shop.website_push_id}" in paths

    def test_the_access_log_path_drops_the_device_token(self) -> None:
        assert logged_path("/v1/devices/ABCD/registrations/web.com.x.y") == (
            "/v1/devices/…/registrations/web.com.x.y"
        )
        assert logged_path("/v2/devices/ABCD") == "/v2/devices/…"
        assert logged_path("/v1/sites/site_1/config") == "/v1/sites/site_1/config"

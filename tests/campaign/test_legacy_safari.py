"""A site's legacy Safari configuration: SetLegacySafari's checks (each refusal names
its field and stores nothing), GetSite showing only the public parts, the internal
lookups by Website Push ID and for credentials, and no secret in any log line."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from structlog.testing import capture_logs

from clarion.campaign.v1 import (
    site_internal_service_pb2,
    site_internal_service_pb2_grpc,
    site_pb2,
    site_service_pb2,
    site_service_pb2_grpc,
)
from services.campaign.admin import CreatedSite
from services.kit.config import Settings
from tests.campaign.helpers import field, internal, reason
from tests.support import safari
from tests.support.sites import bearer

NewSite = Callable[..., Awaitable[CreatedSite]]
SiteStub = site_service_pb2_grpc.SiteServiceStub
InternalStub = site_internal_service_pb2_grpc.SiteInternalServiceStub


def push_id() -> str:
    return f"web.com.example.shop{uuid.uuid4().hex[:12]}"


async def set_safari(
    stub: SiteStub, site: CreatedSite, request: site_service_pb2.SetLegacySafariRequest
) -> site_service_pb2.SetLegacySafariResponse:
    return await stub.SetLegacySafari(request, metadata=bearer(site.api_key))


async def get_site(stub: SiteStub, site: CreatedSite) -> site_pb2.Site:
    return (
        await stub.GetSite(site_service_pb2.GetSiteRequest(), metadata=bearer(site.api_key))
    ).site


def secrets_of(setup: safari.SafariSetup) -> list[bytes]:
    der = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    return [
        safari.pem_private(setup.apns_key),
        setup.apns_key.private_bytes(*der, none),
        safari.pem_private(setup.signing_key),
        setup.signing_key.private_bytes(*der, none),
    ]


def shown_forms(secret: bytes) -> list[str]:
    """How a secret would look if a log line carried it."""
    return [
        secret.hex(),
        base64.b64encode(secret).decode()[:40],
        base64.urlsafe_b64encode(secret).decode()[:40],
        repr(secret)[:40],
    ]


class TestSetLegacySafari:
    async def test_a_valid_configuration_is_stored_and_get_site_shows_its_public_parts(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        setup = safari.setup(push_id())

        response = await set_safari(sites_stub, site, setup.request())

        shown = response.site.legacy_safari
        assert shown.configured
        assert shown.website_push_id == setup.website_push_id
        assert shown.website_name == "Example Shop"
        assert list(shown.allowed_domains) == [
            "https://shop.example.com",
            "https://www.example.com",
        ]
        assert shown.url_format_string == "https://shop.example.com/%@?from=safari"
        assert (shown.apns_key_id, shown.apns_team_id) == ("KEY1234567", "TEAM123456")
        assert shown.certificate_expire_time.ToDatetime(UTC) == (
            setup.certificate.not_valid_after_utc
        )
        assert "Website Push ID: " + setup.website_push_id in shown.certificate_subject
        got = await get_site(sites_stub, site)
        assert got.legacy_safari == shown
        # Nothing secret (nor the icons) in what the site's owner sees.
        wire = got.SerializeToString()
        for secret in [*secrets_of(setup), *setup.icons.values()]:
            assert secret not in wire

    async def test_a_site_without_it_shows_not_configured(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        got = await get_site(sites_stub, site)

        assert got.HasField("legacy_safari")
        assert got.legacy_safari == site_pb2.LegacySafari(configured=False)

    async def test_setting_again_replaces_the_whole_configuration(
        self, site: CreatedSite, sites_stub: SiteStub, site_internal_stub: InternalStub,
        campaign_settings: Settings,
    ) -> None:  # fmt: skip
        first = safari.setup(push_id())
        await set_safari(sites_stub, site, first.request())
        second = safari.setup(push_id(), key_index=1)

        response = await set_safari(
            sites_stub,
            site,
            second.request(website_name="Shop 2", allowed_domains=["https://b.example"]),
        )

        shown = response.site.legacy_safari
        assert (shown.website_push_id, shown.website_name) == (second.website_push_id, "Shop 2")
        assert list(shown.allowed_domains) == ["https://b.example"]
        credentials = await site_internal_stub.GetLegacySafariCredentials(
            site_internal_service_pb2.GetLegacySafariCredentialsRequest(include_push_package=True),
            metadata=internal(campaign_settings, site.site_id),
        )
        assert credentials.certificate == second.certificate.public_bytes(
            serialization.Encoding.DER
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await site_internal_stub.ResolveWebsitePushId(
                site_internal_service_pb2.ResolveWebsitePushIdRequest(
                    website_push_id=first.website_push_id
                ),
                metadata=internal(campaign_settings),
            )
        assert reason(refused.value) == "WEBSITE_PUSH_ID_NOT_FOUND"

    async def test_origins_are_normalized_and_kept_once(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        setup = safari.setup(push_id())

        response = await set_safari(
            sites_stub,
            site,
            setup.request(
                allowed_domains=[
                    "HTTPS://Shop.Example.com/",
                    "https://shop.example.com:443",
                    "https://x.example:8443",
                ]
            ),
        )

        assert list(response.site.legacy_safari.allowed_domains) == [
            "https://shop.example.com",
            "https://x.example:8443",
        ]


def _expired(setup: safari.SafariSetup) -> dict[str, object]:
    now = datetime.now(UTC)
    old = safari.certificate(
        setup.signing_key,
        setup.website_push_id,
        not_before=now - timedelta(days=400),
        not_after=now - timedelta(days=1),
    )
    return {"certificate": old.public_bytes(serialization.Encoding.PEM)}


def _other_key(setup: safari.SafariSetup) -> dict[str, object]:
    return {"certificate_private_key": safari.pem_private(rsa.generate_private_key(65537, 2048))}


def _other_push_id_certificate(setup: safari.SafariSetup) -> dict[str, object]:
    cert = safari.certificate(setup.signing_key, "web.com.someone.else")
    return {"certificate": cert.public_bytes(serialization.Encoding.PEM)}


BAD: dict[str, tuple[Callable[[safari.SafariSetup], dict[str, object]], str, str]] = {
    "wrong png size": (
        lambda s: {"icons": {"icon_32x32_2x": safari.png(32)}},
        "INVALID_ICON",
        "icons.icon_32x32_2x",
    ),
    "not square": (
        lambda s: {"icons": {"icon_128x128": safari.png(128, 127)}},
        "INVALID_ICON",
        "icons.icon_128x128",
    ),
    "not a png": (
        lambda s: {"icons": {"icon_16x16": b"GIF89a" + bytes(40)}},
        "INVALID_ICON",
        "icons.icon_16x16",
    ),
    "missing icon": (
        lambda s: {"icons": {"icon_16x16_2x": b""}},
        "INVALID_ICON",
        "icons.icon_16x16_2x",
    ),
    "mismatched certificate key": (
        _other_key,
        "CERTIFICATE_KEY_MISMATCH",
        "certificate_private_key",
    ),
    "expired certificate": (_expired, "CERTIFICATE_EXPIRED", "certificate"),
    "certificate of another push id": (
        _other_push_id_certificate,
        "CERTIFICATE_PUSH_ID_MISMATCH",
        "certificate",
    ),
    "certificate junk": (
        lambda s: {"certificate": b"not a certificate"},
        "INVALID_CERTIFICATE",
        "certificate",
    ),
    "push id without web.": (
        lambda s: {"website_push_id": "com.example.shop"},
        "INVALID_WEBSITE_PUSH_ID",
        "website_push_id",
    ),
    "push id with one label": (
        lambda s: {"website_push_id": "web.example"},
        "INVALID_WEBSITE_PUSH_ID",
        "website_push_id",
    ),
    "push id with a space": (
        lambda s: {"website_push_id": "web.com.example shop"},
        "INVALID_WEBSITE_PUSH_ID",
        "website_push_id",
    ),
    "apns key of another curve": (
        lambda s: {"apns_private_key": safari.pem_private(ec.generate_private_key(ec.SECP384R1()))},
        "INVALID_APNS_KEY",
        "apns_private_key",
    ),
    "apns key junk": (
        lambda s: {"apns_private_key": b"-----BEGIN PRIVATE KEY-----\nxx"},
        "INVALID_APNS_KEY",
        "apns_private_key",
    ),
    "key id lower case": (
        lambda s: {"apns_key_id": "key1234567"},
        "INVALID_APNS_KEY_ID",
        "apns_key_id",
    ),
    "team id short": (lambda s: {"apns_team_id": "TEAM1"}, "INVALID_APNS_TEAM_ID", "apns_team_id"),
    "no website name": (lambda s: {"website_name": " "}, "INVALID_WEBSITE_NAME", "website_name"),
    "http origin": (
        lambda s: {"allowed_domains": ["http://shop.example.com"]},
        "INVALID_ALLOWED_DOMAIN",
        "allowed_domains[0]",
    ),
    "origin with a path": (
        lambda s: {"allowed_domains": ["https://shop.example.com", "https://shop.example.com/x"]},
        "INVALID_ALLOWED_DOMAIN",
        "allowed_domains[1]",
    ),
    "no origin": (lambda s: {"allowed_domains": []}, "INVALID_ALLOWED_DOMAIN", "allowed_domains"),
    "url format of another scheme": (
        lambda s: {"url_format_string": "ftp://shop.example.com/%@"},
        "INVALID_URL_FORMAT_STRING",
        "url_format_string",
    ),
    "url format with another %": (
        lambda s: {"url_format_string": "https://shop.example.com/a%20b/%@"},
        "INVALID_URL_FORMAT_STRING",
        "url_format_string",
    ),
    "url format without a host": (
        lambda s: {"url_format_string": "https:///%@"},
        "INVALID_URL_FORMAT_STRING",
        "url_format_string",
    ),
}


class TestRefusals:
    @pytest.mark.parametrize("case", sorted(BAD))
    async def test_bad_input_is_invalid_argument_naming_the_field_and_stores_nothing(
        self, case: str, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        stored = safari.setup(push_id())
        await set_safari(sites_stub, site, stored.request())
        before = await get_site(sites_stub, site)
        change, expected_reason, expected_field = BAD[case]
        attempt = safari.setup(push_id())

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await set_safari(sites_stub, site, attempt.request(**change(attempt)))

        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (reason(refused.value), field(refused.value)) == (expected_reason, expected_field)
        # Whole or nothing: what was stored before is what is stored now.
        assert (await get_site(sites_stub, site)).legacy_safari == before.legacy_safari

    async def test_the_expiry_is_named_when_the_certificate_expired(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        setup = safari.setup(push_id())

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await set_safari(sites_stub, site, setup.request(**_expired(setup)))

        expired_at = x509.load_pem_x509_certificate(
            _expired(setup)["certificate"]
        ).not_valid_after_utc  # type: ignore[arg-type]
        assert expired_at.strftime("%Y-%m-%d") in (refused.value.details() or "")

    async def test_a_push_id_another_site_has_is_refused(
        self, new_site: NewSite, sites_stub: SiteStub
    ) -> None:
        first, second = await new_site("First"), await new_site("Second")
        setup = safari.setup(push_id())
        await set_safari(sites_stub, first, setup.request())

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await set_safari(sites_stub, second, setup.request())

        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (reason(refused.value), field(refused.value)) == (
            "WEBSITE_PUSH_ID_TAKEN",
            "website_push_id",
        )
        assert not (await get_site(sites_stub, second)).legacy_safari.configured


class TestInternalLookups:
    async def test_the_push_id_resolves_to_its_site_and_credentials_carry_the_secrets(
        self, site: CreatedSite, sites_stub: SiteStub, site_internal_stub: InternalStub,
        campaign_settings: Settings,
    ) -> None:  # fmt: skip
        setup = safari.setup(push_id())
        await set_safari(sites_stub, site, setup.request())

        resolved = await site_internal_stub.ResolveWebsitePushId(
            site_internal_service_pb2.ResolveWebsitePushIdRequest(
                website_push_id=setup.website_push_id
            ),
            metadata=internal(campaign_settings),
        )
        for_delivery = await site_internal_stub.GetLegacySafariCredentials(
            site_internal_service_pb2.GetLegacySafariCredentialsRequest(),
            metadata=internal(campaign_settings, site.site_id),
        )
        for_gateway = await site_internal_stub.GetLegacySafariCredentials(
            site_internal_service_pb2.GetLegacySafariCredentialsRequest(include_push_package=True),
            metadata=internal(campaign_settings, site.site_id),
        )

        assert resolved.site_id == site.site_id
        der = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8
        apns_der = setup.apns_key.private_bytes(*der, serialization.NoEncryption())
        assert for_delivery.apns_private_key == apns_der
        assert (for_delivery.apns_key_id, for_delivery.apns_team_id) == ("KEY1234567", "TEAM123456")
        assert for_delivery.apns_topic == setup.website_push_id
        assert for_delivery.url_format_string == "https://shop.example.com/%@?from=safari"
        assert not for_delivery.certificate and not for_delivery.HasField("icons")
        assert for_gateway.certificate_private_key == setup.signing_key.private_bytes(
            *der, serialization.NoEncryption()
        )
        assert for_gateway.icons.icon_128x128_2x == setup.icons["icon_128x128_2x"]
        assert for_gateway.website_name == "Example Shop"

    async def test_issuers_given_after_the_certificate_are_kept_for_the_signature(
        self, site: CreatedSite, sites_stub: SiteStub, site_internal_stub: InternalStub,
        campaign_settings: Settings,
    ) -> None:  # fmt: skip
        setup = safari.setup(push_id())
        issuer = safari.certificate(ec.generate_private_key(ec.SECP256R1()), "web.com.issuer.ca")
        bundle = setup.certificate_pem + issuer.public_bytes(serialization.Encoding.PEM)

        await set_safari(sites_stub, site, setup.request(certificate=bundle))
        credentials = await site_internal_stub.GetLegacySafariCredentials(
            site_internal_service_pb2.GetLegacySafariCredentialsRequest(include_push_package=True),
            metadata=internal(campaign_settings, site.site_id),
        )

        der = serialization.Encoding.DER
        assert credentials.certificate == setup.certificate.public_bytes(der)
        assert list(credentials.certificate_chain) == [issuer.public_bytes(der)]

    async def test_a_site_without_it_is_not_found_and_a_site_key_is_refused(
        self, site: CreatedSite, site_internal_stub: InternalStub, campaign_settings: Settings
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await site_internal_stub.GetLegacySafariCredentials(
                site_internal_service_pb2.GetLegacySafariCredentialsRequest(),
                metadata=internal(campaign_settings, site.site_id),
            )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await site_internal_stub.GetLegacySafariCredentials(
                site_internal_service_pb2.GetLegacySafariCredentialsRequest(),
                metadata=bearer(site.api_key),
            )

        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(missing.value) == "LEGACY_SAFARI_NOT_CONFIGURED"
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


class TestSecretsStayOutOfLogs:
    async def test_setting_and_reading_logs_no_key(
        self, site: CreatedSite, sites_stub: SiteStub, site_internal_stub: InternalStub,
        campaign_settings: Settings, capfd: pytest.CaptureFixture[str],
    ) -> None:  # fmt: skip
        setup = safari.setup(push_id())
        mismatched = safari.setup(push_id())

        with capture_logs() as logs:
            await set_safari(sites_stub, site, setup.request())
            with pytest.raises(grpc.aio.AioRpcError):
                await set_safari(sites_stub, site, mismatched.request(**_other_key(mismatched)))
            await site_internal_stub.GetLegacySafariCredentials(
                site_internal_service_pb2.GetLegacySafariCredentialsRequest(
                    include_push_package=True
                ),
                metadata=internal(campaign_settings, site.site_id),
            )

        logged = repr(logs)
        captured = capfd.readouterr()
        output = captured.out + captured.err
        assert setup.website_push_id in logged  # the lines are there, without secrets
        for secret in [*secrets_of(setup), *secrets_of(mismatched)]:
            for shown in shown_forms(secret):
                assert shown not in logged
                assert shown not in output

"""Sites through the real server: API keys authenticate, internal-only RPCs, credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine, text

from clarion.campaign.v1 import site_service_pb2, site_service_pb2_grpc
from services.campaign.admin import CreatedSite, create_site
from services.kit.config import Settings
from services.kit.db import sync_url
from services.kit.errors import InvalidArgument
from tests.campaign.helpers import internal, reason
from tests.support.sites import bearer

NewSite = Callable[..., Awaitable[CreatedSite]]


class TestCreateSite:
    async def test_the_returned_key_authenticates_as_the_new_site(
        self, new_site: NewSite, sites_stub: site_service_pb2_grpc.SiteServiceStub
    ) -> None:
        created = await new_site("Shop")

        response = await sites_stub.GetSite(
            site_service_pb2.GetSiteRequest(), metadata=bearer(created.api_key)
        )

        assert response.site.site_id == created.site_id
        assert response.site.name == "Shop"
        assert response.site.vapid_public_key == created.vapid_public_key
        assert response.site.vapid_subject == "mailto:admin@localhost"
        assert response.site.create_time.seconds > 0

    async def test_keys_and_vapid_pairs_are_fresh_per_site(self, new_site: NewSite) -> None:
        first, second = await new_site(), await new_site()

        assert first.api_key.startswith("ck_") and second.api_key.startswith("ck_")
        assert first.api_key != second.api_key
        assert first.vapid_public_key != second.vapid_public_key
        assert len(first.vapid_public_key) == 65 and first.vapid_public_key[0] == 0x04

    async def test_the_key_is_redacted_from_the_repr(self, site: CreatedSite) -> None:
        assert site.api_key not in repr(site)

    async def test_the_api_key_plaintext_is_not_stored(
        self, site: CreatedSite, campaign_settings: Settings
    ) -> None:
        engine = create_engine(sync_url(campaign_settings.database_url_for("campaign")))
        try:
            with engine.connect() as connection:
                rows = [
                    *connection.execute(text("SELECT * FROM sites")),
                    *connection.execute(text("SELECT * FROM site_api_keys")),
                ]
        finally:
            engine.dispose()

        stored = [
            bytes(value) if isinstance(value, memoryview) else value
            for row in rows
            for value in row
        ]
        assert any(value == site.site_id for value in stored)
        secret = site.api_key.encode()
        assert not any(
            secret in (value if isinstance(value, bytes) else str(value).encode())
            for value in stored
        )

    @pytest.mark.parametrize(
        ("name", "subject", "expected_reason"),
        [
            ("", "mailto:ops@example.com", "INVALID_SITE_NAME"),
            ("   ", "mailto:ops@example.com", "INVALID_SITE_NAME"),
            ("x" * 201, "mailto:ops@example.com", "INVALID_SITE_NAME"),
            ("Shop", "ops@example.com", "INVALID_VAPID_SUBJECT"),
            ("Shop", "mailto:", "INVALID_VAPID_SUBJECT"),
            ("Shop", "http://example.com", "INVALID_VAPID_SUBJECT"),
            ("Shop", "https://", "INVALID_VAPID_SUBJECT"),
        ],
    )
    async def test_bad_name_or_subject_is_refused(
        self, campaign_settings: Settings, name: str, subject: str, expected_reason: str
    ) -> None:
        with pytest.raises(InvalidArgument) as raised:
            await create_site(campaign_settings, name, subject)

        assert raised.value.reason == expected_reason

    async def test_an_https_subject_is_accepted(
        self, campaign_settings: Settings, sites_stub: site_service_pb2_grpc.SiteServiceStub
    ) -> None:
        created = await create_site(campaign_settings, "Blog", "https://blog.example.com/contact")

        response = await sites_stub.GetSite(
            site_service_pb2.GetSiteRequest(), metadata=bearer(created.api_key)
        )
        assert response.site.vapid_subject == "https://blog.example.com/contact"


class TestAuthentication:
    async def test_a_wrong_key_is_unauthenticated(
        self, site: CreatedSite, sites_stub: site_service_pb2_grpc.SiteServiceStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sites_stub.GetSite(
                site_service_pb2.GetSiteRequest(), metadata=bearer(site.api_key + "x")
            )

        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert reason(raised.value) == "INVALID_API_KEY"

    async def test_a_missing_key_is_unauthenticated(
        self, sites_stub: site_service_pb2_grpc.SiteServiceStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sites_stub.GetSite(site_service_pb2.GetSiteRequest())

        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert reason(raised.value) == "MISSING_API_KEY"


class TestGetSite:
    async def test_an_internal_caller_names_the_site(
        self,
        site: CreatedSite,
        campaign_settings: Settings,
        sites_stub: site_service_pb2_grpc.SiteServiceStub,
    ) -> None:
        response = await sites_stub.GetSite(
            site_service_pb2.GetSiteRequest(), metadata=internal(campaign_settings, site.site_id)
        )

        assert response.site.site_id == site.site_id

    async def test_an_unknown_site_is_not_found(
        self, campaign_settings: Settings, sites_stub: site_service_pb2_grpc.SiteServiceStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sites_stub.GetSite(
                site_service_pb2.GetSiteRequest(),
                metadata=internal(campaign_settings, "site_does_not_exist"),
            )

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(raised.value) == "SITE_NOT_FOUND"


class TestResolveApiKey:
    async def test_the_internal_token_resolves_a_key_to_its_site(
        self,
        site: CreatedSite,
        campaign_settings: Settings,
        sites_stub: site_service_pb2_grpc.SiteServiceStub,
    ) -> None:
        response = await sites_stub.ResolveApiKey(
            site_service_pb2.ResolveApiKeyRequest(api_key=site.api_key),
            metadata=internal(campaign_settings),
        )

        assert response.site_id == site.site_id

    async def test_an_unknown_key_is_not_found(
        self, campaign_settings: Settings, sites_stub: site_service_pb2_grpc.SiteServiceStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sites_stub.ResolveApiKey(
                site_service_pb2.ResolveApiKeyRequest(api_key="ck_not-a-key"),
                metadata=internal(campaign_settings),
            )

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    async def test_a_site_api_key_may_not_call_it(
        self, site: CreatedSite, sites_stub: site_service_pb2_grpc.SiteServiceStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sites_stub.ResolveApiKey(
                site_service_pb2.ResolveApiKeyRequest(api_key=site.api_key),
                metadata=bearer(site.api_key),
            )

        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason(raised.value) == "INTERNAL_ONLY"


class TestGetSiteCredentials:
    async def test_the_private_key_matches_the_public_key(
        self,
        site: CreatedSite,
        campaign_settings: Settings,
        sites_stub: site_service_pb2_grpc.SiteServiceStub,
    ) -> None:
        response = await sites_stub.GetSiteCredentials(
            site_service_pb2.GetSiteCredentialsRequest(),
            metadata=internal(campaign_settings, site.site_id),
        )

        private_key = serialization.load_der_private_key(response.vapid_private_key, None)
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)
        assert isinstance(private_key.curve, ec.SECP256R1)
        derived = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        assert derived == response.vapid_public_key == site.vapid_public_key
        assert response.site_id == site.site_id
        assert response.vapid_subject == "mailto:admin@localhost"
        # And it signs what the public key verifies (what a push service checks).
        signature = private_key.sign(b"claims", ec.ECDSA(hashes.SHA256()))
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), site.vapid_public_key).verify(
            signature, b"claims", ec.ECDSA(hashes.SHA256())
        )

    async def test_a_site_api_key_may_not_read_credentials(
        self, site: CreatedSite, sites_stub: site_service_pb2_grpc.SiteServiceStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sites_stub.GetSiteCredentials(
                site_service_pb2.GetSiteCredentialsRequest(), metadata=bearer(site.api_key)
            )

        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED

    async def test_an_unknown_site_is_not_found(
        self, campaign_settings: Settings, sites_stub: site_service_pb2_grpc.SiteServiceStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sites_stub.GetSiteCredentials(
                site_service_pb2.GetSiteCredentialsRequest(),
                metadata=internal(campaign_settings, "site_does_not_exist"),
            )

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(raised.value) == "SITE_NOT_FOUND"

    async def test_the_site_must_be_named(
        self, campaign_settings: Settings, sites_stub: site_service_pb2_grpc.SiteServiceStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sites_stub.GetSiteCredentials(
                site_service_pb2.GetSiteCredentialsRequest(),
                metadata=internal(campaign_settings),
            )

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

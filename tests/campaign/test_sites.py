"""Sites through the real server: API keys authenticate and rotate, a site changes its name
and VAPID subject, internal-only RPCs (SiteInternalService), credentials, listing sites."""

from __future__ import annotations

import hashlib
import inspect
import uuid
from collections.abc import Awaitable, Callable

import grpc
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import field_mask_pb2, message_factory
from sqlalchemy import create_engine, text
from structlog.testing import capture_logs

from clarion.campaign.v1 import (
    site_internal_service_pb2,
    site_internal_service_pb2_grpc,
    site_pb2,
    site_service_pb2,
    site_service_pb2_grpc,
)
from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from services.campaign.admin import CreatedSite, create_site
from services.kit.config import Settings
from services.kit.db import sync_url
from services.kit.errors import InvalidArgument
from services.kit.grpcserver import ManagedServer
from services.kit.peers import Peers
from services.segment.server import create_server as create_segment_server
from services.siteclient import remote_site_resolver
from tests.campaign.helpers import field, internal, reason
from tests.support.sites import bearer

NewSite = Callable[..., Awaitable[CreatedSite]]
# Subjects Apple's push service answers 403 BadJwtToken to: at localhost, *.localhost,
# *.local, or an IP address in any spelling.
APPLE_REFUSES = [
    "mailto:admin@localhost",
    "mailto:ops@shop.localhost",
    "https://localhost/contact",
    "https://LOCALHOST:8443/",
    "https://shop.localhost/",
    "mailto:ops@printer.local",
    "https://nas.local/",
    "https://nas.local./",
    "https://127.0.0.1/",
    "https://203.0.113.7/contact",
    "https://[::1]/",
    "https://[2001:db8::1]/",
    "mailto:ops@[10.0.0.1]",
    "mailto:ops@192.168.1.2",
    "https://0x7f000001/",
    "https://2130706433/",
]
SiteStub = site_service_pb2_grpc.SiteServiceStub
InternalStub = site_internal_service_pb2_grpc.SiteInternalServiceStub


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
        assert response.site.vapid_subject == "mailto:ops@example.com"
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
            ("Shop", "", "INVALID_VAPID_SUBJECT"),
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

    @pytest.mark.parametrize("subject", APPLE_REFUSES)
    async def test_a_subject_apple_refuses_is_refused_and_nothing_is_stored(
        self, campaign_settings: Settings, site_internal_stub: InternalStub, subject: str
    ) -> None:
        name = f"Refused {uuid.uuid4().hex}"

        with pytest.raises(InvalidArgument) as raised:
            await create_site(campaign_settings, name, subject)

        assert raised.value.reason == "INVALID_VAPID_SUBJECT"
        assert "Apple" in raised.value.message and "mailto:" in raised.value.message
        assert name not in [s.name for s in await all_sites(site_internal_stub, campaign_settings)]

    def test_the_subject_is_a_required_choice(self) -> None:
        parameter = inspect.signature(create_site).parameters["vapid_subject"]
        assert parameter.default is inspect.Parameter.empty


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
        site_internal_stub: InternalStub,
    ) -> None:
        response = await site_internal_stub.ResolveApiKey(
            site_internal_service_pb2.ResolveApiKeyRequest(api_key=site.api_key),
            metadata=internal(campaign_settings),
        )

        assert response.site_id == site.site_id

    async def test_an_unknown_key_is_not_found(
        self, campaign_settings: Settings, site_internal_stub: InternalStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await site_internal_stub.ResolveApiKey(
                site_internal_service_pb2.ResolveApiKeyRequest(api_key="ck_not-a-key"),
                metadata=internal(campaign_settings),
            )

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    async def test_a_site_api_key_may_not_call_it(
        self, site: CreatedSite, site_internal_stub: InternalStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await site_internal_stub.ResolveApiKey(
                site_internal_service_pb2.ResolveApiKeyRequest(api_key=site.api_key),
                metadata=bearer(site.api_key),
            )

        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason(raised.value) == "INTERNAL_ONLY"


class TestGetSiteCredentials:
    async def test_the_private_key_matches_the_public_key(
        self,
        site: CreatedSite,
        campaign_settings: Settings,
        site_internal_stub: InternalStub,
    ) -> None:
        response = await site_internal_stub.GetSiteCredentials(
            site_internal_service_pb2.GetSiteCredentialsRequest(),
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
        assert response.vapid_subject == "mailto:ops@example.com"
        # And it signs what the public key verifies (what a push service checks).
        signature = private_key.sign(b"claims", ec.ECDSA(hashes.SHA256()))
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), site.vapid_public_key).verify(
            signature, b"claims", ec.ECDSA(hashes.SHA256())
        )

    async def test_a_site_api_key_may_not_read_credentials(
        self, site: CreatedSite, site_internal_stub: InternalStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await site_internal_stub.GetSiteCredentials(
                site_internal_service_pb2.GetSiteCredentialsRequest(), metadata=bearer(site.api_key)
            )

        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED

    async def test_an_unknown_site_is_not_found(
        self, campaign_settings: Settings, site_internal_stub: InternalStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await site_internal_stub.GetSiteCredentials(
                site_internal_service_pb2.GetSiteCredentialsRequest(),
                metadata=internal(campaign_settings, "site_does_not_exist"),
            )

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(raised.value) == "SITE_NOT_FOUND"

    async def test_the_site_must_be_named(
        self, campaign_settings: Settings, site_internal_stub: InternalStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await site_internal_stub.GetSiteCredentials(
                site_internal_service_pb2.GetSiteCredentialsRequest(),
                metadata=internal(campaign_settings),
            )

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def all_sites(
    stub: InternalStub, settings: Settings, page_size: int = 0
) -> list[site_pb2.Site]:
    """Every site, page by page, as an operator lists them (the internal token, no site)."""
    sites: list[site_pb2.Site] = []
    token = ""
    while True:
        page = await stub.ListSites(
            site_internal_service_pb2.ListSitesRequest(page_size=page_size, page_token=token),
            metadata=internal(settings),
        )
        assert page_size == 0 or len(page.sites) <= page_size
        sites.extend(page.sites)
        token = page.next_page_token
        if not token:
            return sites


async def get_site(stub: SiteStub, api_key: str) -> site_pb2.Site:
    return (await stub.GetSite(site_service_pb2.GetSiteRequest(), metadata=bearer(api_key))).site


def stored_key_hashes(settings: Settings, site_id: str) -> list[str]:
    engine = create_engine(sync_url(settings.database_url_for("campaign")))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT key_hash FROM site_api_keys WHERE site_id = :site"), {"site": site_id}
            )
            return [row[0] for row in rows]
    finally:
        engine.dispose()


class TestRotateApiKey:
    async def test_the_new_key_works_and_the_old_one_is_refused_at_once(
        self,
        site: CreatedSite,
        campaign_settings: Settings,
        sites_stub: SiteStub,
        site_internal_stub: InternalStub,
    ) -> None:
        before = await get_site(sites_stub, site.api_key)

        rotated = await sites_stub.RotateApiKey(
            site_service_pb2.RotateApiKeyRequest(), metadata=bearer(site.api_key)
        )

        assert rotated.site_id == site.site_id
        assert rotated.api_key.startswith("ck_") and rotated.api_key != site.api_key
        assert await get_site(sites_stub, rotated.api_key) == before
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await get_site(sites_stub, site.api_key)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert reason(refused.value) == "INVALID_API_KEY"
        # What the other services ask campaign: the old key belongs to no site any more.
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await site_internal_stub.ResolveApiKey(
                site_internal_service_pb2.ResolveApiKeyRequest(api_key=site.api_key),
                metadata=internal(campaign_settings),
            )
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        resolved = await site_internal_stub.ResolveApiKey(
            site_internal_service_pb2.ResolveApiKeyRequest(api_key=rotated.api_key),
            metadata=internal(campaign_settings),
        )
        assert resolved.site_id == site.site_id

    async def test_only_the_newest_key_is_stored_and_only_as_its_hash(
        self, site: CreatedSite, campaign_settings: Settings, sites_stub: SiteStub
    ) -> None:
        first = await sites_stub.RotateApiKey(
            site_service_pb2.RotateApiKeyRequest(), metadata=bearer(site.api_key)
        )
        second = await sites_stub.RotateApiKey(
            site_service_pb2.RotateApiKeyRequest(), metadata=bearer(first.api_key)
        )

        assert stored_key_hashes(campaign_settings, site.site_id) == [
            hashlib.sha256(second.api_key.encode()).hexdigest()
        ]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await get_site(sites_stub, first.api_key)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    async def test_another_site_keeps_its_key(
        self, new_site: NewSite, sites_stub: SiteStub
    ) -> None:
        mine, theirs = await new_site("Mine"), await new_site("Theirs")

        await sites_stub.RotateApiKey(
            site_service_pb2.RotateApiKeyRequest(), metadata=bearer(mine.api_key)
        )

        assert (await get_site(sites_stub, theirs.api_key)).site_id == theirs.site_id

    async def test_neither_key_is_logged(self, site: CreatedSite, sites_stub: SiteStub) -> None:
        with capture_logs() as logs:
            rotated = await sites_stub.RotateApiKey(
                site_service_pb2.RotateApiKeyRequest(), metadata=bearer(site.api_key)
            )

        logged = repr(logs)
        assert site.site_id in logged  # the rotation is logged, by site
        assert rotated.api_key not in logged and site.api_key not in logged

    async def test_another_service_accepts_the_old_key_at_most_for_its_cache_time(
        self,
        new_site: NewSite,
        campaign_server: ManagedServer,
        settings_factory: Callable[..., Settings],
        sites_stub: SiteStub,
    ) -> None:
        """Segment checks keys through campaign and caches answers 30 s (the bound the
        contract documents): the old key works there until then, and not after."""
        site = await new_site("Cached elsewhere")
        settings = settings_factory(campaign_address=campaign_server.address)
        now = [1000.0]
        peers = Peers(settings)
        segment = await create_segment_server(
            "127.0.0.1:0", settings, site_resolver=remote_site_resolver(peers, timer=lambda: now[0])
        )
        await segment.start()
        try:
            async with grpc.aio.insecure_channel(segment.address) as channel:
                stub = segment_service_pb2_grpc.SegmentServiceStub(channel)

                async def list_with(api_key: str) -> grpc.StatusCode:
                    try:
                        await stub.ListSubscribers(
                            segment_service_pb2.ListSubscribersRequest(), metadata=bearer(api_key)
                        )
                    except grpc.aio.AioRpcError as error:
                        return error.code()
                    return grpc.StatusCode.OK

                assert await list_with(site.api_key) == grpc.StatusCode.OK  # now cached
                rotated = await sites_stub.RotateApiKey(
                    site_service_pb2.RotateApiKeyRequest(), metadata=bearer(site.api_key)
                )
                now[0] += 29.0
                assert await list_with(site.api_key) == grpc.StatusCode.OK
                assert await list_with(rotated.api_key) == grpc.StatusCode.OK
                now[0] += 1.5  # past the 30 s the contract promises
                assert await list_with(site.api_key) == grpc.StatusCode.UNAUTHENTICATED
                assert await list_with(rotated.api_key) == grpc.StatusCode.OK
        finally:
            await segment.stop()
            await peers.close()


class TestUpdateSite:
    async def test_the_name_changes_and_nothing_else(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        before = await get_site(sites_stub, site.api_key)

        response = await sites_stub.UpdateSite(
            site_service_pb2.UpdateSiteRequest(
                site=site_pb2.Site(name="  Renamed shop ", vapid_subject="mailto:x@other.example"),
                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            ),
            metadata=bearer(site.api_key),
        )

        after = await get_site(sites_stub, site.api_key)
        assert response.site == after
        assert after.name == "Renamed shop"
        after.name = before.name
        assert after == before

    async def test_the_subject_changes_and_signing_credentials_follow(
        self,
        site: CreatedSite,
        campaign_settings: Settings,
        sites_stub: SiteStub,
        site_internal_stub: InternalStub,
    ) -> None:
        response = await sites_stub.UpdateSite(
            site_service_pb2.UpdateSiteRequest(
                site=site_pb2.Site(
                    site_id=site.site_id, vapid_subject="https://shop.example/contact"
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["vapid_subject"]),
            ),
            metadata=bearer(site.api_key),
        )

        assert response.site.vapid_subject == "https://shop.example/contact"
        assert response.site.name == "Test site"
        credentials = await site_internal_stub.GetSiteCredentials(
            site_internal_service_pb2.GetSiteCredentialsRequest(),
            metadata=internal(campaign_settings, site.site_id),
        )
        assert credentials.vapid_subject == "https://shop.example/contact"

    async def test_both_fields_at_once(self, site: CreatedSite, sites_stub: SiteStub) -> None:
        response = await sites_stub.UpdateSite(
            site_service_pb2.UpdateSiteRequest(
                site=site_pb2.Site(name="Both", vapid_subject="mailto:both@example.com"),
                update_mask=field_mask_pb2.FieldMask(paths=["name", "vapid_subject"]),
            ),
            metadata=bearer(site.api_key),
        )

        assert (response.site.name, response.site.vapid_subject) == (
            "Both",
            "mailto:both@example.com",
        )

    @pytest.mark.parametrize(
        ("paths", "expected_reason", "named"),
        [
            ([], "MISSING_UPDATE_MASK", "name"),
            (["vapid_public_key"], "INVALID_UPDATE_MASK", "vapid_public_key"),
            (["name", "site_id"], "INVALID_UPDATE_MASK", "site_id"),
            (["name", "nmae"], "INVALID_UPDATE_MASK", "nmae"),
            (["create_time"], "INVALID_UPDATE_MASK", "create_time"),
        ],
    )
    async def test_a_bad_mask_is_refused_naming_the_path_and_nothing_changes(
        self,
        site: CreatedSite,
        sites_stub: SiteStub,
        paths: list[str],
        expected_reason: str,
        named: str,
    ) -> None:
        before = await get_site(sites_stub, site.api_key)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sites_stub.UpdateSite(
                site_service_pb2.UpdateSiteRequest(
                    site=site_pb2.Site(name="Changed", vapid_subject="mailto:x@example.com"),
                    update_mask=field_mask_pb2.FieldMask(paths=paths),
                ),
                metadata=bearer(site.api_key),
            )

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == expected_reason
        assert field(raised.value) == "update_mask"
        assert named in (raised.value.details() or "")
        assert await get_site(sites_stub, site.api_key) == before

    @pytest.mark.parametrize("subject", APPLE_REFUSES)
    async def test_a_subject_apple_refuses_is_refused_and_nothing_changes(
        self, site: CreatedSite, sites_stub: SiteStub, subject: str
    ) -> None:
        before = await get_site(sites_stub, site.api_key)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sites_stub.UpdateSite(
                site_service_pb2.UpdateSiteRequest(
                    site=site_pb2.Site(name="Not applied", vapid_subject=subject),
                    update_mask=field_mask_pb2.FieldMask(paths=["name", "vapid_subject"]),
                ),
                metadata=bearer(site.api_key),
            )

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "INVALID_VAPID_SUBJECT"
        assert field(raised.value) == "vapid_subject"
        assert "Apple" in (raised.value.details() or "")
        assert await get_site(sites_stub, site.api_key) == before

    @pytest.mark.parametrize(
        ("site_fields", "path", "expected_reason"),
        [
            ({"name": "   "}, "name", "INVALID_SITE_NAME"),
            ({"name": "x" * 201}, "name", "INVALID_SITE_NAME"),
            ({"name": "two\nlines"}, "name", "INVALID_SITE_NAME"),
            ({"vapid_subject": ""}, "vapid_subject", "INVALID_VAPID_SUBJECT"),
            ({"vapid_subject": "ops@example.com"}, "vapid_subject", "INVALID_VAPID_SUBJECT"),
            ({"vapid_subject": "http://example.com/"}, "vapid_subject", "INVALID_VAPID_SUBJECT"),
            ({"vapid_subject": "mailto:" + "a" * 2050}, "vapid_subject", "INVALID_VAPID_SUBJECT"),
        ],
    )
    async def test_a_bad_value_is_refused_and_nothing_changes(
        self,
        site: CreatedSite,
        sites_stub: SiteStub,
        site_fields: dict[str, str],
        path: str,
        expected_reason: str,
    ) -> None:
        before = await get_site(sites_stub, site.api_key)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sites_stub.UpdateSite(
                site_service_pb2.UpdateSiteRequest(
                    site=site_pb2.Site(**site_fields),
                    update_mask=field_mask_pb2.FieldMask(paths=[path]),
                ),
                metadata=bearer(site.api_key),
            )

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == expected_reason
        assert await get_site(sites_stub, site.api_key) == before

    async def test_a_site_changes_only_itself(
        self, new_site: NewSite, sites_stub: SiteStub
    ) -> None:
        mine, theirs = await new_site("Mine"), await new_site("Theirs")

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sites_stub.UpdateSite(
                site_service_pb2.UpdateSiteRequest(
                    site=site_pb2.Site(site_id=theirs.site_id, name="Hijacked"),
                    update_mask=field_mask_pb2.FieldMask(paths=["name"]),
                ),
                metadata=bearer(mine.api_key),
            )

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert (await get_site(sites_stub, theirs.api_key)).name == "Theirs"
        assert (await get_site(sites_stub, mine.api_key)).name == "Mine"


INTERNAL_METHODS = [
    method.name
    for method in site_internal_service_pb2.DESCRIPTOR.services_by_name[
        "SiteInternalService"
    ].methods
]


class TestSiteInternalService:
    def test_it_holds_what_only_services_and_operators_call(self) -> None:
        assert set(INTERNAL_METHODS) == {
            "ResolveApiKey", "GetSiteCredentials", "ListSites", "ResolveWebsitePushId",
            "GetLegacySafariCredentials",
        }  # fmt: skip
        public = site_service_pb2.DESCRIPTOR.services_by_name["SiteService"].methods_by_name
        assert set(public) == {
            "GetSite", "RotateApiKey", "UpdateSite", "ImportVapidKey", "SetLegacySafari"
        }  # fmt: skip

    @pytest.mark.parametrize("method", INTERNAL_METHODS)
    async def test_a_site_api_key_is_refused(
        self, site: CreatedSite, site_internal_stub: InternalStub, method: str
    ) -> None:
        descriptor = site_internal_service_pb2.DESCRIPTOR.services_by_name[
            "SiteInternalService"
        ].methods_by_name[method]
        request = message_factory.GetMessageClass(descriptor.input_type)()

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await getattr(site_internal_stub, method)(request, metadata=bearer(site.api_key))

        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason(raised.value) == "INTERNAL_ONLY"


class TestListSites:
    async def test_pages_through_every_site_once_by_id(
        self, new_site: NewSite, campaign_settings: Settings, site_internal_stub: InternalStub
    ) -> None:
        created = [await new_site(f"Listed {n}") for n in range(3)]

        for page_size in (1, 2, 0):
            listed = await all_sites(site_internal_stub, campaign_settings, page_size)
            ids = [s.site_id for s in listed]
            assert ids == sorted(set(ids))
            by_id = {s.site_id: s for s in listed}
            for made in created:
                assert by_id[made.site_id].name == made.name
                assert by_id[made.site_id].vapid_public_key == made.vapid_public_key
                assert by_id[made.site_id].vapid_subject == "mailto:ops@example.com"

    async def test_a_full_page_then_the_rest(
        self, new_site: NewSite, campaign_settings: Settings, site_internal_stub: InternalStub
    ) -> None:
        for n in range(2):
            await new_site(f"Paged {n}")
        total = len(await all_sites(site_internal_stub, campaign_settings))

        first = await site_internal_stub.ListSites(
            site_internal_service_pb2.ListSitesRequest(page_size=total - 1),
            metadata=internal(campaign_settings),
        )
        rest = await site_internal_stub.ListSites(
            site_internal_service_pb2.ListSitesRequest(
                page_size=total - 1, page_token=first.next_page_token
            ),
            metadata=internal(campaign_settings),
        )

        assert len(first.sites) == total - 1 and first.next_page_token
        assert len(rest.sites) >= 1 and not rest.next_page_token

    @pytest.mark.parametrize(
        ("request_fields", "expected_reason"),
        [
            ({"page_token": "not-a-token"}, "INVALID_PAGE_TOKEN"),
            ({"page_size": -1}, "INVALID_PAGE_SIZE"),
        ],
    )
    async def test_bad_pages_are_refused(
        self,
        campaign_settings: Settings,
        site_internal_stub: InternalStub,
        request_fields: dict[str, object],
        expected_reason: str,
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await site_internal_stub.ListSites(
                site_internal_service_pb2.ListSitesRequest(**request_fields),  # type: ignore[arg-type]
                metadata=internal(campaign_settings),
            )

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == expected_reason

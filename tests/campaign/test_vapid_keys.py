"""A site's VAPID keys: importing another provider's pair in every accepted form, the
checks, idempotency, GetSite listing public halves, credentials carrying every pair, and
the migration that makes each existing site's key its current row."""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from alembic import command
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sqlalchemy import create_engine, text
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
from services.kit.db import _alembic_config, sync_url
from tests.campaign.helpers import field, internal, reason
from tests.support.sites import bearer

NewSite = Callable[..., Awaitable[CreatedSite]]
SiteStub = site_service_pb2_grpc.SiteServiceStub
InternalStub = site_internal_service_pb2_grpc.SiteInternalServiceStub
VAPID_KEY_ID = re.compile(r"vk_[0-9a-f]{32}")


def key_pair() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return key, public


def pkcs8_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


FORMS: dict[str, Callable[[ec.EllipticCurvePrivateKey], bytes]] = {
    "pkcs8 der": pkcs8_der,
    "pkcs8 pem": lambda key: key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ),
    "sec1 pem": lambda key: key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ),
    "raw scalar": lambda key: key.private_numbers().private_value.to_bytes(32, "big"),
}


async def import_key(
    stub: SiteStub, api_key: str, private_key: bytes, public_key: bytes = b""
) -> site_service_pb2.ImportVapidKeyResponse:
    return await stub.ImportVapidKey(
        site_service_pb2.ImportVapidKeyRequest(private_key=private_key, public_key=public_key),
        metadata=bearer(api_key),
    )


class TestImportVapidKey:
    @pytest.mark.parametrize("form", sorted(FORMS))
    async def test_every_accepted_form_is_stored_as_the_same_pair(
        self, form: str, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        key, public = key_pair()

        response = await import_key(sites_stub, site.api_key, FORMS[form](key), public)

        assert response.created
        imported = response.vapid_key
        assert VAPID_KEY_ID.fullmatch(imported.vapid_key_id)
        assert imported.public_key == public
        assert not imported.current
        assert imported.origin == "imported"
        assert imported.create_time.seconds > 0

    async def test_the_same_pair_again_is_the_same_key_in_any_form(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        key, public = key_pair()
        first = await import_key(sites_stub, site.api_key, FORMS["raw scalar"](key))

        again = await import_key(sites_stub, site.api_key, FORMS["sec1 pem"](key), public)

        assert first.created and not again.created
        assert again.vapid_key == first.vapid_key
        site_now = (
            await sites_stub.GetSite(
                site_service_pb2.GetSiteRequest(), metadata=bearer(site.api_key)
            )
        ).site
        assert [k.public_key for k in site_now.vapid_keys].count(public) == 1

    async def test_the_sites_own_key_is_found_not_added(
        self,
        site: CreatedSite,
        sites_stub: SiteStub,
        site_internal_stub: InternalStub,
        campaign_settings: Settings,
    ) -> None:
        credentials = await site_internal_stub.GetSiteCredentials(
            site_internal_service_pb2.GetSiteCredentialsRequest(),
            metadata=internal(campaign_settings, site.site_id),
        )

        again = await import_key(sites_stub, site.api_key, credentials.vapid_private_key)

        assert not again.created
        assert again.vapid_key.current
        assert again.vapid_key.vapid_key_id == credentials.current_vapid_key_id

    async def test_another_site_imports_the_same_pair_as_its_own_key(
        self, new_site: NewSite, sites_stub: SiteStub
    ) -> None:
        first, second = await new_site(), await new_site()
        key, _ = key_pair()

        a = await import_key(sites_stub, first.api_key, pkcs8_der(key))
        b = await import_key(sites_stub, second.api_key, pkcs8_der(key))

        assert a.created and b.created
        assert a.vapid_key.vapid_key_id != b.vapid_key.vapid_key_id

    async def test_a_public_key_of_another_pair_is_a_mismatch_and_nothing_is_stored(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        key, _ = key_pair()
        _, other_public = key_pair()

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await import_key(sites_stub, site.api_key, pkcs8_der(key), other_public)

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "VAPID_KEY_MISMATCH"
        assert field(raised.value) == "public_key"
        site_now = (
            await sites_stub.GetSite(
                site_service_pb2.GetSiteRequest(), metadata=bearer(site.api_key)
            )
        ).site
        assert len(site_now.vapid_keys) == 1  # its own key only

    async def test_a_public_key_that_is_no_point_is_invalid(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        key, public = key_pair()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await import_key(sites_stub, site.api_key, pkcs8_der(key), public[:33])

        assert reason(raised.value) == "INVALID_VAPID_KEY"
        assert field(raised.value) == "public_key"

    @pytest.mark.parametrize(
        "make",
        [
            pytest.param(lambda: b"", id="empty"),
            pytest.param(lambda: b"not a key at all", id="junk"),
            pytest.param(lambda: b"\x00" * 32, id="zero scalar"),
            pytest.param(lambda: b"\xff" * 32, id="scalar above the order"),
            pytest.param(lambda: pkcs8_der(ec.generate_private_key(ec.SECP384R1())), id="P-384"),
            pytest.param(
                lambda: ec.generate_private_key(ec.SECP256K1()).private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                ),
                id="secp256k1 sec1 pem",
            ),
            pytest.param(
                lambda: rsa.generate_private_key(65537, 2048).private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
                id="RSA",
            ),
            pytest.param(
                lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
                id="Ed25519",
            ),
            pytest.param(
                lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.BestAvailableEncryption(b"secret"),
                ),
                id="password protected",
            ),
            pytest.param(
                lambda: b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                id="bad pem",
            ),
            pytest.param(lambda: b"\x30" * 5000, id="too long"),
        ],
    )
    async def test_anything_else_is_invalid_and_says_which_forms_are_accepted(
        self, make: Callable[[], bytes], site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await import_key(sites_stub, site.api_key, make())

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(raised.value) == "INVALID_VAPID_KEY"
        assert field(raised.value) == "private_key"

    async def test_the_message_names_the_accepted_forms(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await import_key(sites_stub, site.api_key, b"nonsense")

        details = raised.value.details() or ""
        for form in ("PKCS#8 DER", "PKCS#8 PEM", "SEC1 PEM", "32-byte scalar", "P-256"):
            assert form in details

    async def test_no_key_material_is_logged(self, site: CreatedSite, sites_stub: SiteStub) -> None:
        key, public = key_pair()
        raw = FORMS["raw scalar"](key)
        with capture_logs() as logs:
            response = await import_key(sites_stub, site.api_key, raw, public)

        logged = repr(logs)
        assert response.vapid_key.vapid_key_id in logged
        for secret in (raw, pkcs8_der(key)):
            assert secret.hex() not in logged
            assert base64.urlsafe_b64encode(secret).decode().rstrip("=") not in logged
            assert repr(secret) not in logged


class TestGetSiteListsKeys:
    async def test_a_new_site_has_its_generated_current_key(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        got = (
            await sites_stub.GetSite(
                site_service_pb2.GetSiteRequest(), metadata=bearer(site.api_key)
            )
        ).site

        [own] = got.vapid_keys
        assert own.current and own.origin == "generated"
        assert own.public_key == got.vapid_public_key == site.vapid_public_key
        assert VAPID_KEY_ID.fullmatch(own.vapid_key_id)

    async def test_imported_keys_follow_the_current_one_as_public_halves(
        self, site: CreatedSite, sites_stub: SiteStub
    ) -> None:
        (k1, p1), (k2, p2) = key_pair(), key_pair()
        first = await import_key(sites_stub, site.api_key, pkcs8_der(k1))
        second = await import_key(sites_stub, site.api_key, pkcs8_der(k2))

        got = (
            await sites_stub.GetSite(
                site_service_pb2.GetSiteRequest(), metadata=bearer(site.api_key)
            )
        ).site

        assert [k.current for k in got.vapid_keys] == [True, False, False]
        assert [k.vapid_key_id for k in got.vapid_keys[1:]] == [
            first.vapid_key.vapid_key_id,
            second.vapid_key.vapid_key_id,
        ]
        assert [k.public_key for k in got.vapid_keys[1:]] == [p1, p2]
        # Public halves only: the message has no field for a private key at all.
        assert "private_key" not in site_pb2.VapidKey.DESCRIPTOR.fields_by_name


class TestCredentialsCarryEveryPair:
    async def test_every_pair_with_its_id_and_the_current_id(
        self,
        site: CreatedSite,
        sites_stub: SiteStub,
        site_internal_stub: InternalStub,
        campaign_settings: Settings,
    ) -> None:
        key, public = key_pair()
        imported = await import_key(sites_stub, site.api_key, FORMS["sec1 pem"](key))

        credentials = await site_internal_stub.GetSiteCredentials(
            site_internal_service_pb2.GetSiteCredentialsRequest(),
            metadata=internal(campaign_settings, site.site_id),
        )

        pairs = {pair.vapid_key_id: pair for pair in credentials.vapid_keys}
        assert set(pairs) == {credentials.current_vapid_key_id, imported.vapid_key.vapid_key_id}
        current = pairs[credentials.current_vapid_key_id]
        assert current.private_key == credentials.vapid_private_key
        assert current.public_key == credentials.vapid_public_key == site.vapid_public_key
        foreign = pairs[imported.vapid_key.vapid_key_id]
        # Stored (and handed over) as PKCS#8 DER, as the site's own key is.
        assert foreign.private_key == pkcs8_der(key)
        assert foreign.public_key == public
        loaded = serialization.load_der_private_key(foreign.private_key, None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)


class TestMigration:
    def test_each_existing_sites_key_becomes_its_current_generated_row(
        self, tmp_path: Path
    ) -> None:
        url = f"sqlite:///{tmp_path / 'campaign.db'}"
        config = _alembic_config("campaign", url)
        command.upgrade(config, "0a957495ed5c")  # before site_vapid_keys
        key, public = key_pair()
        engine = create_engine(sync_url(url))
        try:
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO sites (site_id, name, vapid_subject, vapid_private_key, "
                        "vapid_public_key, create_time) VALUES (:id, 'Old', 'mailto:o@example.com', "
                        ":private, :public, :created)"
                    ),
                    {
                        "id": "site_old",
                        "private": pkcs8_der(key),
                        "public": public,
                        "created": datetime(2026, 1, 2, tzinfo=UTC).isoformat(),
                    },
                )
            command.upgrade(config, "head")
            with engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT vapid_key_id, private_key, public_key, is_current, origin "
                        "FROM site_vapid_keys WHERE site_id = 'site_old'"
                    )
                ).all()
        finally:
            engine.dispose()
        [(key_id, private, stored_public, current, origin)] = rows
        assert VAPID_KEY_ID.fullmatch(key_id)
        assert (bytes(private), bytes(stored_public)) == (pkcs8_der(key), public)
        assert current and origin == "generated"

"""The server around the service: authentication, health, and the schema its migrations build."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text

from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.config import Settings
from services.kit.db import UTCDateTime, create_sync_engine_for
from services.segment.models import Model
from services.segment.server import INTERNAL_SERVICE_FULL_NAME, SERVICE_FULL_NAME
from services.segment.store import audience_query, listed_audience_query, page_query
from tests.segment.helpers import Site, expect_error, list_all, register_request
from tests.support.services import reflected_services
from tests.support.sites import bearer


class TestAuthentication:
    @pytest.mark.parametrize(
        "metadata", [bearer("ck_not-a-key"), (), (("authorization", "Basic abc"),)]
    )
    async def test_calls_without_a_valid_api_key_are_refused(
        self, stub: pb_grpc.SegmentServiceStub, site: Site, metadata: tuple[tuple[str, str], ...]
    ) -> None:
        await expect_error(
            stub.RegisterSubscriber(register_request(), metadata=metadata),
            grpc.StatusCode.UNAUTHENTICATED,
        )
        await expect_error(
            stub.ListSubscribers(pb.ListSubscribersRequest(), metadata=metadata),
            grpc.StatusCode.UNAUTHENTICATED,
        )

        assert await list_all(stub, site) == []


class TestHealth:
    @pytest.mark.parametrize("service", ["", SERVICE_FULL_NAME, INTERNAL_SERVICE_FULL_NAME])
    async def test_serving_while_the_database_is_reachable(
        self, channel: grpc.aio.Channel, service: str
    ) -> None:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )

        assert response.status == health_pb2.HealthCheckResponse.SERVING


class TestReflection:
    async def test_lists_the_public_and_the_internal_service(
        self, channel: grpc.aio.Channel
    ) -> None:
        listed = await reflected_services(channel)

        assert {
            "clarion.segment.v1.SegmentService",
            "clarion.segment.v1.SegmentInternalService",
            "grpc.health.v1.Health",
        } <= listed


class TestSchema:
    def test_migrations_build_exactly_the_models(
        self, segment_server: object, settings: Settings
    ) -> None:
        engine = create_sync_engine_for(settings.database_url_for("segment"))
        own_tables = set(Model.metadata.tables)
        try:
            with engine.connect() as connection:
                context = MigrationContext.configure(
                    connection,
                    opts={
                        "compare_type": True,
                        # The test database is shared with the other services' tables.
                        "include_name": lambda name, kind, _: kind != "table"
                        or name in own_tables,
                    },
                )
                assert compare_metadata(context, Model.metadata) == []
        finally:
            engine.dispose()

    @pytest.mark.parametrize("query", ["audience", "list"])
    def test_keyset_pages_are_an_index_range_scan_without_a_sort(
        self, segment_server: object, settings: Settings, query: str
    ) -> None:
        engine = create_sync_engine_for(settings.database_url_for("segment"))
        after = "sub_00000000000000000000000000000000"
        statement = (
            audience_query("site_x", datetime.now(UTC), after=after, limit=1001)
            if query == "audience"
            else page_query("site_x", after=after, limit=51)
        )
        sql = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
        try:
            with engine.connect() as connection:
                if engine.dialect.name == "postgresql":
                    # An empty test table is cheapest to scan; ask what the index would do.
                    connection.execute(text("SET enable_seqscan = off"))
                    plan = " ".join(row[0] for row in connection.execute(text(f"EXPLAIN {sql}")))
                else:
                    plan = " ".join(
                        row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
                    )
        finally:
            engine.dispose()

        # The key (site_id, subscriber_id): PostgreSQL names it, SQLite numbers it.
        assert re.search(
            r"pk_segment_subscribers|sqlite_autoindex_segment_subscribers_\d+ "
            r"\(site_id=\? AND subscriber_id>\?\)",
            plan,
        ), plan
        assert "SORT" not in plan.upper() and "TEMP B-TREE" not in plan.upper(), plan

    def test_a_listed_audience_is_looked_up_not_scanned(
        self, segment_server: object, settings: Settings
    ) -> None:
        engine = create_sync_engine_for(settings.database_url_for("segment"))
        statement = listed_audience_query(
            "site_x",
            datetime.now(UTC),
            subscriber_ids=["sub_1", "sub_2"],
            profile_ids=["user-1", "user-2"],
            after="sub_00000000000000000000000000000000",
            limit=1001,
            postgresql=engine.dialect.name == "postgresql",
        )
        sql = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
        try:
            with engine.connect() as connection:
                if engine.dialect.name == "postgresql":
                    connection.execute(text("SET enable_seqscan = off"))
                    lines = [row[0] for row in connection.execute(text(f"EXPLAIN {sql}"))]
                else:
                    lines = [
                        row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
                    ]
        finally:
            engine.dispose()
        plan = "\n".join(lines)

        # The profiles through their index; no walk of the site's id range.
        assert "ix_segment_subscribers_site_id_profile_id" in plan, plan
        assert "subscriber_id>?" not in plan.replace(" ", ""), plan
        assert not any(
            "Index Cond" in line and "subscriber_id)::text >" in line and "=" not in line
            for line in lines
        ), plan

    def test_the_migration_dates_earlier_unsubscribes(
        self, database_factory: Callable[[], str]
    ) -> None:
        url = database_factory()
        config = Config()
        config.set_main_option("script_location", "services.segment:migrations")
        config.set_main_option("version_table", "alembic_version_segment")
        config.attributes["database_url"] = url
        command.upgrade(config, "5abb28cf6f5a")  # before unsubscribe_time existed
        old = sa.table(
            "segment_subscribers",
            *(sa.column(name) for name in (
                "subscriber_id", "site_id", "endpoint", "p256dh", "auth", "browser",
                "timezone", "state",
            )),
            sa.column("create_time", UTCDateTime()),
            sa.column("update_time", UTCDateTime()),
        )
        created = datetime(2026, 1, 1, tzinfo=UTC)
        left = datetime(2026, 2, 1, tzinfo=UTC)
        engine = create_sync_engine_for(url)
        try:
            with engine.begin() as connection:
                connection.execute(old.insert(), [
                    {"subscriber_id": f"sub_{state}", "site_id": "site_m",
                     "endpoint": f"https://push.example.test/{state}", "p256dh": b"k",
                     "auth": b"a", "browser": "chrome", "timezone": "UTC", "state": state,
                     "create_time": created, "update_time": left}
                    for state in ("active", "unsubscribed")
                ])
            command.upgrade(config, "head")
            with engine.connect() as connection:
                table = Model.metadata.tables["segment_subscribers"]
                stored = dict(connection.execute(
                    sa.select(table.c.subscriber_id, table.c.unsubscribe_time)
                ).all())
        finally:
            engine.dispose()

        assert stored == {"sub_active": None, "sub_unsubscribed": left}

"""ReportingService against a real server and database (SQLite, and PostgreSQL when set)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text

from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import reporting_internal_service_pb2 as ris
from clarion.reporting.v1 import reporting_pb2
from clarion.reporting.v1 import reporting_service_pb2 as rs
from services.kit.db import create_sync_engine_for
from services.kit.errors import error_info
from services.reporting.server import INTERNAL_SERVICE_FULL_NAME, SERVICE_FULL_NAME
from tests.reporting.conftest import ReportingUnderTest, Site
from tests.support.services import assert_internal_only, reflected_services

SENT = common_pb2.DELIVERY_STATUS_SENT
FAILED = common_pb2.DELIVERY_STATUS_FAILED
SUPPRESSED = common_pb2.DELIVERY_STATUS_SUPPRESSED
EXPIRED = common_pb2.DELIVERY_STATUS_EXPIRED
VIEWED = common_pb2.ENGAGEMENT_KIND_VIEWED
CLICKED = common_pb2.ENGAGEMENT_KIND_CLICKED
CLOSED = common_pb2.ENGAGEMENT_KIND_CLOSED


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def timestamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def outcome(
    run_id: str, campaign_id: str, subscriber_id: str, status: int = SENT,
    occur_time: datetime | None = None, reason: int = common_pb2.DELIVERY_REASON_UNSPECIFIED,
) -> reporting_pb2.DeliveryOutcome:
    message = reporting_pb2.DeliveryOutcome(
        run_id=run_id, campaign_id=campaign_id, subscriber_id=subscriber_id, status=status,
        reason=reason, browser=common_pb2.BROWSER_CHROME,
    )
    if occur_time is not None:
        message.occur_time.CopyFrom(timestamp(occur_time))
    return message


def event(
    run_id: str, campaign_id: str, subscriber_id: str, kind: int, button: str = ""
) -> reporting_pb2.EngagementEvent:
    return reporting_pb2.EngagementEvent(
        run_id=run_id, campaign_id=campaign_id, subscriber_id=subscriber_id, kind=kind,
        button=button,
    )


async def record_outcomes(reporting: ReportingUnderTest, site: Site, *outcomes) -> int:
    response = await reporting.internal_stub.RecordDeliveryOutcomes(
        ris.RecordDeliveryOutcomesRequest(outcomes=outcomes), metadata=site.internal
    )
    return response.recorded


async def record_events(reporting: ReportingUnderTest, site: Site, *events) -> int:
    response = await reporting.internal_stub.RecordEngagementEvents(
        ris.RecordEngagementEventsRequest(events=events), metadata=site.internal
    )
    return response.recorded


async def record_audience(
    reporting: ReportingUnderTest, site: Site, run_id: str, campaign_id: str, audience: int
) -> None:
    await reporting.internal_stub.RecordRunAudience(
        ris.RecordRunAudienceRequest(run_id=run_id, campaign_id=campaign_id, audience=audience),
        metadata=site.internal,
    )


async def report(
    reporting: ReportingUnderTest, site: Site, campaign_id: str
) -> reporting_pb2.CampaignReport:
    response = await reporting.stub.GetCampaignReport(
        rs.GetCampaignReportRequest(campaign_id=campaign_id), metadata=site.key
    )
    return response.report


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


class TestRecordRunAudience:
    async def test_recording_a_run_again_replaces_its_audience(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        await record_audience(reporting, site, run_id, campaign_id, 100)
        await record_audience(reporting, site, run_id, campaign_id, 120)

        result = await report(reporting, site, campaign_id)

        assert (result.runs, result.audience) == (1, 120)

    async def test_audiences_of_all_runs_add_up(self, reporting, site):
        campaign_id = new_id("cmp")
        await record_audience(reporting, site, new_id("run"), campaign_id, 100)
        await record_audience(reporting, site, new_id("run"), campaign_id, 0)
        await record_audience(reporting, site, new_id("run"), campaign_id, 30)

        result = await report(reporting, site, campaign_id)

        assert (result.runs, result.audience) == (3, 130)

    @pytest.mark.parametrize(
        ("run_id", "campaign_id", "audience", "field"),
        [
            ("", "cmp_1", 5, "run_id"),
            ("run_1", "", 5, "campaign_id"),
            ("run_1", "cmp_1", -1, "audience"),
        ],
    )
    async def test_bad_input_is_refused_and_not_stored(
        self, reporting, site, run_id, campaign_id, audience, field
    ):
        error = await refused(
            reporting.internal_stub.RecordRunAudience(
                ris.RecordRunAudienceRequest(
                    run_id=run_id, campaign_id=campaign_id, audience=audience
                ),
                metadata=site.internal,
            )
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).metadata["field"] == field
        not_found = await refused(
            reporting.stub.GetCampaignReport(
                rs.GetCampaignReportRequest(campaign_id="cmp_1"), metadata=site.key
            )
        )
        assert not_found.code() == grpc.StatusCode.NOT_FOUND

    async def test_a_site_api_key_cannot_record_what_delivery_sent(self, reporting, site):
        error = await refused(
            reporting.internal_stub.RecordRunAudience(
                ris.RecordRunAudienceRequest(run_id="run_1", campaign_id="cmp_1", audience=5),
                metadata=site.key,
            )
        )

        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(error).reason == "INTERNAL_ONLY"


class TestRecordDeliveryOutcomes:
    async def test_the_same_outcome_twice_counts_once(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        first = await record_outcomes(reporting, site, outcome(run_id, campaign_id, "sub_1"))
        again = await record_outcomes(reporting, site, outcome(run_id, campaign_id, "sub_1"))

        result = await report(reporting, site, campaign_id)

        assert (first, again) == (1, 0)
        assert result.sent == 1

    async def test_a_resent_batch_records_only_the_new_outcomes(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        await record_outcomes(
            reporting, site, *(outcome(run_id, campaign_id, f"sub_{n}") for n in range(3))
        )
        # Crash recovery: the first three again, two new, one repeated inside the batch.
        recorded = await record_outcomes(
            reporting, site,
            *(outcome(run_id, campaign_id, f"sub_{n}") for n in range(5)),
            outcome(run_id, campaign_id, "sub_4"),
        )

        assert recorded == 2
        assert (await report(reporting, site, campaign_id)).sent == 5

    async def test_a_large_batch_is_recorded_in_one_call(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        batch = [outcome(run_id, campaign_id, f"sub_{n}") for n in range(2500)]

        assert await record_outcomes(reporting, site, *batch) == 2500
        assert (await report(reporting, site, campaign_id)).sent == 2500

    async def test_a_batch_with_one_bad_outcome_stores_none(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        batch = [
            outcome(run_id, campaign_id, "sub_1"),
            outcome(run_id, campaign_id, "sub_2", status=common_pb2.DELIVERY_STATUS_UNSPECIFIED),
            outcome(run_id, campaign_id, "sub_3"),
        ]

        error = await refused(
            reporting.internal_stub.RecordDeliveryOutcomes(
                ris.RecordDeliveryOutcomesRequest(outcomes=batch), metadata=site.internal
            )
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).reason == "MISSING_STATUS"
        assert error_info(error).metadata["field"] == "outcomes[1].status"
        not_found = await refused(
            reporting.stub.GetCampaignReport(
                rs.GetCampaignReportRequest(campaign_id=campaign_id), metadata=site.key
            )
        )
        assert not_found.code() == grpc.StatusCode.NOT_FOUND
        # Fixed and resent, all of it is new.
        batch[1].status = FAILED
        assert await record_outcomes(reporting, site, *batch) == 3

    @pytest.mark.parametrize("missing", ["run_id", "campaign_id", "subscriber_id"])
    async def test_every_id_is_required(self, reporting, site, missing):
        bad = outcome("run_1", "cmp_1", "sub_1")
        bad.ClearField(missing)

        error = await refused(
            reporting.internal_stub.RecordDeliveryOutcomes(
                ris.RecordDeliveryOutcomesRequest(
                    outcomes=[outcome("run_1", "cmp_1", "sub_0"), bad]
                ),
                metadata=site.internal,
            )
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).metadata["field"] == f"outcomes[1].{missing}"

    async def test_more_than_ten_thousand_outcomes_are_refused(self, reporting, site):
        batch = [outcome("run_1", "cmp_1", f"sub_{n}") for n in range(10_001)]

        error = await refused(
            reporting.internal_stub.RecordDeliveryOutcomes(
                ris.RecordDeliveryOutcomesRequest(outcomes=batch), metadata=site.internal
            )
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).reason == "BATCH_TOO_LARGE"

    async def test_an_empty_batch_is_refused(self, reporting, site):
        error = await refused(
            reporting.internal_stub.RecordDeliveryOutcomes(
                ris.RecordDeliveryOutcomesRequest(), metadata=site.internal
            )
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def stored_reasons(reporting: ReportingUnderTest, site: Site, run_id: str) -> dict[str, str]:
    """What reporting stored as each outcome's reason: subscriber id -> reason word."""
    engine = create_sync_engine_for(reporting.settings.database_url_for("reporting"))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT subscriber_id, reason FROM reporting_outcomes "
                    "WHERE site_id = :site_id AND run_id = :run_id"
                ),
                {"site_id": site.site_id, "run_id": run_id},
            )
            return {subscriber_id: reason for subscriber_id, reason in rows}
    finally:
        engine.dispose()


class TestDeliveryReasons:
    async def test_reasons_are_stored_as_their_lower_case_names(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        await record_outcomes(
            reporting, site,
            outcome(run_id, campaign_id, "sub_sent"),
            outcome(
                run_id, campaign_id, "sub_gone", FAILED,
                reason=common_pb2.DELIVERY_REASON_PUSH_SERVICE_410,
            ),
            outcome(
                run_id, campaign_id, "sub_5xx", FAILED,
                reason=common_pb2.DELIVERY_REASON_PUSH_SERVICE_5XX,
            ),
            outcome(
                run_id, campaign_id, "sub_left", SUPPRESSED,
                reason=common_pb2.DELIVERY_REASON_UNSUBSCRIBED,
            ),
            outcome(
                run_id, campaign_id, "sub_apns", FAILED,
                reason=common_pb2.DELIVERY_REASON_APNS_UNREGISTERED,
            ),
        )

        assert stored_reasons(reporting, site, run_id) == {
            "sub_sent": "",
            "sub_gone": "push_service_410",
            "sub_5xx": "push_service_5xx",
            "sub_left": "unsubscribed",
            "sub_apns": "apns_unregistered",
        }

    async def test_an_unknown_reason_refuses_the_whole_batch(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        batch = [
            outcome(run_id, campaign_id, "sub_1"),
            outcome(run_id, campaign_id, "sub_2", FAILED, reason=999),
        ]

        error = await refused(
            reporting.internal_stub.RecordDeliveryOutcomes(
                ris.RecordDeliveryOutcomesRequest(outcomes=batch), metadata=site.internal
            )
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).reason == "INVALID_REASON"
        assert error_info(error).metadata["field"] == "outcomes[1].reason"
        assert stored_reasons(reporting, site, run_id) == {}


class TestRecordEngagementEvents:
    async def test_the_same_event_twice_counts_once(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        await record_outcomes(reporting, site, outcome(run_id, campaign_id, "sub_1"))

        first = await record_events(reporting, site, event(run_id, campaign_id, "sub_1", CLICKED))
        again = await record_events(reporting, site, event(run_id, campaign_id, "sub_1", CLICKED))

        assert (first, again) == (1, 0)
        assert (await report(reporting, site, campaign_id)).clicked == 1

    async def test_clicks_on_two_buttons_are_both_kept_but_one_subscriber_clicked(
        self, reporting, site
    ):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        await record_outcomes(reporting, site, outcome(run_id, campaign_id, "sub_1"))

        recorded = await record_events(
            reporting, site,
            event(run_id, campaign_id, "sub_1", CLICKED),
            event(run_id, campaign_id, "sub_1", CLICKED, button="buy"),
        )

        assert recorded == 2
        assert (await report(reporting, site, campaign_id)).clicked == 1

    async def test_an_event_naming_another_campaign_than_its_runs_counts_nowhere(
        self, reporting, site
    ):
        campaign_id, other_id, run_id = new_id("cmp"), new_id("cmp"), new_id("run")
        await record_audience(reporting, site, run_id, campaign_id, 1)
        await record_audience(reporting, site, new_id("run"), other_id, 1)

        error = await refused(
            reporting.internal_stub.RecordEngagementEvents(
                ris.RecordEngagementEventsRequest(
                    events=[event(run_id, other_id, "sub_1", CLICKED)]
                ),
                metadata=site.internal,
            )
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).reason == "CAMPAIGN_MISMATCH"
        assert (await report(reporting, site, other_id)).clicked == 0
        assert (await report(reporting, site, campaign_id)).clicked == 0

    async def test_a_site_api_key_cannot_record_events_and_they_count_nowhere(
        self, reporting, site
    ):
        # Only the gateway records engagement, after checking the browser's engagement
        # token: a site's key must not skip that check.
        campaign_id, run_id = new_id("cmp"), new_id("run")
        await record_audience(reporting, site, run_id, campaign_id, 1)
        await record_outcomes(reporting, site, outcome(run_id, campaign_id, "sub_1"))
        before = await report(reporting, site, campaign_id)

        error = await refused(
            reporting.internal_stub.RecordEngagementEvents(
                ris.RecordEngagementEventsRequest(
                    events=[
                        event(run_id, campaign_id, "sub_1", kind)
                        for kind in (VIEWED, CLICKED, CLOSED)
                    ]
                ),
                metadata=site.key,
            )
        )

        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(error).reason == "INTERNAL_ONLY"
        assert await report(reporting, site, campaign_id) == before
        assert (before.viewed, before.clicked, before.closed) == (0, 0, 0)

    async def test_a_batch_with_an_unspecified_kind_stores_none(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        await record_outcomes(reporting, site, outcome(run_id, campaign_id, "sub_1"))

        error = await refused(
            reporting.internal_stub.RecordEngagementEvents(
                ris.RecordEngagementEventsRequest(
                    events=[
                        event(run_id, campaign_id, "sub_1", VIEWED),
                        event(run_id, campaign_id, "sub_1", common_pb2.ENGAGEMENT_KIND_UNSPECIFIED),
                    ]
                ),
                metadata=site.internal,
            )
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).metadata["field"] == "events[1].kind"
        assert (await report(reporting, site, campaign_id)).viewed == 0


class TestGetCampaignReport:
    async def test_a_realistic_mix_is_aggregated(self, reporting, site):
        campaign_id, run_a, run_b = new_id("cmp"), new_id("run"), new_id("run")
        start = reporting.clock.now()
        await record_audience(reporting, site, run_a, campaign_id, 6)
        await record_audience(reporting, site, run_b, campaign_id, 4)
        await record_outcomes(
            reporting, site,
            outcome(run_a, campaign_id, "sub_1", SENT, start + timedelta(minutes=1)),
            outcome(run_a, campaign_id, "sub_2", SENT, start + timedelta(minutes=2)),
            outcome(run_a, campaign_id, "sub_3", SENT, start + timedelta(minutes=3)),
            outcome(
                run_a, campaign_id, "sub_4", FAILED, start + timedelta(minutes=9),
                common_pb2.DELIVERY_REASON_PAYLOAD_TOO_LARGE,
            ),
            outcome(
                run_a, campaign_id, "sub_5", SUPPRESSED,
                reason=common_pb2.DELIVERY_REASON_FREQUENCY_CAP,
            ),
            outcome(run_a, campaign_id, "sub_6", EXPIRED),
            outcome(run_b, campaign_id, "sub_1", SENT, start + timedelta(hours=1)),
            outcome(run_b, campaign_id, "sub_2", FAILED, start + timedelta(hours=2)),
            outcome(run_b, campaign_id, "sub_7", SUPPRESSED),
            outcome(run_b, campaign_id, "sub_8", SUPPRESSED),
        )
        await record_events(
            reporting, site,
            event(run_a, campaign_id, "sub_1", VIEWED),
            event(run_a, campaign_id, "sub_2", VIEWED),
            event(run_a, campaign_id, "sub_3", VIEWED),
            event(run_b, campaign_id, "sub_1", VIEWED),
            event(run_a, campaign_id, "sub_1", CLICKED),
            event(run_a, campaign_id, "sub_1", CLICKED, button="more"),
            event(run_b, campaign_id, "sub_1", CLICKED),
            event(run_a, campaign_id, "sub_2", CLOSED),
        )
        # Another campaign of the same site must not leak in.
        await record_outcomes(reporting, site, outcome(new_id("run"), new_id("cmp"), "sub_1"))

        result = await report(reporting, site, campaign_id)

        assert result.campaign_id == campaign_id
        assert (result.runs, result.audience) == (2, 10)
        assert (result.sent, result.failed, result.suppressed, result.expired) == (4, 2, 3, 1)
        assert (result.viewed, result.clicked, result.closed) == (4, 2, 1)
        assert result.click_through_rate == pytest.approx(2 / 4)
        # The latest *sent* outcome, not the later failure.
        assert result.last_sent_time.ToDatetime(tzinfo=UTC) == start + timedelta(hours=1)

    async def test_outcomes_without_a_time_are_stamped_with_the_clock(self, reporting, site):
        campaign_id = new_id("cmp")
        reporting.clock.advance(days=3)
        await record_outcomes(reporting, site, outcome(new_id("run"), campaign_id, "sub_1"))

        result = await report(reporting, site, campaign_id)

        assert result.last_sent_time.ToDatetime(tzinfo=UTC) == reporting.clock.now()

    async def test_click_through_rate_is_zero_when_nothing_was_sent(self, reporting, site):
        campaign_id, run_id = new_id("cmp"), new_id("run")
        await record_audience(reporting, site, run_id, campaign_id, 3)
        await record_outcomes(reporting, site, outcome(run_id, campaign_id, "sub_1", FAILED))

        result = await report(reporting, site, campaign_id)

        assert (result.sent, result.click_through_rate) == (0, 0.0)
        assert not result.HasField("last_sent_time")

    async def test_a_campaign_without_runs_is_not_found(self, reporting, site):
        campaign_id = new_id("cmp")
        # Browser events alone do not make a run.
        await record_events(reporting, site, event(new_id("run"), campaign_id, "sub_1", VIEWED))

        error = await refused(
            reporting.stub.GetCampaignReport(
                rs.GetCampaignReportRequest(campaign_id=campaign_id), metadata=site.key
            )
        )

        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(error).reason == "CAMPAIGN_REPORT_NOT_FOUND"
        assert "no run was recorded" in error.details()

    async def test_an_empty_campaign_id_is_refused(self, reporting, site):
        error = await refused(
            reporting.stub.GetCampaignReport(rs.GetCampaignReportRequest(), metadata=site.key)
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


class TestSiteIsolation:
    async def test_another_sites_campaign_is_not_found(self, reporting, new_site):
        owner, stranger = new_site(), new_site()
        campaign_id = new_id("cmp")
        await record_outcomes(reporting, owner, outcome(new_id("run"), campaign_id, "sub_1"))

        error = await refused(
            reporting.stub.GetCampaignReport(
                rs.GetCampaignReportRequest(campaign_id=campaign_id), metadata=stranger.key
            )
        )

        assert error.code() == grpc.StatusCode.NOT_FOUND

    async def test_the_same_ids_in_two_sites_are_counted_apart(self, reporting, new_site):
        first, second = new_site(), new_site()
        campaign_id, run_id = new_id("cmp"), new_id("run")
        for current in (first, second):
            recorded = await record_outcomes(
                reporting, current, outcome(run_id, campaign_id, "sub_1")
            )
            assert recorded == 1
        await record_events(reporting, second, event(run_id, campaign_id, "sub_1", CLICKED))

        first_report = await report(reporting, first, campaign_id)
        second_report = await report(reporting, second, campaign_id)

        assert (first_report.sent, first_report.clicked) == (1, 0)
        assert (second_report.sent, second_report.clicked) == (1, 1)


class TestAuthentication:
    async def test_a_wrong_api_key_is_unauthenticated(self, reporting):
        error = await refused(
            reporting.stub.GetCampaignReport(
                rs.GetCampaignReportRequest(campaign_id="cmp_1"),
                metadata=(("authorization", "Bearer not-a-key"),),
            )
        )

        assert error.code() == grpc.StatusCode.UNAUTHENTICATED

    async def test_a_wrong_internal_token_cannot_record_events(self, reporting, site):
        forged = (("authorization", "Bearer wrong-token"), ("x-clarion-site-id", site.site_id))
        error = await refused(
            reporting.internal_stub.RecordEngagementEvents(
                ris.RecordEngagementEventsRequest(
                    events=[event("run_1", "cmp_1", "sub_1", VIEWED)]
                ),
                metadata=forged,
            )
        )

        assert error.code() == grpc.StatusCode.PERMISSION_DENIED

    async def test_a_wrong_internal_token_cannot_record_outcomes(self, reporting, site):
        forged = (("authorization", "Bearer wrong-token"), ("x-clarion-site-id", site.site_id))
        error = await refused(
            reporting.internal_stub.RecordDeliveryOutcomes(
                ris.RecordDeliveryOutcomesRequest(outcomes=[outcome("run_1", "cmp_1", "sub_1")]),
                metadata=forged,
            )
        )

        assert error.code() == grpc.StatusCode.PERMISSION_DENIED

    async def test_an_internal_call_must_name_its_site(self, reporting):
        error = await refused(
            reporting.internal_stub.RecordDeliveryOutcomes(
                ris.RecordDeliveryOutcomesRequest(outcomes=[outcome("run_1", "cmp_1", "sub_1")]),
                metadata=(("authorization", f"Bearer {reporting.settings.internal_token_value}"),),
            )
        )

        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_info(error).reason == "MISSING_SITE"


class TestInternalOnly:
    async def test_a_site_api_key_is_refused_on_every_internal_method(self, reporting, site):
        tried = await assert_internal_only(reporting.channel, INTERNAL_SERVICE_FULL_NAME, site.key)

        assert sorted(tried) == [
            "RecordDeliveryOutcomes", "RecordEngagementEvents", "RecordRunAudience"
        ]

    async def test_the_public_service_only_reads_reports(self):
        public = rs.DESCRIPTOR.services_by_name["ReportingService"]

        assert list(public.methods_by_name) == [
            "GetCampaignReport", "GetRunReport", "ListRunReports", "GetRecipientActivity",
        ]

    async def test_reflection_lists_the_public_and_the_internal_service(self, reporting):
        listed = await reflected_services(reporting.channel)

        assert {SERVICE_FULL_NAME, INTERNAL_SERVICE_FULL_NAME, "grpc.health.v1.Health"} <= listed
        assert INTERNAL_SERVICE_FULL_NAME == "clarion.reporting.v1.ReportingInternalService"

"""Scheduled campaigns through the real server and its scheduler, on both databases, with
time moved by an injected clock: one-time, several times and recurring schedules start
one run per occurrence; pause, resume, cancel; a scheduler that was down catches up with
the latest occurrence only; two replicas never start an occurrence twice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2_grpc
from clarion.campaign.v1 import campaign_service_pb2 as pb
from clarion.common.v1 import common_pb2
from clarion.remote import read_campaign_file, schedule_words
from services.campaign.admin import create_site
from services.campaign.server import create_server
from services.kit.clock import FrozenClock
from services.kit.config import Settings
from services.kit.grpcserver import ManagedServer, client_channel
from tests.campaign.helpers import closed_port_address, eventually, field, reason
from tests.support.sites import bearer

Stub = campaign_service_pb2_grpc.CampaignServiceStub
# A Monday; Europe/Berlin is on winter time (UTC+1).
START = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)
SCHEDULER_INTERVAL = 0.02


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def at(moment: datetime) -> campaign_pb2.Schedule:
    return campaign_pb2.Schedule(at=stamp(moment))


def recurring(rule: str, timezone: str = "UTC", **times: datetime) -> campaign_pb2.Schedule:
    return campaign_pb2.Schedule(
        recurrence=campaign_pb2.Recurrence(
            rule=rule, timezone=timezone, **{k: stamp(v) for k, v in times.items()}
        )
    )


@dataclass
class Deployment:
    settings: Settings
    clock: FrozenClock
    stub: Stub
    auth: tuple[tuple[str, str], ...]

    async def create(self, schedule: campaign_pb2.Schedule | None, **fields: object) -> campaign_pb2.Campaign:
        response = await self.stub.CreateCampaign(
            pb.CreateCampaignRequest(
                notification=common_pb2.Notification(
                    title="Weekly digest", target_url="https://shop.example/"
                ),
                schedule=schedule,
                **fields,  # type: ignore[arg-type]
            ),
            metadata=self.auth,
        )
        return response.campaign

    async def get(self, campaign_id: str) -> campaign_pb2.Campaign:
        response = await self.stub.GetCampaign(
            pb.GetCampaignRequest(campaign_id=campaign_id), metadata=self.auth
        )
        return response.campaign

    async def runs(self, campaign_id: str) -> list[campaign_pb2.Run]:
        response = await self.stub.ListRuns(
            pb.ListRunsRequest(campaign_id=campaign_id, page_size=1000), metadata=self.auth
        )
        return list(reversed(response.runs))  # oldest first

    async def move_to(self, moment: datetime, campaign_id: str, runs: int) -> list[campaign_pb2.Run]:
        """Moves the clock to `moment` and waits for the scheduler to have started `runs`
        runs of the campaign in all (and its next run time to be after `moment`)."""
        self.clock.advance(seconds=(moment - self.clock.now()).total_seconds())

        async def settled() -> tuple[list[campaign_pb2.Run], campaign_pb2.Campaign]:
            return await self.runs(campaign_id), await self.get(campaign_id)

        found, campaign = await eventually(
            settled,
            lambda pair: len(pair[0]) >= runs
            and (
                not pair[1].HasField("next_run_time")
                or pair[1].next_run_time.ToDatetime(UTC) > moment
            ),
            timeout=15,
            what=f"{runs} runs of {campaign_id}",
        )
        return found


@asynccontextmanager
async def campaign_server(settings: Settings, clock: FrozenClock) -> AsyncIterator[ManagedServer]:
    server = await create_server(
        "127.0.0.1:0", settings, clock=clock, scheduler_interval_seconds=SCHEDULER_INTERVAL
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def deployment_settings(settings_factory: Callable[..., Settings]) -> Settings:
    # A database of its own: the scheduler looks at every campaign in it. Delivery is out
    # of reach, so started runs stay PREPARING with their hand-off pending.
    dead = closed_port_address()
    return settings_factory(segment_address=dead, delivery_address=dead, reporting_address=dead)


@pytest.fixture
async def deployment(deployment_settings: Settings) -> AsyncIterator[Deployment]:
    clock = FrozenClock(START)
    async with campaign_server(deployment_settings, clock) as server:
        site = await create_site(deployment_settings, "Scheduled shop", "mailto:ops@shop.test")
        async with client_channel(server.address) as channel:
            yield Deployment(
                deployment_settings, clock, Stub(channel), bearer(site.api_key)
            )


def run_times(runs: list[campaign_pb2.Run]) -> list[datetime]:
    return [run.create_time.ToDatetime(UTC) for run in runs]


class TestOneTimeAndSpecifiedTimes:
    async def test_a_one_time_campaign_runs_once_at_its_time_then_completes(self, deployment):
        campaign = await deployment.create(at(START + timedelta(hours=2)))
        assert campaign.state == campaign_pb2.CAMPAIGN_STATE_SCHEDULED
        assert campaign.next_run_time.ToDatetime(UTC) == START + timedelta(hours=2)

        deployment.clock.advance(hours=1, minutes=59)
        assert await deployment.runs(campaign.campaign_id) == []

        runs = await deployment.move_to(START + timedelta(hours=2), campaign.campaign_id, 1)
        assert run_times(runs) == [START + timedelta(hours=2)]
        done = await deployment.get(campaign.campaign_id)
        # Nothing left to start; delivery is out of reach here, so its run never
        # finishes and the campaign shows running (completed once the run ends).
        assert done.state == campaign_pb2.CAMPAIGN_STATE_RUNNING
        assert not done.HasField("next_run_time")

    async def test_each_specified_time_starts_one_run(self, deployment):
        times = [START + timedelta(days=d) for d in (1, 3, 4)]
        campaign = await deployment.create(
            campaign_pb2.Schedule(times=campaign_pb2.SpecifiedTimes(times=[stamp(t) for t in times]))
        )
        for count, moment in enumerate(times, start=1):
            runs = await deployment.move_to(moment, campaign.campaign_id, count)
        assert run_times(runs) == times
        assert (await deployment.get(campaign.campaign_id)).state == (
            campaign_pb2.CAMPAIGN_STATE_RUNNING  # its runs never finish: delivery is away
        )

    async def test_a_time_in_the_past_is_refused_and_nothing_is_stored(self, deployment):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await deployment.create(at(START - timedelta(minutes=1)), request_id="past")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(refused.value) == "TIME_IN_PAST"
        assert field(refused.value) == "schedule.at"
        listed = await deployment.stub.ListCampaigns(pb.ListCampaignsRequest(), metadata=deployment.auth)
        assert list(listed.campaigns) == []

    async def test_a_campaign_without_schedule_is_a_draft_that_never_runs_by_itself(
        self, deployment
    ):
        campaign = await deployment.create(None)
        assert campaign.state == campaign_pb2.CAMPAIGN_STATE_DRAFT
        # A campaign due at the same time: once it ran, the scheduler has looked.
        barrier = await deployment.create(at(START + timedelta(days=30)))
        await deployment.move_to(START + timedelta(days=30), barrier.campaign_id, 1)
        assert await deployment.runs(campaign.campaign_id) == []


class TestRecurring:
    async def test_a_daily_local_time_runs_once_a_day_across_the_spring_change(self, deployment):
        # 09:00 in Berlin: 08:00 UTC in winter, 07:00 UTC from 2027-03-28.
        campaign = await deployment.create(
            recurring("FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0", "Europe/Berlin")
        )
        expected = [
            datetime(2027, 3, 26, 8, tzinfo=UTC),
            datetime(2027, 3, 27, 8, tzinfo=UTC),
            datetime(2027, 3, 28, 7, tzinfo=UTC),
            datetime(2027, 3, 29, 7, tzinfo=UTC),
        ]
        deployment.clock.advance(days=25)  # to 2027-03-26 06:00 UTC: days passed unwatched
        await deployment.move_to(deployment.clock.now(), campaign.campaign_id, 1)
        before = len(await deployment.runs(campaign.campaign_id))
        for count, moment in enumerate(expected, start=before + 1):
            runs = await deployment.move_to(moment, campaign.campaign_id, count)
        assert run_times(runs)[-4:] == expected
        assert len(set(run_times(runs))) == len(runs)

    async def test_the_seventh_of_each_month_set_on_the_20th_first_runs_next_month(
        self, deployment
    ):
        deployment.clock.advance(days=19)  # 2027-03-20
        campaign = await deployment.create(
            recurring("FREQ=MONTHLY;BYMONTHDAY=7;BYHOUR=10;BYMINUTE=0;BYSECOND=0")
        )
        assert campaign.next_run_time.ToDatetime(UTC) == datetime(2027, 4, 7, 10, tzinfo=UTC)
        runs = await deployment.move_to(datetime(2027, 5, 7, 10, tzinfo=UTC), campaign.campaign_id, 1)
        # The scheduler was not watching on 7 April: only the latest occurrence ran.
        assert run_times(runs) == [datetime(2027, 5, 7, 10, tzinfo=UTC)]
        missed = (await deployment.get(campaign.campaign_id)).missed_occurrences
        assert [(m.occurrence_time.ToDatetime(UTC), m.reason) for m in missed] == [
            (datetime(2027, 4, 7, 10, tzinfo=UTC), campaign_pb2.MISSED_REASON_SUPERSEDED)
        ]

    async def test_an_end_time_completes_the_campaign(self, deployment):
        campaign = await deployment.create(
            recurring(
                "FREQ=DAILY;BYHOUR=12;BYMINUTE=0;BYSECOND=0",
                end_time=START + timedelta(days=2, hours=12),
            )
        )
        for count in (1, 2, 3):
            runs = await deployment.move_to(
                START.replace(hour=12) + timedelta(days=count - 1), campaign.campaign_id, count
            )
        assert len(runs) == 3
        assert (await deployment.get(campaign.campaign_id)).state == (
            campaign_pb2.CAMPAIGN_STATE_RUNNING  # its runs never finish: delivery is away
        )

    async def test_a_rule_that_never_fires_is_refused(self, deployment):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await deployment.create(
                recurring("FREQ=DAILY;COUNT=3", start_time=START - timedelta(days=10))
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(refused.value) == "NEVER_FIRES"
        assert field(refused.value) == "schedule.recurrence.rule"


class TestLifecycle:
    async def test_paused_occurrences_are_missed_and_resume_continues_from_now(self, deployment):
        campaign = await deployment.create(recurring("FREQ=DAILY;BYHOUR=10;BYMINUTE=0;BYSECOND=0"))
        first = await deployment.move_to(START.replace(hour=10), campaign.campaign_id, 1)
        assert len(first) == 1

        paused = await deployment.stub.PauseCampaign(
            pb.PauseCampaignRequest(campaign_id=campaign.campaign_id), metadata=deployment.auth
        )
        assert paused.campaign.state == campaign_pb2.CAMPAIGN_STATE_PAUSED
        assert not paused.campaign.HasField("next_run_time")
        await deployment.move_to(START.replace(hour=11) + timedelta(days=2), campaign.campaign_id, 1)
        got = await eventually(
            lambda: deployment.get(campaign.campaign_id),
            lambda c: len(c.missed_occurrences) == 2,
            what="two missed occurrences",
        )
        assert {m.reason for m in got.missed_occurrences} == {campaign_pb2.MISSED_REASON_PAUSED}
        assert len(await deployment.runs(campaign.campaign_id)) == 1

        resumed = await deployment.stub.ResumeCampaign(
            pb.ResumeCampaignRequest(campaign_id=campaign.campaign_id), metadata=deployment.auth
        )
        assert resumed.campaign.state == campaign_pb2.CAMPAIGN_STATE_SCHEDULED
        assert resumed.campaign.next_run_time.ToDatetime(UTC) == START.replace(hour=10) + timedelta(days=3)
        runs = await deployment.move_to(
            START.replace(hour=10) + timedelta(days=3), campaign.campaign_id, 2
        )
        assert run_times(runs)[-1] == START.replace(hour=10) + timedelta(days=3)

    async def test_a_cancelled_campaign_starts_nothing_more_and_cannot_be_rescheduled(
        self, deployment
    ):
        campaign = await deployment.create(recurring("FREQ=HOURLY"))
        cancelled = await deployment.stub.CancelCampaign(
            pb.CancelCampaignRequest(campaign_id=campaign.campaign_id), metadata=deployment.auth
        )
        assert cancelled.campaign.state == campaign_pb2.CAMPAIGN_STATE_CANCELLED
        again = await deployment.stub.CancelCampaign(
            pb.CancelCampaignRequest(campaign_id=campaign.campaign_id), metadata=deployment.auth
        )
        assert again.campaign.state == campaign_pb2.CAMPAIGN_STATE_CANCELLED
        barrier = await deployment.create(at(START + timedelta(hours=5)))
        await deployment.move_to(START + timedelta(hours=5), barrier.campaign_id, 1)
        assert await deployment.runs(campaign.campaign_id) == []

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await deployment.stub.UpdateCampaign(
                pb.UpdateCampaignRequest(
                    campaign=campaign_pb2.Campaign(
                        campaign_id=campaign.campaign_id, schedule=recurring("FREQ=DAILY")
                    ),
                    update_mask=FieldMask(paths=["schedule"]),
                ),
                metadata=deployment.auth,
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason(refused.value) == "CAMPAIGN_CANCELLED"
        with pytest.raises(grpc.aio.AioRpcError) as not_paused:
            await deployment.stub.ResumeCampaign(
                pb.ResumeCampaignRequest(campaign_id=campaign.campaign_id), metadata=deployment.auth
            )
        assert not_paused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    async def test_a_new_schedule_applies_from_now_and_keeps_started_runs(self, deployment):
        campaign = await deployment.create(at(START + timedelta(hours=1)))
        await deployment.move_to(START + timedelta(hours=1), campaign.campaign_id, 1)
        updated = await deployment.stub.UpdateCampaign(
            pb.UpdateCampaignRequest(
                campaign=campaign_pb2.Campaign(
                    campaign_id=campaign.campaign_id, schedule=at(START + timedelta(hours=5))
                ),
                update_mask=FieldMask(paths=["schedule"]),
            ),
            metadata=deployment.auth,
        )
        assert updated.campaign.state == campaign_pb2.CAMPAIGN_STATE_SCHEDULED
        runs = await deployment.move_to(START + timedelta(hours=5), campaign.campaign_id, 2)
        assert run_times(runs) == [START + timedelta(hours=1), START + timedelta(hours=5)]

    async def test_a_caller_cannot_use_the_request_ids_of_scheduled_runs(self, deployment):
        campaign = await deployment.create(None)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await deployment.stub.SendCampaignNow(
                pb.SendCampaignNowRequest(
                    campaign_id=campaign.campaign_id, request_id="clarion:schedule:x"
                ),
                metadata=deployment.auth,
            )
        assert reason(refused.value) == "RESERVED_REQUEST_ID"


class TestReplicasAndRestarts:
    async def test_two_replicas_start_each_occurrence_once(self, deployment_settings):
        clock = FrozenClock(START)
        async with campaign_server(deployment_settings, clock), campaign_server(
            deployment_settings, clock
        ) as second:
            site = await create_site(deployment_settings, "Two replicas", "mailto:ops@two.test")
            async with client_channel(second.address) as channel:
                deployment = Deployment(deployment_settings, clock, Stub(channel), bearer(site.api_key))
                campaigns = [
                    await deployment.create(recurring("FREQ=HOURLY;BYMINUTE=0;BYSECOND=0"))
                    for _ in range(5)
                ]
                for hour in range(1, 7):
                    moment = START + timedelta(hours=hour)
                    for campaign in campaigns:
                        await deployment.move_to(moment, campaign.campaign_id, hour)
                for campaign in campaigns:
                    runs = await deployment.runs(campaign.campaign_id)
                    assert run_times(runs) == [START + timedelta(hours=h) for h in range(1, 7)]

    async def test_a_scheduler_that_was_down_starts_the_latest_due_occurrence_on_restart(
        self, deployment_settings
    ):
        clock = FrozenClock(START)
        async with campaign_server(deployment_settings, clock) as server:
            site = await create_site(deployment_settings, "Restarted", "mailto:ops@restart.test")
            auth = bearer(site.api_key)
            async with client_channel(server.address) as channel:
                campaign = (
                    await Stub(channel).CreateCampaign(
                        pb.CreateCampaignRequest(
                            notification=common_pb2.Notification(
                                title="Daily", target_url="https://shop.example/"
                            ),
                            schedule=recurring("FREQ=DAILY;BYHOUR=8;BYMINUTE=0;BYSECOND=0"),
                        ),
                        metadata=auth,
                    )
                ).campaign
        # Every replica down for three occurrences.
        clock.advance(days=3, hours=3)
        async with campaign_server(deployment_settings, clock) as server:
            async with client_channel(server.address) as channel:
                deployment = Deployment(deployment_settings, clock, Stub(channel), auth)
                runs = await deployment.move_to(clock.now(), campaign.campaign_id, 1)
                assert run_times(runs) == [START + timedelta(days=3, hours=3)]
                got = await deployment.get(campaign.campaign_id)
                assert [m.occurrence_time.ToDatetime(UTC) for m in got.missed_occurrences] == [
                    START.replace(hour=8) + timedelta(days=2),
                    START.replace(hour=8) + timedelta(days=1),
                    START.replace(hour=8),
                ]
                assert got.next_run_time.ToDatetime(UTC) == START.replace(hour=8) + timedelta(days=4)

    @pytest.mark.parametrize(
        ("fields", "latest_reason", "state"),
        [
            # A run at day 3's 08:00 would have had until 09:00 to send: too late at 09:00.
            (
                {"timing": campaign_pb2.SendTiming(cut_off_after_seconds=3600)},
                campaign_pb2.MISSED_REASON_CUT_OFF,
                campaign_pb2.CAMPAIGN_STATE_SCHEDULED,
            ),
            # The schedule ended on day 2 at 18:00, after its last occurrence (08:00).
            (
                {"end_time": START + timedelta(days=2, hours=12)},
                campaign_pb2.MISSED_REASON_ENDED,
                campaign_pb2.CAMPAIGN_STATE_COMPLETED,
            ),
        ],
        ids=["past_its_cut_off", "past_the_schedule_end"],
    )
    async def test_an_occurrence_too_late_on_restart_is_missed_with_the_reason(
        self, deployment_settings, fields, latest_reason, state
    ):
        clock = FrozenClock(START)
        rule = "FREQ=DAILY;BYHOUR=8;BYMINUTE=0;BYSECOND=0"
        end = fields.get("end_time")
        schedule = recurring(rule, end_time=end) if end else recurring(rule)
        async with campaign_server(deployment_settings, clock) as server:
            site = await create_site(deployment_settings, "Late", "mailto:ops@late.test")
            auth = bearer(site.api_key)
            async with client_channel(server.address) as channel:
                campaign = (
                    await Stub(channel).CreateCampaign(
                        pb.CreateCampaignRequest(
                            notification=common_pb2.Notification(
                                title="Daily", target_url="https://shop.example/"
                            ),
                            schedule=schedule,
                            timing=fields.get("timing"),
                        ),
                        metadata=auth,
                    )
                ).campaign
        clock.advance(days=3, hours=3)  # day 3, 09:00
        async with campaign_server(deployment_settings, clock) as server:
            async with client_channel(server.address) as channel:
                deployment = Deployment(deployment_settings, clock, Stub(channel), auth)
                got = await eventually(
                    lambda: deployment.get(campaign.campaign_id),
                    lambda c: len(c.missed_occurrences) > 0,
                    timeout=15,
                    what="the missed occurrences",
                )
                latest = START.replace(hour=8) + timedelta(days=3 if end is None else 2)
                assert (
                    got.missed_occurrences[0].occurrence_time.ToDatetime(UTC),
                    got.missed_occurrences[0].reason,
                ) == (latest, latest_reason)
                assert {m.reason for m in got.missed_occurrences[1:]} == {
                    campaign_pb2.MISSED_REASON_SUPERSEDED
                }
                assert got.state == state
                assert await deployment.runs(campaign.campaign_id) == []


class TestTheCli:
    """`clarion campaign create FILE` reads `schedule:`; `campaign show` words it."""

    def test_reads_a_time_written_without_quotes_and_a_recurrence(self, tmp_path):
        once = tmp_path / "once.yaml"
        once.write_text("notification: {title: Hi}\nschedule:\n  at: 2027-01-04T09:00:00Z\n")
        weekly = tmp_path / "weekly.yaml"
        weekly.write_text(
            "notification: {title: Hi}\nschedule:\n  recurrence:\n"
            "    rule: FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0\n    timezone: Europe/Berlin\n"
        )

        request, _ = read_campaign_file(str(once))
        assert request.schedule.at.ToDatetime(UTC) == datetime(2027, 1, 4, 9, tzinfo=UTC)
        request, _ = read_campaign_file(str(weekly))
        assert request.schedule.recurrence.rule == "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
        assert request.schedule.recurrence.timezone == "Europe/Berlin"

    def test_show_words_the_schedule(self):
        assert schedule_words(campaign_pb2.Campaign()).startswith("none")
        assert schedule_words(
            campaign_pb2.Campaign(schedule=at(datetime(2027, 1, 4, 9, tzinfo=UTC)))
        ) == "once, at 2027-01-04 09:00:00 UTC"
        assert schedule_words(
            campaign_pb2.Campaign(schedule=recurring("FREQ=DAILY", "Europe/Paris"))
        ) == "FREQ=DAILY (Europe/Paris)"

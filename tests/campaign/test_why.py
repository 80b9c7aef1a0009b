"""ExplainRecipient and `clarion why` through real campaign, segment, delivery and
reporting servers and the push-service simulator, on a deployment (database) of its own.

For a person and a run (or a campaign's runs): targeted with delivery's outcome, its
sentence, each attempt (the simulator's 201 or 410) and what reporting recorded (a view
and a click on a button), or the reason it was not (joined after the run, unsubscribed
before it, a test send to others, unknown, not in the audience, unreachable); and what
`clarion why` prints of it. The reasons the deployment cannot set up cheaply (a variant
test's sample, no push keys) are checked on the domain with fakes.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import grpc
import pytest

from clarion import cli
from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2_grpc
from clarion.campaign.v1 import campaign_service_pb2 as pb
from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import (
    reporting_internal_service_pb2,
    reporting_internal_service_pb2_grpc,
    reporting_pb2,
)
from clarion.segment.v1 import (
    profile_pb2,
    segment_service_pb2,
    segment_service_pb2_grpc,
    subscriber_pb2,
)
from clarion.simulator import Behaviour, PushServiceSimulator
from clarion.simulator.model import SimulatedSubscription
from services.campaign.admin import create_site
from services.campaign.domain.outcomes import EXPLANATIONS
from services.campaign.domain.ports import SubscriberView
from services.campaign.domain.why import SENTENCES, Explanation, NotTargeted, RecipientExplainer
from services.campaign.store import RunProgress, RunRecord, RunState, Urgency
from services.campaign.wire import timestamp
from services.kit.config import Settings
from services.kit.grpcserver import ManagedServer, client_channel
from tests.campaign.helpers import (
    Metadata,
    Stub,
    eventually,
    internal,
    new_campaign,
    reason,
    send_now,
)
from tests.campaign.test_send_now import peer_settings, wait_until_finished
from tests.support.sites import bearer

R = campaign_pb2
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def register(
    settings: Settings, site_id: str, subscription: SimulatedSubscription, profile_id: str = ""
) -> str:
    async with client_channel(settings.segment_address) as channel:
        response = await segment_service_pb2_grpc.SegmentServiceStub(channel).RegisterSubscriber(
            segment_service_pb2.RegisterSubscriberRequest(
                push_subscription=common_pb2.PushSubscription(
                    endpoint=subscription.endpoint,
                    p256dh=subscription.p256dh,
                    auth=subscription.auth,
                ),
                browser=common_pb2.BROWSER_CHROME,
                timezone="UTC",
                profile_id=profile_id,
            ),
            metadata=internal(settings, site_id),
            timeout=30,
        )
        return response.subscriber.subscriber_id


async def segment_call(settings: Settings, site_id: str, method: str, request: object) -> object:
    async with client_channel(settings.segment_address) as channel:
        stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
        return await getattr(stub, method)(
            request, metadata=internal(settings, site_id), timeout=30
        )


async def record_engagement(
    settings: Settings, site_id: str, *events: reporting_pb2.EngagementEvent
) -> None:
    """What the gateway hands reporting when the service worker reports a view or click."""
    async with client_channel(settings.reporting_address) as channel:
        await reporting_internal_service_pb2_grpc.ReportingInternalServiceStub(
            channel
        ).RecordEngagementEvents(
            reporting_internal_service_pb2.RecordEngagementEventsRequest(events=list(events)),
            metadata=internal(settings, site_id),
            timeout=30,
        )


async def explain(
    stub: Stub, auth: Metadata, **scope_and_person: str
) -> list[R.RecipientExplanation]:
    response = await stub.ExplainRecipient(
        pb.ExplainRecipientRequest(**scope_and_person), metadata=auth, timeout=30
    )
    return list(response.explanations)


async def explain_one(
    stub: Stub, auth: Metadata, run_id: str, subscriber_id: str
) -> R.RecipientExplanation:
    (one,) = await explain(stub, auth, run_id=run_id, subscriber_id=subscriber_id)
    return one


def cli_json(out: str) -> object:
    """The JSON document the CLI printed. The servers run in this process and may log to
    the same stdout meanwhile (a retry warning under load), so it is read from where the
    document starts rather than from the first character."""
    lines = out.splitlines(keepends=True)
    first = next(n for n, line in enumerate(lines) if line.startswith(("[", "{")))
    document, _ = json.JSONDecoder().raw_decode("".join(lines[first:]))
    return document


# A line the in-process servers logged while the CLI printed (a retry warning under load).
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def cli_text(out: str) -> str:
    """What the CLI printed, without the servers' log lines that shared its stdout."""
    return "".join(line for line in out.splitlines(keepends=True) if not _LOG_LINE.match(line))


async def refused(stub: Stub, auth: Metadata, **fields: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await explain(stub, auth, **fields)
    return caught.value


@pytest.mark.slow
class TestExplainRecipient:
    async def test_targeted_or_why_not_for_each_person_and_run(
        self,
        settings_factory: Callable[..., Settings],
        start_service,  # type: ignore[no-untyped-def]
        simulator: PushServiceSimulator,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        settings = peer_settings(settings_factory)
        servers: dict[str, ManagedServer] = {}
        for name in ("segment", "reporting", "delivery", "campaign"):
            servers[name] = await start_service(name, settings)
        site = await create_site(settings, "Why", "mailto:ops@example.com")
        other = await create_site(settings, "Someone else", "mailto:ops@example.com")
        auth = bearer(site.api_key)
        fine, gone, leaver, tester, pat_phone, pat_laptop, late = (
            simulator.mint_subscription() for _ in range(7)
        )
        simulator.set_behaviour(gone.endpoint, Behaviour(status=410))
        sid = {}
        for name, subscription, profile in (
            ("fine", fine, ""), ("gone", gone, ""), ("leaver", leaver, ""),
            ("tester", tester, "tester-ann"), ("pat_phone", pat_phone, "pat"),
            ("pat_laptop", pat_laptop, "pat"),
        ):  # fmt: skip
            sid[name] = await register(settings, site.site_id, subscription, profile)
        await segment_call(
            settings, site.site_id, "UpsertProfiles",
            segment_service_pb2.UpsertProfilesRequest(
                updates=[profile_pb2.ProfileUpdate(profile_id="tester-ann", test_profile=True)]
            ),
        )  # fmt: skip
        await segment_call(
            settings, site.site_id, "UnsubscribeSubscriber",
            segment_service_pb2.UnsubscribeSubscriberRequest(
                subscriber_id=sid["leaver"], reason="user"
            ),
        )  # fmt: skip

        async with client_channel(settings.campaign_address) as channel:
            stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            campaign = await new_campaign(stub, auth, title="Why not")
            first = await wait_until_finished(
                stub, auth, (await send_now(stub, auth, campaign.campaign_id)).run_id
            )
            await asyncio.sleep(0.01)
            sid["late"] = await register(settings, site.site_id, late)
            # Delivery prunes the 410 subscriber with segment before the next run starts.
            await eventually(
                lambda: segment_call(
                    settings,
                    site.site_id,
                    "GetSubscriber",
                    segment_service_pb2.GetSubscriberRequest(subscriber_id=sid["gone"]),
                ),  # fmt: skip
                lambda r: r.subscriber.state == subscriber_pb2.SUBSCRIBER_STATE_UNSUBSCRIBED,  # type: ignore[attr-defined]
                what="the gone subscriber unsubscribed",
            )
            second = await wait_until_finished(
                stub, auth, (await send_now(stub, auth, campaign.campaign_id)).run_id
            )
            test_run = (
                await stub.SendTestCampaign(
                    pb.SendTestCampaignRequest(campaign_id=campaign.campaign_id),
                    metadata=auth,
                    timeout=30,
                )
            ).run
            test_run = await wait_until_finished(stub, auth, test_run.run_id)
            listed = await stub.CreateCampaign(
                pb.CreateCampaignRequest(
                    notification=common_pb2.Notification(
                        title="Just you", target_url="https://a.example/"
                    )
                ),
                metadata=auth,
            )
            only_fine = await stub.SendCampaignNow(
                pb.SendCampaignNowRequest(
                    campaign_id=listed.campaign.campaign_id,
                    recipients=pb.Recipients(subscriber_ids=[sid["fine"]]),
                ),
                metadata=auth,
            )
            only_fine_run = await wait_until_finished(stub, auth, only_fine.run.run_id)

            # The browser showed the push, then its "buy" button was clicked.
            viewed_at, clicked_at = START, START + timedelta(seconds=30)
            await record_engagement(
                settings, site.site_id,
                reporting_pb2.EngagementEvent(
                    run_id=first.run_id, campaign_id=campaign.campaign_id,
                    subscriber_id=sid["fine"], kind=common_pb2.ENGAGEMENT_KIND_VIEWED,
                    occur_time=timestamp(viewed_at),
                ),
                reporting_pb2.EngagementEvent(
                    run_id=first.run_id, campaign_id=campaign.campaign_id,
                    subscriber_id=sid["fine"], kind=common_pb2.ENGAGEMENT_KIND_CLICKED,
                    button="buy", occur_time=timestamp(clicked_at),
                ),
            )  # fmt: skip
            sent = await eventually(
                lambda: explain_one(stub, auth, first.run_id, sid["fine"]),
                lambda e: e.HasField("clicked_time"),
                what="the click recorded",
            )
            no_activity = await explain_one(stub, auth, second.run_id, sid["fine"])
            failed = await explain_one(stub, auth, first.run_id, sid["gone"])
            unsubscribed = await explain_one(stub, auth, first.run_id, sid["leaver"])
            joined_after = await explain_one(stub, auth, first.run_id, sid["late"])
            pruned = await explain_one(stub, auth, second.run_id, sid["gone"])
            test_only = await explain_one(stub, auth, test_run.run_id, sid["fine"])
            tester_got_it = await explain_one(stub, auth, test_run.run_id, sid["tester"])
            nobody = await explain_one(stub, auth, first.run_id, "sub_nobody")
            not_listed = await explain_one(stub, auth, only_fine_run.run_id, sid["pat_phone"])
            pat = await explain(stub, auth, run_id=first.run_id, profile_id="pat")
            late_runs = await explain(
                stub, auth, campaign_id=campaign.campaign_id, subscriber_id=sid["late"]
            )
            runs = await stub.ListRuns(
                pb.ListRunsRequest(campaign_id=campaign.campaign_id), metadata=auth
            )

            no_run = await refused(stub, auth, run_id="run_nope", subscriber_id=sid["fine"])
            theirs = await refused(
                stub, bearer(other.api_key), run_id=first.run_id, subscriber_id=sid["fine"]
            )
            no_campaign = await refused(
                stub, auth, campaign_id="cmp_nope", subscriber_id=sid["fine"]
            )
            no_profile = await refused(stub, auth, run_id=first.run_id, profile_id="nobody")
            no_person = await refused(stub, auth, run_id=first.run_id)
            no_scope = await refused(stub, auth, subscriber_id=sid["fine"])

            # `clarion why` prints the block (a thread: the CLI's gRPC client blocks).
            key = ["--api-key", site.api_key, "--campaign-address", settings.campaign_address]
            capsys.readouterr()
            code = await asyncio.to_thread(
                cli.main, ["why", "--run", first.run_id, "--subscriber", sid["gone"], *key]
            )
            printed_failed = cli_text(capsys.readouterr().out)
            await asyncio.to_thread(
                cli.main, ["why", "--run", first.run_id, "--subscriber", sid["fine"], *key]
            )
            printed_sent = cli_text(capsys.readouterr().out)
            await asyncio.to_thread(
                cli.main, ["why", "--run", first.run_id, "--subscriber", sid["late"], *key]
            )
            printed_late = cli_text(capsys.readouterr().out)
            await asyncio.to_thread(
                cli.main,
                ["why", "--campaign", campaign.campaign_id, "--profile", "pat", "--json", *key],
            )
            printed_json = cli_json(capsys.readouterr().out)

            # A peer down: UNAVAILABLE naming it, never INTERNAL.
            await servers["delivery"].stop()
            down = await refused(stub, auth, run_id=first.run_id, subscriber_id=sid["fine"])

        assert (sent.run_id, sent.subscriber_id, sent.targeted) == (first.run_id, sid["fine"], True)
        assert (sent.status, sent.reason) == (
            R.RECIPIENT_STATUS_SENT,
            common_pb2.DELIVERY_REASON_UNSPECIFIED,
        )
        assert (
            sent.explanation == "the push service accepted the message for the subscriber's browser"
        )
        assert (
            sent.HasField("finish_time")
            and sent.not_targeted_reason == R.NOT_TARGETED_REASON_UNSPECIFIED
        )
        assert sent.run_start_time == first.create_time
        (attempt,) = sent.attempts
        assert (attempt.http_status, attempt.reason) == (
            201,
            common_pb2.DELIVERY_REASON_UNSPECIFIED,
        )
        assert attempt.push_service == urlsplit(fine.endpoint).hostname
        assert first.create_time.ToDatetime() <= attempt.attempt_time.ToDatetime()
        assert attempt.attempt_time.ToDatetime() <= sent.finish_time.ToDatetime()
        assert sent.viewed_time.ToDatetime(tzinfo=UTC) == viewed_at
        assert sent.clicked_time.ToDatetime(tzinfo=UTC) == clicked_at
        assert sent.clicked_button == "buy" and not sent.HasField("closed_time")
        assert (sent.conversions, sent.revenue) == (0, 0.0)
        # Reporting has recorded no view, click or conversion of the second run.
        assert no_activity.targeted and no_activity.status == R.RECIPIENT_STATUS_SENT
        assert not no_activity.HasField("viewed_time") and not no_activity.HasField("clicked_time")

        assert (failed.targeted, failed.status, failed.reason) == (
            True, R.RECIPIENT_STATUS_FAILED, common_pb2.DELIVERY_REASON_PUSH_SERVICE_410,
        )  # fmt: skip
        assert failed.explanation == EXPLANATIONS["push_service_410"]
        assert [(a.http_status, a.reason) for a in failed.attempts] == [
            (410, common_pb2.DELIVERY_REASON_PUSH_SERVICE_410)
        ]

        def why_not(e: R.RecipientExplanation) -> tuple[bool, int]:
            return (e.targeted, e.not_targeted_reason)

        assert why_not(unsubscribed) == (False, R.NOT_TARGETED_REASON_UNSUBSCRIBED)
        assert "unsubscribed before the run" in unsubscribed.explanation
        assert why_not(joined_after) == (False, R.NOT_TARGETED_REASON_JOINED_AFTER_RUN)
        assert "subscribed after the run started" in joined_after.explanation
        # Pruned by delivery after a 410 before the second run: the push service said gone.
        assert why_not(pruned) == (False, R.NOT_TARGETED_REASON_UNREACHABLE)
        assert why_not(test_only) == (False, R.NOT_TARGETED_REASON_TEST_SEND_ONLY)
        assert (tester_got_it.targeted, tester_got_it.status) == (True, R.RECIPIENT_STATUS_SENT)
        assert why_not(nobody) == (False, R.NOT_TARGETED_REASON_UNKNOWN_SUBSCRIBER)
        assert why_not(not_listed) == (False, R.NOT_TARGETED_REASON_NOT_IN_SEGMENT)
        assert (
            not unsubscribed.HasField("finish_time")
            and unsubscribed.status == R.RECIPIENT_STATUS_UNSPECIFIED
        )

        assert [(e.run_id, e.subscriber_id) for e in pat] == [
            (first.run_id, sid["pat_phone"]), (first.run_id, sid["pat_laptop"])
        ]  # fmt: skip
        assert all(e.targeted and e.status == R.RECIPIENT_STATUS_SENT for e in pat)

        newest_first = [r.run_id for r in runs.runs]
        assert newest_first == [test_run.run_id, second.run_id, first.run_id]
        assert [e.run_id for e in late_runs] == newest_first
        assert [why_not(e) for e in late_runs] == [
            (False, R.NOT_TARGETED_REASON_TEST_SEND_ONLY),
            (True, R.NOT_TARGETED_REASON_UNSPECIFIED),
            (False, R.NOT_TARGETED_REASON_JOINED_AFTER_RUN),
        ]

        for error, code_, why in (
            (no_run, grpc.StatusCode.NOT_FOUND, "RUN_NOT_FOUND"),
            (theirs, grpc.StatusCode.NOT_FOUND, "RUN_NOT_FOUND"),
            (no_campaign, grpc.StatusCode.NOT_FOUND, "CAMPAIGN_NOT_FOUND"),
            (no_profile, grpc.StatusCode.NOT_FOUND, "PROFILE_NOT_FOUND"),
            (no_person, grpc.StatusCode.INVALID_ARGUMENT, "MISSING_PERSON"),
            (no_scope, grpc.StatusCode.INVALID_ARGUMENT, "MISSING_SCOPE"),
            (down, grpc.StatusCode.UNAVAILABLE, "DELIVERY_UNAVAILABLE"),
        ):
            assert (error.code(), reason(error)) == (code_, why), error
        assert "subscriber_id" in (no_person.details() or "")
        assert "run_id" in (no_scope.details() or "")
        assert "delivery" in (down.details() or "")

        assert code == 0
        lines = printed_failed.splitlines()
        assert lines[0].startswith(f"run {first.run_id} (started ") and lines[0].endswith(
            sid["gone"]
        )
        fields = dict(line.split(maxsplit=1) for line in lines[1:] if not line.startswith(" "))
        assert fields["targeted"] == "yes"
        assert fields["final"] == "failed (push_service_410)"
        assert fields["why"] == EXPLANATIONS["push_service_410"]
        assert (fields["viewed"], fields["clicked"], fields["closed"]) == ("-", "-", "-")
        assert fields["conversions"] == "0 (revenue 0.00)"
        assert fields["attempts"] == "1"
        (row,) = [line.split() for line in lines if line.startswith("  ") and "UTC" in line]
        assert row[-3:] == [urlsplit(gone.endpoint).hostname, "410", "push_service_410"]
        shown = dict(
            line.split(maxsplit=1)
            for line in printed_sent.splitlines()[1:]
            if not line.startswith(" ")
        )
        assert shown["final"] == "sent"
        assert shown["viewed"] == "2026-12-01 09:00:00 UTC"
        assert shown["clicked"] == "2026-12-01 09:00:30 UTC (button buy)"
        (row,) = [
            line.split()
            for line in printed_sent.splitlines()
            if line.startswith("  ") and "UTC" in line
        ]
        assert row[-2:] == ["201", "accepted"]
        assert "targeted     no (joined_after_run)" in printed_late
        assert [(e["run_id"], e["subscriber_id"]) for e in printed_json] == [
            (run_id, subscriber) for run_id in newest_first
            for subscriber in (sid["pat_phone"], sid["pat_laptop"])
        ]  # fmt: skip


def _run(**fields: object) -> RunRecord:
    values: dict[str, object] = {
        "run_id": "run_1",
        "site_id": "site_1",
        "campaign_id": "cmp_1",
        "state": RunState.DONE,
        "failure_reason": "",
        "progress": RunProgress(),
        "payload": b"",
        "ttl_seconds": 60,
        "urgency": Urgency.NORMAL,
        "handoff_pending": False,
        "create_time": START,
        "finish_time": START + timedelta(minutes=1),
    }
    return RunRecord(**(values | fields))  # type: ignore[arg-type]


def _subscriber(**fields: object) -> SubscriberView:
    values: dict[str, object] = {
        "subscriber_id": "sub_1",
        "active": True,
        "reachable": True,
        "unsubscribe_reason": "",
        "create_time": START - timedelta(days=1),
        "update_time": START - timedelta(days=1),
    }
    return SubscriberView(**(values | fields))  # type: ignore[arg-type]


class _Fakes:
    """The store and peers as `why` uses them: one run, one subscriber, no outcome."""

    def __init__(self, run: RunRecord, subscriber: SubscriberView | None) -> None:
        self.run = run
        self.found = subscriber
        self.subscriber_calls = 0

    async def get_run(self, site_id: str, run_id: str) -> RunRecord | None:
        return self.run if run_id == self.run.run_id else None

    async def recipient_outcome(self, site_id: str, run_id: str, subscriber_id: str) -> None:
        return None

    async def subscriber(self, site_id: str, subscriber_id: str) -> SubscriberView | None:
        self.subscriber_calls += 1
        return self.found


async def _why_not(run: RunRecord, subscriber: SubscriberView | None) -> Explanation:
    fakes = _Fakes(run, subscriber)
    explainer = RecipientExplainer(fakes, fakes, fakes, fakes)  # type: ignore[arg-type]
    (one,) = await explainer.explain("site_1", run_id=run.run_id, subscriber_id="sub_1")
    return one


class TestWhyNotTargeted:
    """The reason for each case the servers' test cannot set up cheaply."""

    async def test_a_variant_test_share_says_not_in_sample(self) -> None:
        one = await _why_not(_run(sample=(0, 2000)), _subscriber())
        assert (one.targeted, one.not_targeted) == (False, NotTargeted.NOT_IN_SAMPLE)

    async def test_no_push_keys_says_unreachable(self) -> None:
        one = await _why_not(_run(), _subscriber(reachable=False))
        assert one.not_targeted is NotTargeted.UNREACHABLE

    async def test_unsubscribed_after_the_run_started_is_not_the_reason(self) -> None:
        later = START + timedelta(seconds=5)
        one = await _why_not(_run(), _subscriber(active=False, update_time=later))
        assert one.not_targeted is NotTargeted.NOT_IN_SEGMENT

    async def test_a_run_still_resolving_its_audience_says_it_may_change(self) -> None:
        one = await _why_not(_run(finish_time=None, state=RunState.PREPARING), _subscriber())
        assert one.not_targeted is NotTargeted.NOT_IN_SEGMENT
        assert one.sentence.endswith(
            "(the run's audience is still being resolved: this may change)"
        )

    async def test_a_test_send_needs_no_word_from_segment(self) -> None:
        fakes = _Fakes(_run(test=True), None)
        explainer = RecipientExplainer(fakes, fakes, fakes, fakes)  # type: ignore[arg-type]
        (one,) = await explainer.explain("site_1", run_id="run_1", subscriber_id="sub_1")
        assert (one.not_targeted, fakes.subscriber_calls) == (NotTargeted.TEST_SEND_ONLY, 0)

    def test_every_reason_of_the_contract_has_its_sentence(self) -> None:
        names = {n.removeprefix("NOT_TARGETED_REASON_") for n in R.NotTargetedReason.keys()}  # noqa: SIM118
        assert names - {"UNSPECIFIED"} == {reason.name for reason in NotTargeted}
        assert set(SENTENCES) == set(NotTargeted)

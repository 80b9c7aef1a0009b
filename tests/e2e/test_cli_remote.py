"""The operator's CLI against a running deployment: from a campaign file to a report,
with one-line errors when something is wrong. Each command is a real `python -m
clarion` process talking gRPC to the embedded stack."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.demo import register_browsers
from clarion.embedded import EmbeddedStack
from clarion.segment.v1 import profile_pb2, segment_service_pb2, segment_service_pb2_grpc
from clarion.simulator import Behaviour, PushServiceSimulator
from services.campaign.admin import create_site
from services.kit.grpcserver import client_channel

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


async def clarion(stack: EmbeddedStack, api_key: str, *argv: str, env: dict[str, str] | None = None) -> Result:
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CLARION_API_KEY": api_key,
        "CLARION_CAMPAIGN_ADDRESS": stack.address("campaign"),
        "CLARION_REPORTING_ADDRESS": stack.address("reporting"),
        **(env or {}),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clarion", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment, cwd=ROOT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return Result(process.returncode or 0, out.decode(), err.decode())


def one_line_error(result: Result) -> str:
    assert result.code != 0
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


CAMPAIGN_FILE = """\
name: Spring sale
notification:
  title: 20% off today
  body: Everything in the spring collection
  target_url: https://shop.example/sale
ttl_seconds: 86400
urgency: high
"""


class TestFromCampaignFileToReport:
    async def test_create_send_watch_and_report(
        self, stack: EmbeddedStack, simulator: PushServiceSimulator, tmp_path: Path
    ) -> None:
        site = await create_site(stack.settings, "CLI", "mailto:ops@example.com")
        subscriptions = [simulator.mint_subscription() for _ in range(5)]
        async with aiohttp.ClientSession() as session:
            await register_browsers(session, stack.gateway_url, site.site_id, subscriptions)
        (tmp_path / "sale.yaml").write_text(CAMPAIGN_FILE)

        created = await clarion(stack, site.api_key, "campaign", "create", str(tmp_path / "sale.yaml"), "--json")
        assert created.code == 0, created.err
        campaign = json.loads(created.out)
        assert campaign["notification"]["title"] == "20% off today"
        assert campaign["urgency"] == "URGENCY_HIGH"

        listed = await clarion(stack, site.api_key, "campaign", "list")
        assert listed.code == 0 and campaign["campaign_id"] in listed.out and "Spring sale" in listed.out

        sent = await clarion(stack, site.api_key, "campaign", "send", campaign["campaign_id"], "--watch")
        assert sent.code == 0, sent.err
        final = sent.out.strip().splitlines()[-1]
        assert "100%" in final and "done" in final and "sent 5" in final, sent.out

        runs = await clarion(stack, site.api_key, "run", "list", campaign["campaign_id"], "--json")
        (run,) = json.loads(runs.out)
        assert run["state"] == "RUN_STATE_DONE"
        shown = await clarion(stack, site.api_key, "run", "show", run["run_id"])
        assert "sent 5" in shown.out

        report = await clarion(stack, site.api_key, "report", campaign["campaign_id"], "--json")
        assert report.code == 0, report.err
        assert (json.loads(report.out)["sent"], json.loads(report.out)["audience"]) == ("5", "5")
        table = await clarion(stack, site.api_key, "report", campaign["campaign_id"])
        assert any(line.split() == ["sent", "5"] for line in table.out.splitlines()), table.out
        # No conversion goal: none counted, and no variant table without variants.
        assert any(line.split() == ["conversions", "0"] for line in table.out.splitlines())
        assert "VARIANT" not in table.out


class TestOneLineErrors:
    async def test_a_wrong_key_says_so(self, stack: EmbeddedStack) -> None:
        line = one_line_error(await clarion(stack, "ck_not_a_key", "campaign", "list"))
        assert "API key was refused" in line and "CLARION_API_KEY" in line

    async def test_no_key_says_where_to_get_one(self, stack: EmbeddedStack) -> None:
        line = one_line_error(await clarion(stack, "", "run", "list", "cmp_x"))
        assert "CLARION_API_KEY" in line

    async def test_nothing_listening_names_the_variable(self, stack: EmbeddedStack) -> None:
        site = await create_site(stack.settings, "CLI down", "mailto:ops@example.com")
        result = await clarion(
            stack, site.api_key, "campaign", "list", "--timeout", "2",
            env={"CLARION_CAMPAIGN_ADDRESS": "127.0.0.1:1"},
        )  # fmt: skip
        line = one_line_error(result)
        assert "127.0.0.1:1" in line and "CLARION_CAMPAIGN_ADDRESS" in line

    async def test_an_unknown_campaign_is_not_found(self, stack: EmbeddedStack) -> None:
        site = await create_site(stack.settings, "CLI 404", "mailto:ops@example.com")
        line = one_line_error(await clarion(stack, site.api_key, "campaign", "show", "cmp_nope"))
        assert line.startswith("clarion campaign: NOT_FOUND") and "CAMPAIGN_NOT_FOUND" in line

    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            ("name: [unclosed", "not valid YAML or JSON"),
            ("- just\n- a list\n", "must hold one mapping"),
            ("notification:\n  titel: typo\n", "titel"),
        ],
    )
    async def test_a_bad_campaign_file_names_the_problem(
        self, stack: EmbeddedStack, tmp_path: Path, content: str, expected: str
    ) -> None:
        site = await create_site(stack.settings, "CLI file", "mailto:ops@example.com")
        path = tmp_path / "bad.yaml"
        path.write_text(content)
        line = one_line_error(await clarion(stack, site.api_key, "campaign", "create", str(path)))
        assert expected in line

    async def test_a_refused_campaign_names_the_field(self, stack: EmbeddedStack, tmp_path: Path) -> None:
        site = await create_site(stack.settings, "CLI invalid", "mailto:ops@example.com")
        path = tmp_path / "no-title.yaml"
        path.write_text("notification:\n  body: no title\n")
        line = one_line_error(await clarion(stack, site.api_key, "campaign", "create", str(path)))
        assert "INVALID_ARGUMENT" in line and "title" in line


class TestCancelAndWhy:
    async def test_cancel_the_unfinished_runs_then_ask_why(
        self, stack: EmbeddedStack, simulator: PushServiceSimulator, tmp_path: Path
    ) -> None:
        site = await create_site(stack.settings, "CLI cancel", "mailto:ops@example.com")
        fine = [simulator.mint_subscription() for _ in range(3)]
        stuck = [simulator.mint_subscription() for _ in range(2)]
        for subscription in stuck:
            # Never answered: retried with backoff, the run stays unfinished until cancelled.
            simulator.set_behaviour(subscription.endpoint, Behaviour(hang=True))
        async with aiohttp.ClientSession() as session:
            ids = await register_browsers(session, stack.gateway_url, site.site_id, fine + stuck)
        (tmp_path / "sale.yaml").write_text(CAMPAIGN_FILE)
        created = await clarion(stack, site.api_key, "campaign", "create", str(tmp_path / "sale.yaml"), "--json")
        campaign_id = json.loads(created.out)["campaign_id"]
        started = await clarion(stack, site.api_key, "campaign", "send", campaign_id, "--json")
        run_id = json.loads(started.out)["run_id"]
        await self._until_sent(stack, site.api_key, run_id, len(fine))

        cancelled = await clarion(stack, site.api_key, "campaign", "cancel", campaign_id)
        nothing_left = await clarion(stack, site.api_key, "campaign", "cancel", campaign_id)
        again = await clarion(stack, site.api_key, "campaign", "cancel", campaign_id, "--run", run_id, "--json")
        why_stuck = await clarion(stack, site.api_key, "why", "--run", run_id, "--subscriber", ids[3])
        why_fine = await clarion(stack, site.api_key, "why", "--run", run_id, "--subscriber", ids[0], "--json")
        unknown = await clarion(stack, site.api_key, "why", "--run", run_id, "--subscriber", "sub_nobody")
        no_run = await clarion(stack, site.api_key, "why", "--run", "run_nope", "--subscriber", ids[0])
        wrong = await clarion(stack, site.api_key, "campaign", "cancel", "cmp_other", "--run", run_id)

        assert cancelled.code == 0, cancelled.err
        (row,) = [line.split() for line in cancelled.out.splitlines() if line.startswith(run_id)]
        # RUN STATE AUDIENCE SENT FAILED SUPPRESSED EXPIRED FINISHED
        assert row[1:7] == ["cancelled", "5", "3", "0", "2", "0"], cancelled.out
        assert f"campaign {campaign_id} is cancelled" in cancelled.out
        assert "nothing more to cancel" in nothing_left.out
        (run,) = json.loads(again.out)
        assert (run["run_id"], run["state"]) == (run_id, "RUN_STATE_CANCELLED")
        assert (run["progress"]["sent"], run["progress"]["suppressed"]) == ("3", "2")

        assert why_stuck.code == 0, why_stuck.err
        head, *rest = why_stuck.out.splitlines()
        assert head.startswith(f"run {run_id} (started ") and head.endswith(f"subscriber {ids[3]}")
        # FIELD VALUE lines; an attempts table, when delivery lists them, is indented.
        fields = dict(line.split(maxsplit=1) for line in rest if not line.startswith(" "))
        assert (fields["targeted"], fields["final"]) == ("yes", "suppressed (cancelled)")
        assert fields["why"] == "the run was cancelled before this subscriber's message was sent"
        (recipient,) = json.loads(why_fine.out)
        assert (recipient["targeted"], recipient["status"]) == (True, "RECIPIENT_STATUS_SENT")
        assert recipient["subscriber_id"] == ids[0]
        assert unknown.code == 0, unknown.err
        assert "targeted     no (unknown_subscriber)" in unknown.out
        line = one_line_error(no_run)
        assert "NOT_FOUND" in line and "RUN_NOT_FOUND" in line
        assert "cmp_other" in one_line_error(wrong)

    @staticmethod
    async def _until_sent(stack: EmbeddedStack, api_key: str, run_id: str, sent: int) -> None:
        auth = (("authorization", f"Bearer {api_key}"),)
        async with client_channel(stack.address("campaign")) as channel:
            stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
            async with asyncio.timeout(30):
                while True:
                    run = (
                        await stub.GetRun(
                            campaign_service_pb2.GetRunRequest(run_id=run_id), metadata=auth, timeout=10
                        )
                    ).run
                    if run.progress.sent >= sent:
                        return
                    await asyncio.sleep(0.1)


class TestSiteCommands:
    async def test_show_set_subject_and_rotate_the_key(self, stack: EmbeddedStack) -> None:
        site = await create_site(stack.settings, "CLI site", "mailto:ops@example.com")

        shown = await clarion(stack, site.api_key, "site", "show")
        assert shown.code == 0, shown.err
        fields = dict(line.split(maxsplit=1) for line in shown.out.splitlines()[1:])
        assert (fields["site_id"], fields["name"]) == (site.site_id, "CLI site")
        assert fields["vapid_subject"] == "mailto:ops@example.com"

        changed = await clarion(stack, site.api_key, "site", "set-subject", "https://cli.example/contact")
        assert changed.code == 0, changed.err
        assert "https://cli.example/contact" in changed.out
        refused = await clarion(stack, site.api_key, "site", "set-subject", "mailto:ops@printer.local")
        line = one_line_error(refused)
        assert "INVALID_VAPID_SUBJECT" in line and "Apple" in line
        as_json = json.loads((await clarion(stack, site.api_key, "site", "show", "--json")).out)
        assert as_json["vapid_subject"] == "https://cli.example/contact"

        rotated = await clarion(stack, site.api_key, "site", "rotate-api-key", "--export")
        assert rotated.code == 0, rotated.err
        (export,) = rotated.out.splitlines()
        assert export.startswith("export CLARION_API_KEY=ck_")
        new_key = export.removeprefix("export CLARION_API_KEY=")
        assert "shown only this once" in rotated.err and new_key not in rotated.err

        line = one_line_error(await clarion(stack, site.api_key, "site", "show"))
        assert "API key was refused" in line
        again = await clarion(stack, new_key, "site", "show", "--json")
        assert again.code == 0, again.err
        assert json.loads(again.out)["site_id"] == site.site_id

        table = await clarion(stack, new_key, "site", "rotate-api-key")
        assert table.code == 0, table.err
        (newest,) = [line.split()[1] for line in table.out.splitlines() if line.startswith("api_key")]
        assert newest.startswith("ck_") and table.out.count(newest) == 1
        assert one_line_error(await clarion(stack, new_key, "site", "show"))

    async def test_set_policy_changes_only_the_parts_named(self, stack: EmbeddedStack) -> None:
        site = await create_site(stack.settings, "Policy site", "mailto:ops@example.com")

        nothing = one_line_error(await clarion(stack, site.api_key, "site", "set-policy"))
        assert "nothing to change" in nothing
        changed = await clarion(
            stack, site.api_key, "site", "set-policy", "--cap-per-day", "3",
            "--quiet-hours", "22:00-08:00", "--quiet-action", "discard", "--timezone", "Europe/Berlin",
        )  # fmt: skip
        assert changed.code == 0, changed.err
        assert "at most 3 a day per person" in changed.out
        assert "22:00 to 08:00 (pushes due then are discarded)" in changed.out

        # The throttle alone: the cap and quiet hours set before stay.
        throttled = await clarion(stack, site.api_key, "site", "set-policy", "--max-per-minute", "600")
        assert throttled.code == 0, throttled.err
        shown = json.loads((await clarion(stack, site.api_key, "site", "show", "--json")).out)
        policy = shown["delivery_policy"]
        assert policy["frequency_cap"] == {"per_day": 3}
        assert policy["quiet_hours"] == {"start": "22:00", "end": "08:00", "action": "QUIET_HOURS_ACTION_DISCARD"}
        assert policy["max_per_minute"] == 600 and shown["timezone"] == "Europe/Berlin"

        refused = one_line_error(
            await clarion(stack, site.api_key, "site", "set-policy", "--quiet-hours", "22:00-22:00")
        )
        assert "INVALID_QUIET_HOURS" in refused
        malformed = one_line_error(
            await clarion(stack, site.api_key, "site", "set-policy", "--quiet-hours", "22:00")
        )
        assert "START-END" in malformed
        cleared = await clarion(
            stack, site.api_key, "site", "set-policy", "--no-frequency-cap", "--no-quiet-hours", "--json"
        )
        assert cleared.code == 0, cleared.err
        assert json.loads(cleared.out)["delivery_policy"] == {"max_per_minute": 600}

    async def test_list_needs_the_internal_token(self, stack: EmbeddedStack) -> None:
        first = await create_site(stack.settings, "Listed one", "mailto:ops@example.com")
        second = await create_site(stack.settings, "Listed two", "https://two.example/")
        token = {"CLARION_INTERNAL_TOKEN": stack.settings.internal_token_value}

        listed = await clarion(stack, "", "site", "list", env=token)
        assert listed.code == 0, listed.err
        rows = {line.split()[0]: line for line in listed.out.splitlines()[1:]}
        assert "Listed one" in rows[first.site_id] and "https://two.example/" in rows[second.site_id]
        as_json = json.loads((await clarion(stack, "", "site", "list", "--json", env=token)).out)
        assert {first.site_id, second.site_id} <= {s["site_id"] for s in as_json}

        no_token = {"CLARION_INTERNAL_TOKEN": ""}
        unset = one_line_error(await clarion(stack, first.api_key, "site", "list", env=no_token))
        assert "CLARION_INTERNAL_TOKEN" in unset
        a_site_key = await clarion(stack, "", "site", "list", "--internal-token", first.api_key, env=no_token)
        assert "internal token was refused" in one_line_error(a_site_key)
        wrong = await clarion(stack, "", "site", "list", env={"CLARION_INTERNAL_TOKEN": "not-the-token"})
        assert "internal token was refused" in one_line_error(wrong)


class People:
    """Browsers of people (profiles), registered and tracked as a site's backend does."""

    def __init__(self, stack: EmbeddedStack, api_key: str, simulator: PushServiceSimulator) -> None:
        self.auth = (("authorization", f"Bearer {api_key}"),)
        self.simulator = simulator
        self.channel = client_channel(stack.address("segment"))
        self.stub = segment_service_pb2_grpc.SegmentServiceStub(self.channel)
        self.endpoints: dict[str, str] = {}
        self.subscriber_ids: dict[str, str] = {}

    async def browser(self, person: str) -> None:
        subscription = self.simulator.mint_subscription()
        response = await self.stub.RegisterSubscriber(
            segment_service_pb2.RegisterSubscriberRequest(
                push_subscription=common_pb2.PushSubscription(
                    endpoint=subscription.endpoint,
                    p256dh=subscription.p256dh,
                    auth=subscription.auth,
                ),
                browser=common_pb2.BROWSER_CHROME,
                profile_id=person,
            ),
            metadata=self.auth,
            timeout=10,
        )
        self.endpoints[person] = subscription.endpoint
        self.subscriber_ids[person] = response.subscriber.subscriber_id

    async def track(self, person: str, name: str, category: str) -> None:
        occurred = Timestamp()
        occurred.GetCurrentTime()
        event = profile_pb2.Event(
            event_id=f"evt-{person}-{category}-{time.time_ns()}",
            name=name,
            profile_id=person,
            occur_time=occurred,
            properties=[
                profile_pb2.Property(
                    name="category", value=profile_pb2.PropertyValue(string_value=category)
                )
            ],
        )
        response = await self.stub.TrackEvents(
            segment_service_pb2.TrackEventsRequest(events=[event]), metadata=self.auth, timeout=10
        )
        assert response.results[0].ok, response.results[0]

    def pushes(self) -> dict[str, int]:
        return {person: len(self.simulator.messages(e)) for person, e in self.endpoints.items()}

    async def until_pushed(self, expected: dict[str, int]) -> None:
        async with asyncio.timeout(30):
            while self.pushes() != expected:
                await asyncio.sleep(0.1)


LIVE_CAMPAIGN_FILE = """\
name: Abandoned cart
notification:
  title: Still thinking it over?
  body: Your cart is waiting
  target_url: https://shop.example/cart
trigger:
  event: Added To Cart
  where:
    - {property: category, equals: shoes}
  cooldown: 24h
"""


class TestLiveCampaignsAndListedSends:
    async def test_a_live_campaign_from_a_file_is_shown_and_pushes_on_its_event(
        self, stack: EmbeddedStack, simulator: PushServiceSimulator, tmp_path: Path
    ) -> None:
        site = await create_site(stack.settings, "CLI live", "mailto:ops@example.com")
        people = People(stack, site.api_key, simulator)
        for person in ("ana", "ben"):
            await people.browser(person)
        cart = tmp_path / "cart.yaml"
        cart.write_text(LIVE_CAMPAIGN_FILE)

        created = await clarion(stack, site.api_key, "campaign", "create", str(cart), "--json")
        assert created.code == 0, created.err
        campaign = json.loads(created.out)
        campaign_id = campaign["campaign_id"]
        shown = await clarion(stack, site.api_key, "campaign", "show", campaign_id)
        listed = await clarion(stack, site.api_key, "campaign", "list")

        assert campaign["state"] == "CAMPAIGN_STATE_SCHEDULED"
        assert campaign["trigger"]["event_name"] == "Added To Cart"
        assert shown.code == 0, shown.err
        fields = dict(line.split(maxsplit=1) for line in shown.out.splitlines()[1:])
        words = "on Added To Cart where category = shoes; at most once per person per 24 h"
        assert fields["trigger"] == words, shown.out
        assert fields["schedule"] == "none: a live campaign, its trigger starts runs"
        (row,) = [line for line in listed.out.splitlines() if line.startswith(campaign_id)]
        assert row.endswith(words), listed.out

        await people.track("ana", "Added To Cart", "shoes")
        await people.track("ben", "Added To Cart", "hats")  # filtered out
        await people.until_pushed({"ana": 1, "ben": 0})

        # The same file form changes it: only the trigger (update_mask path `trigger`).
        wait = tmp_path / "wait.yaml"
        wait.write_text("trigger:\n  event: Added To Cart\n  unless: {event: Charged, within: 10m}")
        updated = await clarion(stack, site.api_key, "campaign", "update", campaign_id, str(wait))
        assert updated.code == 0, updated.err
        assert updated.out.splitlines()[0] == f"updated {campaign_id}: trigger"
        fields = dict(line.split(maxsplit=1) for line in updated.out.splitlines()[2:])
        assert fields["trigger"] == "on Added To Cart, unless Charged within 10 min"
        assert fields["title"] == "Still thinking it over?"
        await people.channel.close()

    async def test_send_to_a_profile_reaches_exactly_its_browser(
        self, stack: EmbeddedStack, simulator: PushServiceSimulator, tmp_path: Path
    ) -> None:
        site = await create_site(stack.settings, "CLI listed", "mailto:ops@example.com")
        people = People(stack, site.api_key, simulator)
        for person in ("fay", "gus", "hal"):
            await people.browser(person)
        shipped = tmp_path / "shipped.yaml"
        shipped.write_text(
            "notification: {title: Your order shipped, target_url: 'https://shop.example/o'}\n"
        )
        created = await clarion(stack, site.api_key, "campaign", "create", str(shipped), "-q")
        campaign_id = created.out.strip()

        sent = await clarion(
            stack, site.api_key, "campaign", "send", campaign_id, "--profile", "fay", "--watch"
        )

        assert sent.code == 0, sent.err
        final = sent.out.strip().splitlines()[-1]
        assert "done" in final and "sent 1" in final and "of 1" in final, sent.out
        assert people.pushes() == {"fay": 1, "gus": 0, "hal": 0}

        ids = tmp_path / "ids.txt"
        ids.write_text(f"subscriber:{people.subscriber_ids['gus']}\nprofile:nobody\n")
        listed = await clarion(
            stack, site.api_key, "campaign", "send", campaign_id,
            "--recipients-file", str(ids), "--watch",
        )  # fmt: skip
        assert listed.code == 0, listed.err
        assert "sent 1" in listed.out.strip().splitlines()[-1], listed.out
        assert people.pushes() == {"fay": 1, "gus": 1, "hal": 0}
        await people.channel.close()

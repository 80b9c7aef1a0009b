"""What an operator sees from the `clarion` command: one line (what, and what to do) for
a problem they must fix, never a traceback; --version; each command's --help naming the
CLARION_* variables it reads; a quiet start-up once the schema is at head.

The command runs as an operator runs it, in a process of its own (`python -m clarion`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2
from clarion.cli import build_parser
from clarion.common.v1 import common_pb2
from clarion.remote import (
    read_campaign_changes,
    read_campaign_file,
    read_recipients,
    schedule_words,
)
from clarion.segment.v1 import profile_pb2, segment_pb2
from clarion.trigger_file import duration_seconds, trigger_words
from services.delivery.settings import DeliverySettings
from services.kit.config import SERVICE_NAMES, Settings
from services.kit.operator import OperatorError

ROOT = Path(__file__).resolve().parent.parent


def _env(**variables: str) -> dict[str, str]:
    """The environment without any CLARION_* of the caller's, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARION_")}
    env.update({"PYTHONPATH": str(ROOT), "CLARION_LOG_FORMAT": "json", **variables})
    return env


def clarion(*args: str, timeout: float = 120, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clarion", *args],
        cwd=ROOT,
        env=_env(**variables),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The failed command's only stderr line (asserting it is the only one)."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process (this one) listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


class TestPortInUse:
    @pytest.mark.parametrize("service", ["campaign", "delivery", "gateway"])
    def test_serve_names_the_port_and_its_variable(
        self, service: str, taken_port: int, tmp_path: Path
    ) -> None:
        variable = f"CLARION_{service.upper()}_LISTEN"
        result = clarion(
            "serve",
            service,
            CLARION_INTERNAL_TOKEN="t" * 32,
            CLARION_DATA_DIR=str(tmp_path),
            **{variable: f"127.0.0.1:{taken_port}"},
        )
        line = one_line_error(result)
        assert str(taken_port) in line and variable in line and "in use" in line
        # Said before anything else happened: no database was made.
        assert list(tmp_path.iterdir()) == []

    def test_up_names_the_port_and_its_variable(self, taken_port: int, tmp_path: Path) -> None:
        result = clarion(
            "up", "--data-dir", str(tmp_path), CLARION_SEGMENT_LISTEN=f"127.0.0.1:{taken_port}"
        )
        line = one_line_error(result)
        assert str(taken_port) in line and "CLARION_SEGMENT_LISTEN" in line
        assert list(tmp_path.iterdir()) == []

    def test_a_listen_address_that_is_not_host_port_is_named(self, tmp_path: Path) -> None:
        result = clarion(
            "serve", "segment", CLARION_INTERNAL_TOKEN="t", CLARION_SEGMENT_LISTEN="segment"
        )
        line = one_line_error(result)
        assert "CLARION_SEGMENT_LISTEN" in line and "host:port" in line


class TestMissingInternalToken:
    @pytest.mark.parametrize("service", ["reporting", "gateway"])
    def test_serve_says_so_before_touching_the_database(self, service: str, tmp_path: Path) -> None:
        result = clarion(
            "serve",
            service,
            CLARION_DATA_DIR=str(tmp_path),
            **{f"CLARION_{service.upper()}_LISTEN": "127.0.0.1:0"},
        )
        line = one_line_error(result)
        assert "CLARION_INTERNAL_TOKEN is not set" in line
        assert list(tmp_path.iterdir()) == []  # not migrated


class TestDatabase:
    def test_a_url_that_is_not_one_is_named_by_its_variable(self) -> None:
        line = one_line_error(clarion("migrate", CLARION_DATABASE_URL="campaign-db"))
        assert "CLARION_DATABASE_URL is not a database URL" in line

    def test_an_unreachable_database_names_its_variable_and_hides_the_password(self) -> None:
        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        url = f"postgresql+psycopg://clarion:hunter2@127.0.0.1:{closed}/clarion"
        line = one_line_error(clarion("migrate", "delivery", CLARION_DELIVERY_DATABASE_URL=url))
        assert "delivery database is unreachable" in line
        assert "CLARION_DELIVERY_DATABASE_URL" in line
        assert "hunter2" not in line

    def test_serve_says_the_same_in_one_line(self, tmp_path: Path) -> None:
        result = clarion(
            "serve",
            "reporting",
            CLARION_INTERNAL_TOKEN="t",
            CLARION_REPORTING_LISTEN="127.0.0.1:0",
            CLARION_REPORTING_DATABASE_URL="nosuchdriver://db/clarion",
        )
        line = one_line_error(result)
        assert "CLARION_REPORTING_DATABASE_URL" in line

    def test_a_malformed_variable_is_named(self) -> None:
        line = one_line_error(clarion("migrate", CLARION_LOG_FORMAT="xml"))
        assert "CLARION_LOG_FORMAT" in line


class TestVersion:
    def test_prints_the_installed_version(self) -> None:
        result = clarion("--version")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"clarion {version('clarion')}"


class TestHelp:
    def help_of(self, capsys: pytest.CaptureFixture[str], *command: str) -> str:
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args([*command, "--help"])
        assert exited.value.code == 0
        return capsys.readouterr().out

    def test_serve_names_every_setting_and_delivery_its_own(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        text = self.help_of(capsys, "serve")
        for field in DeliverySettings.model_fields:
            assert DeliverySettings.variable(field) in text, field

    def test_up_names_the_listen_addresses_and_delivery_settings(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        text = self.help_of(capsys, "up")
        for name in (*SERVICE_NAMES, "gateway"):
            assert f"CLARION_{name.upper()}_LISTEN" in text
        assert "CLARION_DELIVERY_WORKERS" in text and "CLARION_DATA_DIR" in text

    def test_migrate_and_site_create_name_the_database_variables(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        migrate = self.help_of(capsys, "migrate")
        for service in SERVICE_NAMES:
            assert Settings.variable(f"{service}_database_url") in migrate
        assert "CLARION_DATABASE_URL" in migrate and "CLARION_LISTEN" not in migrate
        create = self.help_of(capsys, "site", "create")
        assert "CLARION_CAMPAIGN_DATABASE_URL" in create
        assert "CLARION_SEGMENT_DATABASE_URL" not in create

    def test_the_site_commands_name_the_key_or_token_they_read(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        for command in ("show", "rotate-api-key", "set-subject", "import-vapid-key"):
            text = self.help_of(capsys, "site", command)
            assert "CLARION_API_KEY" in text and "CLARION_CAMPAIGN_ADDRESS" in text, command
            assert "CLARION_INTERNAL_TOKEN" not in text, command
        listing = self.help_of(capsys, "site", "list")
        assert "CLARION_INTERNAL_TOKEN" in listing and "CLARION_CAMPAIGN_ADDRESS" in listing
        assert "CLARION_API_KEY" not in listing

    def test_every_command_says_what_it_reads(self, capsys: pytest.CaptureFixture[str]) -> None:
        for command in (
            ["up"],
            ["migrate"],
            ["serve"],
            ["site", "create"],
            ["site", "show"],
            ["site", "rotate-api-key"],
            ["site", "set-subject"],
            ["site", "import-vapid-key"],
            ["site", "list"],
            ["campaign", "create"],
            ["campaign", "update"],
            ["campaign", "send"],
            ["campaign", "test"],
            ["campaign", "pause"],
            ["campaign", "resume"],
            ["simulator"],
            ["health"],
            ["demo"],
        ):
            assert "environment variables read" in self.help_of(capsys, *command), command


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class TestQuietStartUp:
    def test_a_migration_is_logged_once_with_its_revision_then_nothing_from_alembic(
        self, tmp_path: Path
    ) -> None:
        from alembic.script import ScriptDirectory

        from services.kit.db import _alembic_config

        first = clarion("migrate", "campaign", "--data-dir", str(tmp_path))
        assert first.returncode == 0, first.stderr
        applied = [r for r in _json_lines(first.stderr) if r["event"] == "migration applied"]
        scripts = ScriptDirectory.from_config(_alembic_config("campaign", "sqlite://"))
        revisions = {script.revision for script in scripts.walk_revisions()}
        assert sorted(r["revision"] for r in applied) == sorted(revisions)
        assert all(r["service"] == "campaign" for r in applied)

        again = clarion("migrate", "campaign", "--data-dir", str(tmp_path))
        assert again.returncode == 0, again.stderr
        records = _json_lines(again.stderr)
        assert [r["event"] for r in records] == ["schema at head"]

    def test_a_service_on_a_migrated_database_logs_no_alembic_lines(self, tmp_path: Path) -> None:
        migrated = clarion("migrate", "segment", "--data-dir", str(tmp_path))
        assert migrated.returncode == 0, migrated.stderr
        process = subprocess.Popen(
            [sys.executable, "-m", "clarion", "serve", "segment"],
            cwd=ROOT,
            env=_env(
                CLARION_INTERNAL_TOKEN="t",
                CLARION_DATA_DIR=str(tmp_path),
                CLARION_SEGMENT_LISTEN="127.0.0.1:0",
            ),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stderr is not None
            deadline = time.monotonic() + 60
            lines = []
            while time.monotonic() < deadline:
                line = process.stderr.readline()
                if not line:
                    break
                lines.append(line)
                if '"serving"' in line:
                    break
        finally:
            process.send_signal(signal.SIGTERM)
            rest = process.communicate(timeout=30)[1]
        records = _json_lines("".join(lines) + rest)
        assert "serving" in [r["event"] for r in records], records
        assert not [r for r in records if str(r.get("logger", "")).startswith("alembic")]
        assert not [r for r in records if "migration" in str(r["event"])]


# Campaign files and transactional sends, read before anything is called.


def _campaign_file(tmp_path: Path, trigger: str, extra: str = "") -> str:
    path = tmp_path / "live.yaml"
    body = textwrap.indent(trigger, "  ")
    path.write_text(f"notification: {{title: Hi}}\n{extra}trigger:\n{body}")
    return str(path)


def _equals(name: str, value: profile_pb2.PropertyValue) -> segment_pb2.PropertyCondition:
    return segment_pb2.PropertyCondition(
        name=name, operator=segment_pb2.PROPERTY_OPERATOR_EQUALS, values=[value]
    )


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


SHOES = _equals("category", profile_pb2.PropertyValue(string_value="shoes"))
OPERATOR = segment_pb2.PropertyOperator


class TestTriggerFile:
    """`trigger:` in a campaign file makes a live campaign (clarion/trigger_file.py)."""

    def test_an_event_with_filters_a_cooldown_and_a_start_and_end(self, tmp_path: Path) -> None:
        path = _campaign_file(
            tmp_path,
            "event: Added To Cart\nwhere:\n  - {property: category, equals: shoes}\n"
            "cooldown: 24h\nstart: 2027-01-01T00:00:00Z\nend: '2027-02-01T01:00:00+01:00'\n",
        )

        request, _ = read_campaign_file(path)

        assert request.trigger == campaign_pb2.Trigger(
            event_name="Added To Cart",
            event_filters=[SHOES],
            person_cooldown_seconds=86_400,
            start_time=_at(datetime(2027, 1, 1, tzinfo=UTC)),
            end_time=_at(datetime(2027, 2, 1, tzinfo=UTC)),
        )
        assert not request.HasField("schedule")

    def test_event_then_inaction(self, tmp_path: Path) -> None:
        path = _campaign_file(
            tmp_path,
            "event: Added To Cart\nunless: {event: Charged, within: 1h30m, keep_first_wait: true,\n"
            "  where: {property: category, equals: shoes}}\n",
        )

        trigger = read_campaign_file(path)[0].trigger

        assert trigger.inaction == campaign_pb2.Inaction(
            event_name="Charged", event_filters=[SHOES], window_seconds=5400, keep_first_wait=True
        )
        assert not trigger.event_filters

    @pytest.mark.parametrize(
        ("remind", "offset"),
        [
            ("{property: travel_date, before: 1d}", -86_400),
            ("{property: travel_date, after: 2h}", 7200),
            ("{property: travel_date}", 0),
        ],
    )
    def test_a_date_reminder(self, tmp_path: Path, remind: str, offset: int) -> None:
        path = _campaign_file(tmp_path, f"event: Booked\nremind: {remind}\n")

        trigger = read_campaign_file(path)[0].trigger

        assert trigger.WhichOneof("wait") == "date_reminder"
        assert trigger.date_reminder == campaign_pb2.DateReminder(
            property="travel_date", offset_seconds=offset
        )

    @pytest.mark.parametrize(
        ("condition", "expected"),
        [
            ("{property: c, equals: shoes}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_EQUALS,
                values=[profile_pb2.PropertyValue(string_value="shoes")])),
            ("{property: c, not_equals: 3}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_NOT_EQUALS,
                values=[profile_pb2.PropertyValue(number_value=3)])),
            ("{property: c, in: [a, b]}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_IN,
                values=[profile_pb2.PropertyValue(string_value="a"),
                        profile_pb2.PropertyValue(string_value="b")])),
            ("{property: c, contains: x}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_CONTAINS,
                values=[profile_pb2.PropertyValue(string_value="x")])),
            ("{property: c, starts_with: x}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_STARTS_WITH,
                values=[profile_pb2.PropertyValue(string_value="x")])),
            ("{property: c, greater_than: 2027-01-01T00:00:00Z}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_GREATER_THAN,
                values=[profile_pb2.PropertyValue(
                    timestamp_value=_at(datetime(2027, 1, 1, tzinfo=UTC)))])),
            ("{property: c, less_than: 9.5}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_LESS_THAN,
                values=[profile_pb2.PropertyValue(number_value=9.5)])),
            ("{property: c, between: [1, 5]}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_BETWEEN,
                values=[profile_pb2.PropertyValue(number_value=1),
                        profile_pb2.PropertyValue(number_value=5)])),
            ("{property: c, equals: true}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_EQUALS,
                values=[profile_pb2.PropertyValue(bool_value=True)])),
            ("{property: c, exists: true}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_EXISTS)),
            ("{property: c, exists: false}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_NOT_EXISTS)),
            ("{property: c, within_last_days: 7}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_WITHIN_LAST_DAYS, days=7)),
            ("{property: c, more_than_days_ago: 30}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_MORE_THAN_DAYS_AGO, days=30)),
            ("{property: c, within_next_days: 2}", segment_pb2.PropertyCondition(
                name="c", operator=OPERATOR.PROPERTY_OPERATOR_WITHIN_NEXT_DAYS, days=2)),
        ],
    )  # fmt: skip
    def test_each_operator(
        self, tmp_path: Path, condition: str, expected: segment_pb2.PropertyCondition
    ) -> None:
        path = _campaign_file(tmp_path, f"event: E\nwhere:\n  - {condition}\n")

        assert list(read_campaign_file(path)[0].trigger.event_filters) == [expected]

    @pytest.mark.parametrize(
        ("given", "seconds"),
        [("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86_400), ("1w", 604_800),
         ("1h30m", 5400), (" 3D ", 259_200)],
    )  # fmt: skip
    def test_durations(self, given: str, seconds: int) -> None:
        assert duration_seconds(given, "trigger.cooldown") == seconds

    def test_an_empty_trigger_is_none(self, tmp_path: Path) -> None:
        path = tmp_path / "draft.yaml"
        path.write_text("notification: {title: Hi}\ntrigger:\n")

        assert not read_campaign_file(str(path))[0].HasField("trigger")

    @pytest.mark.parametrize(
        ("trigger", "says"),
        [
            ("Added To Cart\n", "trigger: expected a mapping"),
            ("where: {property: c, equals: x}\n", "trigger.event: the event's name is required"),
            ("event: E\nunles: {event: C}\n", "trigger takes event, where, unless"),
            ("event: E\nwhere: c = x\n", "trigger.where: expected a list of conditions"),
            ("event: E\nwhere: [{equals: x}]\n", "trigger.where[0]: property: the property's"),
            ("event: E\nwhere: [{property: c, equal: x}]\n", "[0]: equal is not an operator"),
            ("event: E\nwhere: [{property: c}]\n", "trigger.where[0]: give one operator"),
            ("event: E\nwhere: [{property: c, equals: x, in: [x]}]\n", "not several"),
            ("event: E\nwhere: [{property: c, equals: [a]}]\n", "[0].equals: expected one value"),
            ("event: E\nwhere: [{property: c, between: [1]}]\n", "[0].between: expected a list"),
            ("event: E\nwhere: [{property: c, in: []}]\n", "trigger.where[0].in: expected a list"),
            ("event: E\nwhere: [{property: c, exists: maybe}]\n", "exists: expected true"),
            ("event: E\nwhere: [{property: c, within_last_days: 1.5}]\n", "whole number of days"),
            ("event: E\nwhere: [{property: c, equals: 2027-01-01}]\n", "a date alone has no zone"),
            ("event: E\nunless: Charged\n", "trigger.unless: expected a mapping"),
            ("event: E\nunless: {event: Charged}\n", "trigger.unless.within: how long to wait"),
            ("event: E\nunless: {within: 10m}\n", "trigger.unless.event: the event's name"),
            ("event: E\nunless: {event: C, within: 10 min}\n", "unless.within: expected a"),
            ("event: E\nunless: {event: C, within: 1m, keep_first_wait: 2}\n", "true or false"),
            ("event: E\nunless: {event: C, within: 1m, for: 1m}\n", "trigger.unless takes event"),
            ("event: E\nremind: {before: 1d}\n", "trigger.remind.property"),
            ("event: E\nremind: {property: d, before: 1d, after: 1d}\n", "after:, not both"),
            ("event: E\nremind: {property: d, before: soon}\n", "remind.before: expected a"),
            ("event: E\nunless: {event: C, within: 1m}\nremind: {property: d}\n", "or remind:"),
            ("event: E\ncooldown: 600\n", "trigger.cooldown: expected a duration such as 90s"),
            ("event: E\nstart: next monday\n", "trigger.start: expected a time with its zone"),
            ("event: E\nend: 2027-02-01\n", "trigger.end: expected a time with its zone"),
        ],
    )  # fmt: skip
    def test_a_mistake_names_the_key_and_what_is_expected(
        self, tmp_path: Path, trigger: str, says: str
    ) -> None:
        path = _campaign_file(tmp_path, trigger)

        with pytest.raises(OperatorError) as raised:
            read_campaign_file(path)

        message = str(raised.value)
        assert message.startswith(f"{path}: ") and says in message, message
        assert "\n" not in message

    def test_a_schedule_and_a_trigger_together_are_refused(self, tmp_path: Path) -> None:
        schedule = "schedule: {at: 2027-01-04T09:00:00Z}\n"
        path = _campaign_file(tmp_path, "event: E\n", extra=schedule)

        with pytest.raises(OperatorError) as raised:
            read_campaign_file(path)

        assert "schedule: (runs at set times) or a trigger: (runs on events), not both" in str(
            raised.value
        )

    def test_an_unknown_top_level_key_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "typo.yaml"
        path.write_text("notification: {title: Hi}\ntriggers: {event: E}\n")

        with pytest.raises(OperatorError) as raised:
            read_campaign_file(str(path))

        assert "a campaign file takes name, notification" in str(raised.value)
        assert str(raised.value).endswith("not triggers")


class TestCampaignUpdateFile:
    """`clarion campaign update ID FILE`: the fields the file gives, and the mask naming them."""

    def test_a_trigger_alone_is_the_trigger_path(self, tmp_path: Path) -> None:
        path = tmp_path / "live.yaml"
        path.write_text("trigger: {event: Added To Cart, cooldown: 1h}\n")

        campaign, paths = read_campaign_changes(str(path))

        assert paths == ["trigger"]
        assert campaign.trigger == campaign_pb2.Trigger(
            event_name="Added To Cart", person_cooldown_seconds=3600
        )

    def test_an_empty_trigger_clears_it_and_a_schedule_can_take_its_place(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "scheduled.yaml"
        path.write_text("trigger:\nschedule: {at: 2027-01-04T09:00:00Z}\n")

        campaign, paths = read_campaign_changes(str(path))

        assert paths == ["trigger", "schedule"]
        assert not campaign.HasField("trigger") and campaign.HasField("schedule")

    def test_notification_fields_change_one_by_one(self, tmp_path: Path) -> None:
        path = tmp_path / "title.yaml"
        path.write_text("notification: {title: New title, body: ''}\nurgency: high\n")

        campaign, paths = read_campaign_changes(str(path))

        assert paths == ["notification.title", "notification.body", "urgency"]
        assert campaign.notification.title == "New title"
        assert campaign.urgency == common_pb2.URGENCY_HIGH

    @pytest.mark.parametrize(
        ("content", "says"),
        [("request_id: r1\nname: x\n", "request_id is for `campaign create`"),
         ("{}\n", "changes nothing")],
    )  # fmt: skip
    def test_what_an_update_cannot_say(self, tmp_path: Path, content: str, says: str) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text(content)

        with pytest.raises(OperatorError) as raised:
            read_campaign_changes(str(path))

        assert says in str(raised.value)


class TestTriggerWords:
    """`clarion campaign show` and `list` say a live campaign's trigger in words."""

    def test_event_filter_inaction_and_cooldown(self) -> None:
        trigger = campaign_pb2.Trigger(
            event_name="Added To Cart",
            event_filters=[SHOES],
            inaction=campaign_pb2.Inaction(event_name="Charged", window_seconds=600),
            person_cooldown_seconds=86_400,
        )

        assert trigger_words(trigger) == (
            "on Added To Cart where category = shoes, unless Charged within 10 min; "
            "at most once per person per 24 h"
        )

    def test_a_reminder_and_a_campaign_window(self) -> None:
        trigger = campaign_pb2.Trigger(
            event_name="Booked",
            date_reminder=campaign_pb2.DateReminder(
                property="travel_date", offset_seconds=-172_800
            ),
            start_time=_at(datetime(2027, 1, 1, tzinfo=UTC)),
            end_time=_at(datetime(2027, 2, 1, tzinfo=UTC)),
        )

        assert trigger_words(trigger, since=datetime(2026, 12, 1, tzinfo=UTC)) == (
            "on Booked, 2 d before its travel_date; from 2027-01-01 00:00:00 UTC; "
            "until 2027-02-01 00:00:00 UTC"
        )
        # The start Clarion gave it when it was set is not worth saying.
        assert "from" not in trigger_words(trigger, since=datetime(2027, 1, 1, tzinfo=UTC))

    def test_keep_first_wait_and_a_reminder_at_the_date(self) -> None:
        kept = campaign_pb2.Trigger(
            event_name="Added To Cart",
            inaction=campaign_pb2.Inaction(
                event_name="Charged", window_seconds=90, keep_first_wait=True
            ),
        )
        at = campaign_pb2.Trigger(
            event_name="Booked", date_reminder=campaign_pb2.DateReminder(property="d")
        )

        assert trigger_words(kept) == (
            "on Added To Cart, unless Charged within 90 s "
            "(a later Added To Cart does not restart the wait)"
        )
        assert trigger_words(at) == "on Booked, at its d"

    def test_show_says_a_live_campaign_has_no_schedule_but_its_trigger(self) -> None:
        live = campaign_pb2.Campaign(trigger=campaign_pb2.Trigger(event_name="E"))

        assert schedule_words(live) == "none: a live campaign, its trigger starts runs"


class TestRecipients:
    """`clarion campaign send ID --profile ... --subscriber ... --recipients-file FILE`."""

    def test_none_given_is_the_audience(self) -> None:
        assert read_recipients(None, None, None) is None

    def test_flags_and_a_file_together_once_each(self, tmp_path: Path) -> None:
        path = tmp_path / "ids.txt"
        path.write_text(
            "# shipped today\nprofile:ana\n\nsubscriber:sub_1\nprofile: ben \nprofile:ana\n"
        )

        recipients = read_recipients(["cem", "ana"], ["sub_2"], str(path))

        assert recipients == campaign_service_pb2.Recipients(
            profile_ids=["cem", "ana", "ben"], subscriber_ids=["sub_2", "sub_1"]
        )

    @pytest.mark.parametrize(
        ("content", "says"),
        [
            ("profile:ana\nana\n", "line 2: expected profile:ID or subscriber:ID, got 'ana'"),
            ("person:ana\n", "line 1: expected profile:ID"),
            ("profile:\n", "line 1: expected profile:ID"),
            ("# nobody\n", "lists no recipients"),
        ],
    )
    def test_a_bad_file_names_the_line(self, tmp_path: Path, content: str, says: str) -> None:
        path = tmp_path / "ids.txt"
        path.write_text(content)

        with pytest.raises(OperatorError) as raised:
            read_recipients(None, None, str(path))

        assert says in str(raised.value)

    def test_more_than_ten_thousand_is_refused_before_anything_is_called(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "many.txt"
        path.write_text("".join(f"profile:p{i}\n" for i in range(9_000)))
        unreachable = {"CLARION_API_KEY": "ck_x", "CLARION_CAMPAIGN_ADDRESS": "127.0.0.1:1"}

        result = clarion(
            "campaign", "send", "cmp_x", "--recipients-file", str(path),
            *[arg for i in range(1_001) for arg in ("--subscriber", f"sub_{i}")],
            **unreachable,
        )  # fmt: skip

        line = one_line_error(result)
        assert "10,001 recipients given (9,000 profiles, 1,001 subscribers)" in line
        assert "at most 10,000" in line


class TestPauseAndResume:
    def test_they_take_the_connection_flags(self) -> None:
        for command in ("pause", "resume"):
            result = clarion(
                "campaign", command, "cmp_x", "--timeout", "1",
                CLARION_API_KEY="ck_x", CLARION_CAMPAIGN_ADDRESS="127.0.0.1:1",
            )  # fmt: skip
            assert "did not answer at 127.0.0.1:1" in one_line_error(result), command

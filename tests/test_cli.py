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
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from clarion.cli import build_parser
from services.delivery.settings import DeliverySettings
from services.kit.config import SERVICE_NAMES, Settings

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

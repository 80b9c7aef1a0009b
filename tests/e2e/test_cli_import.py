"""`clarion import` and `clarion export` against the running stack: a CSV with a few bad
rows, its rejects file and exit status, a re-run that changes nothing, and export round
trips. Each command is a real `python -m clarion` process."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

from clarion.embedded import EmbeddedStack
from clarion.simulator import PushServiceSimulator
from services.campaign.admin import create_site
from tests.e2e.test_cli_remote import Result, one_line_error
from tests.e2e.test_cli_remote import clarion as run_clarion


async def clarion(stack: EmbeddedStack, api_key: str, *argv: str, **env: str) -> Result:
    return await run_clarion(
        stack, api_key, *argv, env={"CLARION_SEGMENT_ADDRESS": stack.address("segment"), **env}
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def subscriber_rows(simulator: PushServiceSimulator, count: int) -> list[list[str]]:
    rows = []
    for index in range(count):
        minted = simulator.mint_subscription()
        rows.append([minted.endpoint, b64(minted.p256dh), b64(minted.auth), "firefox",
                     "Europe/Paris", f"user-{index}", "2025-06-01T12:00:00Z"])  # fmt: skip
    return rows


HEADER = ["endpoint", "p256dh", "auth", "browser", "timezone", "profile_id", "created_at"]


class TestImportSubscribers:
    async def test_bad_rows_go_to_the_rejects_file_and_a_rerun_changes_nothing(
        self, stack: EmbeddedStack, simulator: PushServiceSimulator, tmp_path: Path
    ) -> None:
        site = await create_site(stack.settings, "Import", "mailto:ops@example.com")
        good = subscriber_rows(simulator, 5)
        extra = simulator.mint_subscription()
        bad = [
            [extra.endpoint, "not*base64", b64(extra.auth), "", "", "", ""],  # row 4
            [extra.endpoint, b64(extra.p256dh), b64(extra.auth), "", "Mars/Base", "", ""],  # 6
            [extra.endpoint, b64(extra.p256dh), b64(extra.auth), "", "", "", "yesterday"],  # 8
        ]
        rows = [good[0], good[1], bad[0], good[2], bad[1], good[3], bad[2], good[4]]
        path = write_csv(tmp_path / "subs.csv", [HEADER, *rows])

        first = await clarion(stack, site.api_key, "import", "subscribers", str(path), "--json")
        assert first.code == 1, first.err
        summary = json.loads(first.out)
        assert (summary["rows"], summary["stored"], summary["unchanged"], summary["rejected"]) == (
            8,
            5,
            0,
            3,
        )
        assert "3 rows were rejected" in first.err and "subs.rejects.csv" in first.err
        rejects = read_csv(tmp_path / "subs.rejects.csv")
        assert rejects[0] == ["row", "reason", "field", "message", *HEADER]
        assert [(r[0], r[1], r[2]) for r in rejects[1:]] == [
            ("4", "INVALID_P256DH", "push_subscription.p256dh"),
            ("6", "INVALID_TIMEZONE", "timezone"),
            ("8", "INVALID_CREATE_TIME", "create_time"),
        ]
        assert rejects[1][4:] == bad[0]

        fixed = write_csv(tmp_path / "subs.csv", [HEADER, *good])
        again = await clarion(stack, site.api_key, "import", "subscribers", str(fixed))
        assert again.code == 0, again.err
        assert "0 stored, 5 unchanged, 0 rejected of 5 rows" in again.out
        assert not (tmp_path / "subs.rejects.csv").exists()
        assert "5/5" in again.err  # the progress bar's last state

    async def test_export_imports_back_unchanged(
        self, stack: EmbeddedStack, simulator: PushServiceSimulator, tmp_path: Path
    ) -> None:
        site = await create_site(stack.settings, "Round trip", "mailto:ops@example.com")
        path = write_csv(tmp_path / "subs.csv", [HEADER, *subscriber_rows(simulator, 4)])
        assert (await clarion(stack, site.api_key, "import", "subscribers", str(path))).code == 0
        out = tmp_path / "exported.csv"
        exported = await clarion(stack, site.api_key, "export", "subscribers", "-o", str(out))
        assert exported.code == 0, exported.err
        table = read_csv(out)
        assert len(table) == 5 and table[0][:4] == ["subscriber_id", "endpoint", "p256dh", "auth"]
        assert {row[table[0].index("created_at")] for row in table[1:]} == {"2025-06-01T12:00:00Z"}
        back = await clarion(stack, site.api_key, "import", "subscribers", str(out), "--json")
        assert back.code == 0, back.err
        assert (json.loads(back.out)["unchanged"], json.loads(back.out)["stored"]) == (4, 0)

    async def test_malformed_files_and_a_wrong_site_say_so_in_one_line(
        self, stack: EmbeddedStack, tmp_path: Path
    ) -> None:
        site = await create_site(stack.settings, "Errors", "mailto:ops@example.com")
        missing = write_csv(tmp_path / "missing.csv", [["endpoint", "p256dh"], ["x", "y"]])
        line = one_line_error(
            await clarion(stack, site.api_key, "import", "subscribers", str(missing))
        )
        assert "missing column auth" in line
        typed = write_csv(tmp_path / "typed.csv", [["profile_id", "age:integer"], ["a", "1"]])
        line = one_line_error(await clarion(stack, site.api_key, "import", "profiles", str(typed)))
        assert "age:integer" in line and "number" in line
        fine = write_csv(tmp_path / "fine.csv", [["profile_id", "city"], ["a", "Paris"]])
        line = one_line_error(
            await clarion(
                stack, site.api_key, "import", "profiles", str(fine), "--site", "site_other"
            )
        )
        assert site.site_id in line and "site_other" in line
        ok = await clarion(
            stack, site.api_key, "import", "profiles", str(fine), CLARION_SITE_ID=site.site_id
        )
        assert ok.code == 0, ok.err


class TestImportProfilesAndEvents:
    async def test_typed_profiles_export_and_events_rerun(
        self, stack: EmbeddedStack, tmp_path: Path
    ) -> None:
        site = await create_site(stack.settings, "Profiles", "mailto:ops@example.com")
        profiles = write_csv(
            tmp_path / "people.csv",
            [
                [
                    "profile_id",
                    "city",
                    "age:number",
                    "vip:boolean",
                    "signup:timestamp",
                    "tags:list",
                ],
                ["ana", "Paris", "31", "true", "2024-03-01T00:00:00Z", "a;b"],
                ["bob", "Lyon", "", "false", "", ""],
                ["cy", "Nice", "old", "", "", ""],
            ],
        )
        imported = await clarion(stack, site.api_key, "import", "profiles", str(profiles), "--json")
        assert imported.code == 1
        assert (json.loads(imported.out)["stored"], json.loads(imported.out)["rejected"]) == (2, 1)
        (reject,) = read_csv(tmp_path / "people.rejects.csv")[1:]
        assert reject[:2] == ["4", "INVALID_NUMBER"]

        out = tmp_path / "exported.csv"
        assert (await clarion(stack, site.api_key, "export", "profiles", "-o", str(out))).code == 0
        table = read_csv(out)
        assert table[0] == [
            "profile_id",
            "age:number",
            "city",
            "signup:timestamp",
            "tags:list",
            "vip:boolean",
        ]
        assert table[1] == ["ana", "31", "Paris", "2024-03-01T00:00:00Z", "a;b", "true"]
        back = await clarion(stack, site.api_key, "import", "profiles", str(out), "--json")
        assert back.code == 0, back.err
        assert json.loads(back.out)["unchanged"] == 2

        definition = tmp_path / "paris.json"
        definition.write_text(json.dumps({"condition": {"property": {
            "name": "city", "operator": "PROPERTY_OPERATOR_EQUALS",
            "values": [{"string_value": "Paris"}]}}}))  # fmt: skip
        paris = await clarion(
            stack, site.api_key, "export", "profiles", "--definition", str(definition)
        )
        assert paris.code == 0, paris.err
        assert [row[0] for row in csv.reader(paris.out.splitlines())] == ["profile_id", "ana"]

        events = write_csv(
            tmp_path / "events.csv",
            [
                ["name", "profile_id", "occur_time", "amount:number"],
                ["Purchase", "ana", "2025-01-02T10:00:00Z", "12.5"],
                ["Purchase", "bob", "2025-01-03T10:00:00Z", "8"],
                ["", "bob", "2025-01-03T10:00:00Z", ""],
            ],
        )
        first = await clarion(stack, site.api_key, "import", "events", str(events), "--json")
        assert first.code == 1
        assert (json.loads(first.out)["stored"], json.loads(first.out)["rejected"]) == (2, 1)
        second = await clarion(stack, site.api_key, "import", "events", str(events), "--json")
        assert (json.loads(second.out)["stored"], json.loads(second.out)["unchanged"]) == (0, 2)

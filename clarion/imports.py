"""`clarion import` and `clarion export`: a site's subscribers, profiles and events in
from CSV files, and an audience's subscribers or profiles out to CSV, over the segment
service's streaming RPCs with the site's API key.

    clarion import subscribers|profiles|events FILE.csv [--site SITE]
    clarion export subscribers|profiles [--segment SEG | --definition FILE] [-o FILE.csv]

An import streams batches and shows its progress on stderr; rows the service (or this
command, for a cell it cannot read) refuses go to FILE.rejects.csv with the reason, and
the command ends with a summary (exit status 1 when a row was rejected). Every row is
stored by what identifies it (a subscription's endpoint, a profile id, an event id), so
running the same import again stores nothing twice.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import csv
import functools
import hashlib
import json
import math
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import grpc
import yaml
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import site_service_pb2
from clarion.common.v1 import common_pb2
from clarion.remote import ClientSettings, Remote, print_json, site_stub
from clarion.segment.v1 import profile_pb2, segment_pb2, subscriber_pb2
from clarion.segment.v1 import segment_service_pb2 as pb
from clarion.segment.v1 import segment_service_pb2_grpc as pb_grpc
from services.kit.operator import OperatorError

# Rows per streamed message (the service takes at most 1000 subscribers or profiles,
# 10000 events).
BATCH_ROWS = {"subscribers": 1000, "profiles": 1000, "events": 5000}
SUBSCRIBER_COLUMNS = ("endpoint", "p256dh", "auth")
OPTIONAL_SUBSCRIBER_COLUMNS = ("browser", "timezone", "profile_id", "created_at", "vapid_key_id")
# What `clarion export subscribers` writes besides the import's columns: read and ignored,
# so an export imports as it is.
EXPORTED_ONLY_COLUMNS = ("subscriber_id", "state", "unsubscribe_reason")
EVENT_COLUMNS = ("event_id", "name", "profile_id", "subscriber_id", "occur_time")
PROPERTY_TYPES = ("string", "number", "boolean", "timestamp", "list")
REJECT_COLUMNS = ["row", "reason", "field", "message"]
_BROWSERS = {
    name.removeprefix("BROWSER_").lower(): value
    for name, value in common_pb2.Browser.items()
    if value != common_pb2.BROWSER_UNSPECIFIED
}
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}
# How long one batch may take before the stream is given up (the call's deadline is this
# times the number of batches, plus one).
_PROGRESS_LINES = 10


class ImportSettings(ClientSettings):
    site_id: str = ""
    """The site the API key must belong to (checked with SiteService.GetSite)."""


class _RowError(Exception):
    """A cell this command cannot read: the row is rejected without being sent."""

    def __init__(self, reason: str, field_name: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field_name
        self.message = message


# ----------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Column:
    """A header cell: a property column is `name` or `name:type`."""

    header: str
    name: str
    type: str


def _property_column(header: str, path: str) -> Column:
    name, _, type_ = header.partition(":")
    type_ = type_.strip().lower() or "string"
    if type_ not in PROPERTY_TYPES:
        raise OperatorError(
            f"{path}: column {header!r} has an unknown type {type_!r}: write name:TYPE with "
            f"TYPE one of {', '.join(PROPERTY_TYPES)} (no suffix: string)"
        )
    if not name.strip():
        raise OperatorError(f"{path}: a column has an empty name: every header cell needs one")
    return Column(header, name.strip(), type_)


_URLSAFE = str.maketrans("-_", "+/")


def _b64url(text: str, field_name: str, reason: str) -> bytes:
    cleaned = text.strip()
    try:
        return binascii.a2b_base64(
            (cleaned.translate(_URLSAFE) + "=" * (-len(cleaned) % 4)).encode("ascii"),
            strict_mode=True,
        )
    except (binascii.Error, ValueError):
        raise _RowError(
            reason, field_name, f"{field_name} is not base64url text (as a browser gives it)"
        ) from None


@functools.lru_cache(maxsize=4096)
def _seconds(text: str) -> tuple[int, int] | None:
    """(seconds, nanos) since the epoch of an ISO-8601 time (no zone: UTC); None when it
    is not one. Cached: an import's times repeat (a day's subscriptions, one second)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    whole = moment.replace(microsecond=0)
    return int(whole.timestamp()), moment.microsecond * 1000


def _timestamp(text: str, field_name: str, reason: str) -> Timestamp:
    seconds = _seconds(text)
    if seconds is not None and -62_135_596_800 <= seconds[0] <= 253_402_300_799:
        return Timestamp(seconds=seconds[0], nanos=seconds[1])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _RowError(
            reason, field_name, f"{field_name} {text[:40]!r} is not an ISO-8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a time without a zone is UTC
    stamp = Timestamp()
    try:
        stamp.FromDatetime(moment.astimezone(UTC))
    except (ValueError, OverflowError):
        raise _RowError(reason, field_name, f"{field_name} is out of range") from None
    return stamp


def _value(column: Column, text: str, field_name: str) -> profile_pb2.PropertyValue:
    if column.type == "number":
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise _RowError(
                "INVALID_NUMBER", field_name, f"{column.name} {text[:40]!r} is not a number"
            )
        return profile_pb2.PropertyValue(number_value=number)
    if column.type == "boolean":
        word = text.strip().lower()
        if word not in _TRUE | _FALSE:
            raise _RowError(
                "INVALID_BOOLEAN", field_name, f"{column.name} {text[:40]!r} is not true or false"
            )
        return profile_pb2.PropertyValue(bool_value=word in _TRUE)
    if column.type == "timestamp":
        return profile_pb2.PropertyValue(
            timestamp_value=_timestamp(text, field_name, "INVALID_TIMESTAMP")
        )
    if column.type == "list":
        items = [item.strip() for item in text.split(";") if item.strip()]
        return profile_pb2.PropertyValue(string_list_value=profile_pb2.StringList(values=items))
    return profile_pb2.PropertyValue(string_value=text)


class Kind:
    """How one kind of import reads its file's rows into a batch's entries."""

    name: str

    def __init__(self, header: list[str], path: str) -> None:
        self.header = header
        self.path = path

    def entry(self, row: int, cells: dict[str, str]) -> Any:
        raise NotImplementedError

    def request(self, entries: list[Any]) -> Any:
        raise NotImplementedError

    def method(self, stub: pb_grpc.SegmentServiceStub) -> Callable[..., Any]:
        raise NotImplementedError


def _check_columns(header: list[str], path: str, required: tuple[str, ...]) -> None:
    if not header:
        raise OperatorError(f"{path} is empty: the first line must name the columns")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise OperatorError(f"{path}: column {name!r} is given twice")
        seen.add(name)
    missing = [name for name in required if name not in header]
    if missing:
        raise OperatorError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(the first line names the columns: {', '.join(required)}, ...)"
        )


class Subscribers(Kind):
    name = "subscribers"

    def __init__(self, header: list[str], path: str) -> None:
        super().__init__(header, path)
        _check_columns(header, path, SUBSCRIBER_COLUMNS)
        known = {*SUBSCRIBER_COLUMNS, *OPTIONAL_SUBSCRIBER_COLUMNS, *EXPORTED_ONLY_COLUMNS}
        unknown = [name for name in header if name not in known]
        if unknown:
            raise OperatorError(
                f"{path}: unknown column {unknown[0]!r}: a subscribers file has "
                f"{', '.join(SUBSCRIBER_COLUMNS)} and optionally "
                f"{', '.join(OPTIONAL_SUBSCRIBER_COLUMNS)}"
            )

    def entry(self, row: int, cells: dict[str, str]) -> pb.ImportedSubscriber:
        browser_word = cells.get("browser", "").strip().lower()
        browser = common_pb2.BROWSER_UNSPECIFIED
        if browser_word:
            if browser_word not in _BROWSERS:
                raise _RowError(
                    "INVALID_BROWSER", "browser",
                    f"browser {browser_word[:40]!r} is not one of {', '.join(_BROWSERS)}",
                )  # fmt: skip
            browser = _BROWSERS[browser_word]
        entry = pb.ImportedSubscriber(
            row=row,
            subscriber=pb.RegisterSubscriberRequest(
                push_subscription=common_pb2.PushSubscription(
                    endpoint=cells["endpoint"].strip(),
                    p256dh=_b64url(cells["p256dh"], "push_subscription.p256dh", "INVALID_P256DH"),
                    auth=_b64url(cells["auth"], "push_subscription.auth", "INVALID_AUTH"),
                ),
                browser=browser,  # type: ignore[arg-type]
                timezone=cells.get("timezone", "").strip(),
                profile_id=cells.get("profile_id", ""),
                vapid_key_id=cells.get("vapid_key_id", "").strip(),
            ),
        )
        created = cells.get("created_at", "")
        if created.strip():
            entry.create_time.CopyFrom(_timestamp(created, "create_time", "INVALID_CREATE_TIME"))
        return entry

    def request(self, entries: list[Any]) -> pb.ImportSubscribersRequest:
        return pb.ImportSubscribersRequest(subscribers=entries)

    def method(self, stub: pb_grpc.SegmentServiceStub) -> Callable[..., Any]:
        return stub.ImportSubscribers


class Profiles(Kind):
    name = "profiles"

    def __init__(self, header: list[str], path: str) -> None:
        super().__init__(header, path)
        _check_columns(header, path, ("profile_id",))
        self.columns = [_property_column(h, path) for h in header if h != "profile_id"]
        _check_distinct(self.columns, path)

    def entry(self, row: int, cells: dict[str, str]) -> pb.ImportedProfile:
        operations = [
            profile_pb2.PropertyOperation(
                name=column.name, set=_value(column, cells[column.header], column.name)
            )
            for column in self.columns
            if cells.get(column.header, "") != ""
        ]
        return pb.ImportedProfile(
            row=row,
            update=profile_pb2.ProfileUpdate(profile_id=cells["profile_id"], operations=operations),
        )

    def request(self, entries: list[Any]) -> pb.ImportProfilesRequest:
        return pb.ImportProfilesRequest(profiles=entries)

    def method(self, stub: pb_grpc.SegmentServiceStub) -> Callable[..., Any]:
        return stub.ImportProfiles


class Events(Kind):
    name = "events"

    def __init__(self, header: list[str], path: str) -> None:
        super().__init__(header, path)
        _check_columns(header, path, ("name", "occur_time"))
        if "profile_id" not in header and "subscriber_id" not in header:
            raise OperatorError(
                f"{path}: an events file needs a profile_id or subscriber_id column (or both)"
            )
        self.columns = [_property_column(h, path) for h in header if h not in EVENT_COLUMNS]
        _check_distinct(self.columns, path)

    def entry(self, row: int, cells: dict[str, str]) -> pb.ImportedEvent:
        properties = [
            profile_pb2.Property(
                name=column.name, value=_value(column, cells[column.header], column.name)
            )
            for column in self.columns
            if cells.get(column.header, "") != ""
        ]
        occur = cells["occur_time"]
        if not occur.strip():
            raise _RowError("MISSING_OCCUR_TIME", "occur_time", "occur_time is required")
        event = profile_pb2.Event(
            event_id=cells.get("event_id", "").strip() or derived_event_id(self.header, cells),
            name=cells["name"],
            profile_id=cells.get("profile_id", ""),
            subscriber_id=cells.get("subscriber_id", "").strip(),
            occur_time=_timestamp(occur, "occur_time", "INVALID_OCCUR_TIME"),
            properties=properties,
        )
        return pb.ImportedEvent(row=row, event=event)

    def request(self, entries: list[Any]) -> pb.ImportEventsRequest:
        return pb.ImportEventsRequest(events=entries)

    def method(self, stub: pb_grpc.SegmentServiceStub) -> Callable[..., Any]:
        return stub.ImportEvents


def derived_event_id(header: list[str], cells: dict[str, str]) -> str:
    """An event id from the row's content (its columns and cells), for files without
    event ids: the same row always gets the same id, so a re-run stores nothing twice
    (and two identical rows are one event)."""
    content = json.dumps(
        sorted((name, cells.get(name, "")) for name in header if name != "event_id"),
        ensure_ascii=False,
    )
    return "csv_" + hashlib.sha256(content.encode()).hexdigest()[:40]


def _check_distinct(columns: list[Column], path: str) -> None:
    names = collections.Counter(column.name for column in columns)
    twice = [name for name, count in names.items() if count > 1]
    if twice:
        raise OperatorError(f"{path}: property {twice[0]!r} has two columns")


KINDS: dict[str, type[Kind]] = {"subscribers": Subscribers, "profiles": Profiles, "events": Events}


def _open_csv(path: str) -> TextIO:
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except OSError as error:
        raise OperatorError(f"cannot read {path}: {error.strerror}") from None


def read_header(path: str) -> list[str]:
    with _open_csv(path) as handle:
        try:
            header = next(csv.reader(handle), [])
        except (csv.Error, UnicodeDecodeError) as error:
            raise OperatorError(f"{path} is not a UTF-8 CSV file: {error}") from None
    return [name.strip() for name in header]


def count_rows(path: str) -> int:
    with _open_csv(path) as handle:
        try:
            return max(sum(1 for _ in csv.reader(handle)) - 1, 0)
        except (csv.Error, UnicodeDecodeError) as error:
            raise OperatorError(f"{path} is not a UTF-8 CSV file: {error}") from None


# ----------------------------------------------------------------------- importing


@dataclass
class Summary:
    rows: int = 0
    stored: int = 0
    unchanged: int = 0
    rejected: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "stored": self.stored,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds) if self.seconds else 0,
        }


@dataclass
class _Batch:
    """A sent batch waiting for its result: its rows' cells (for the rejects file) and
    the rows this command refused itself."""

    cells: dict[int, list[str]] = field(default_factory=dict)
    local: list[tuple[int, str, str, str]] = field(default_factory=list)
    size: int = 0


class Progress:
    """A bar on stderr: redrawn in place on a terminal, a line per tenth otherwise."""

    def __init__(self, total: int, what: str, quiet: bool) -> None:
        self.total = total
        self.what = what
        self.start = time.monotonic()
        self.interactive = sys.stderr.isatty()
        self.quiet = quiet and not self.interactive
        self._next_line = 0.0

    def show(self, done: int, final: bool = False) -> None:
        if self.quiet:
            return
        elapsed = max(time.monotonic() - self.start, 1e-9)
        fraction = done / self.total if self.total else 1.0
        width = 30
        filled = round(fraction * width)
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} {done}/{self.total} "
            f"{self.what}  {done / elapsed:,.0f} rows/s"
        )
        if self.interactive:
            print("\r" + line, end="\n" if final else "", file=sys.stderr, flush=True)
        elif final or fraction >= self._next_line:
            print(line, file=sys.stderr, flush=True)
            self._next_line = fraction + 1 / _PROGRESS_LINES


def rejects_path(path: str) -> Path:
    source = Path(path)
    return source.with_name(source.stem + ".rejects.csv")


def check_site(args: argparse.Namespace) -> None:
    """With --site (or CLARION_SITE_ID), the API key must be that site's: a key of
    another site would import into the wrong one."""
    expected = args.site or ImportSettings().site_id
    if not expected:
        return
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        site = remote.call(site_stub(channel).GetSite, site_service_pb2.GetSiteRequest()).site
    if site.site_id != expected:
        raise OperatorError(
            f"the API key is site {site.site_id}'s, not {expected}'s: use {expected}'s key "
            "(CLARION_API_KEY or --api-key), or check --site / CLARION_SITE_ID"
        )


def cmd_import(args: argparse.Namespace) -> int:
    kind = KINDS[args.kind](read_header(args.file), args.file)
    total = count_rows(args.file)
    remote = Remote(args, "segment")
    check_site(args)
    batch_rows = args.batch_size or BATCH_ROWS[kind.name]
    pending: collections.deque[_Batch] = collections.deque()
    failure: list[BaseException] = []
    summary = Summary(rows=total)
    progress = Progress(total, kind.name, quiet=args.json)
    rejects_file = rejects_path(args.file)
    rejects: Any = None
    writer: Any = None
    lock = threading.Lock()

    def batches() -> Iterator[Any]:
        """The file's rows as request messages; runs in gRPC's sending thread."""
        try:
            with _open_csv(args.file) as handle:
                reader = csv.reader(handle)
                next(reader, None)
                batch, entries = _Batch(), []
                for row, values in enumerate(reader, start=2):
                    cells = dict(zip(kind.header, values, strict=False))
                    for name in kind.header[len(values) :]:
                        cells[name] = ""
                    batch.size += 1
                    try:
                        entries.append(kind.entry(row, cells))
                    except _RowError as error:
                        batch.local.append((row, error.reason, error.field, error.message))
                    batch.cells[row] = values
                    if batch.size == batch_rows:
                        with lock:
                            pending.append(batch)
                        yield kind.request(entries)
                        batch, entries = _Batch(), []
                if batch.size:
                    with lock:
                        pending.append(batch)
                    yield kind.request(entries)
        except (csv.Error, UnicodeDecodeError) as error:
            failure.append(OperatorError(f"{args.file} is not a UTF-8 CSV file: {error}"))

    def reject(batch: _Batch, rejected: list[tuple[int, str, str, str]]) -> None:
        nonlocal rejects, writer
        if rejects is None:
            rejects = open(rejects_file, "w", newline="", encoding="utf-8")  # noqa: SIM115
            writer = csv.writer(rejects)
            writer.writerow([*REJECT_COLUMNS, *kind.header])
        for row, reason, field_name, message in sorted(rejected):
            writer.writerow([row, reason, field_name, message, *batch.cells.get(row, [])])

    done = 0
    deadline = args.timeout * (total // batch_rows + 2)
    try:
        with remote.channel() as channel:
            stub = pb_grpc.SegmentServiceStub(channel)
            responses = kind.method(stub)(batches(), metadata=remote.metadata, timeout=deadline)
            for response in responses:
                with lock:
                    batch = pending.popleft()
                result = response.result
                rejected = [
                    *batch.local,
                    *((r.row, r.reason, r.field, r.message) for r in result.rejected),
                ]
                summary.stored += result.stored
                summary.unchanged += result.unchanged
                summary.rejected += len(rejected)
                if rejected:
                    reject(batch, rejected)
                done += batch.size
                progress.show(done)
    except grpc.RpcError as error:
        raise OperatorError(remote._describe(error)) from None
    finally:
        if rejects is not None:
            rejects.close()
    if failure:
        raise OperatorError(str(failure[0]))
    summary.seconds = time.monotonic() - progress.start
    progress.show(done, final=True)
    if rejects is None and rejects_file.exists():
        rejects_file.unlink()  # from an earlier run: this one refused nothing
    if args.json:
        print_json({**summary.as_dict(), "rejects_file": str(rejects_file) if rejects else None})
    else:
        numbers = summary.as_dict()
        print(
            f"{kind.name}: {summary.stored} stored, {summary.unchanged} unchanged, "
            f"{summary.rejected} rejected of {summary.rows} rows in {numbers['seconds']} s "
            f"({numbers['rows_per_second']:,} rows/s)"
        )
    if summary.rejected:
        print(
            f"{summary.rejected} row{'s were' if summary.rejected > 1 else ' was'} rejected: "
            f"see {rejects_file} (row, reason, field, message, then the row); fix them and "
            "run the same import again (rows already stored stay unchanged)",
            file=sys.stderr,
        )
        return 1
    return 0


# ----------------------------------------------------------------------- exporting


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _iso(stamp: Timestamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


_SUBSCRIBER_EXPORT = [
    "subscriber_id", "endpoint", "p256dh", "auth", "browser", "timezone", "profile_id",
    "created_at", "vapid_key_id", "state", "unsubscribe_reason",
]  # fmt: skip
_SUFFIX = {
    "string_value": "",
    "number_value": ":number",
    "bool_value": ":boolean",
    "timestamp_value": ":timestamp",
    "string_list_value": ":list",
}


def _subscriber_cells(s: Any) -> list[str]:
    browser = common_pb2.Browser.Name(s.browser).removeprefix("BROWSER_").lower()
    state = subscriber_pb2.SubscriberState.Name(s.state).removeprefix("SUBSCRIBER_STATE_").lower()
    return [
        s.subscriber_id, s.push_subscription.endpoint, _b64(s.push_subscription.p256dh),
        _b64(s.push_subscription.auth), "" if browser == "unspecified" else browser, s.timezone,
        s.profile_id, _iso(s.create_time), s.vapid_key_id, state, s.unsubscribe_reason,
    ]  # fmt: skip


def _cell(value: profile_pb2.PropertyValue) -> str:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "timestamp_value":
        return _iso(value.timestamp_value)
    if kind == "string_list_value":
        return ";".join(value.string_list_value.values)
    return value.string_value


def read_selector(args: argparse.Namespace) -> segment_pb2.AudienceSelector | None:
    if args.segment and args.definition:
        raise OperatorError("pass --segment or --definition, not both")
    if args.segment:
        return segment_pb2.AudienceSelector(segment_id=args.segment)
    if not args.definition:
        return None
    path = args.definition
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as error:
        raise OperatorError(f"cannot read {path}: {error.strerror}") from None
    except (UnicodeDecodeError, yaml.YAMLError):
        raise OperatorError(f"{path} is not JSON or YAML text") from None
    if not isinstance(data, dict):
        raise OperatorError(f'{path} must hold one definition: {{"condition": {{...}}}}')
    try:
        definition = json_format.ParseDict(data, segment_pb2.SegmentDefinition())
    except json_format.ParseError as error:
        raise OperatorError(f"{path}: {' '.join(str(error).split())}") from None
    return segment_pb2.AudienceSelector(definition=definition)


def cmd_export(args: argparse.Namespace) -> int:
    selector = read_selector(args)
    remote = Remote(args, "segment")
    check_site(args)
    kind = pb.EXPORT_KIND_SUBSCRIBERS if args.kind == "subscribers" else pb.EXPORT_KIND_PROFILES
    request = pb.ExportAudienceRequest(kind=kind, include_unsubscribed=args.include_unsubscribed)
    if selector is not None:
        request.audience.CopyFrom(selector)
    output = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    count = 0
    start = time.monotonic()
    try:
        with remote.channel() as channel:
            pages = pb_grpc.SegmentServiceStub(channel).ExportAudience(
                request, metadata=remote.metadata, timeout=args.timeout * 100
            )
            writer = csv.writer(output)
            if args.kind == "subscribers":
                writer.writerow(_SUBSCRIBER_EXPORT)
                for page in pages:
                    for subscriber in page.subscribers:
                        writer.writerow(_subscriber_cells(subscriber))
                        count += 1
            else:
                count = _write_profiles(pages, writer)
    except grpc.RpcError as error:
        raise OperatorError(remote._describe(error)) from None
    finally:
        if output is not sys.stdout:
            output.close()
    seconds = time.monotonic() - start
    message = f"exported {count} {args.kind} in {seconds:.1f} s"
    if args.output:
        message += f" to {args.output}"
    if args.json:
        print_json({"kind": args.kind, "rows": count, "seconds": round(seconds, 3),
                    "file": args.output or None})  # fmt: skip
    else:
        print(message, file=sys.stderr)
    return 0


def _write_profiles(pages: Any, writer: Any) -> int:
    """Profiles have a column per property, known only at the end: rows wait in a
    temporary file (one JSON line each), never all in memory."""
    columns: dict[str, str] = {}
    count = 0
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        for page in pages:
            for profile in page.profiles:
                cells = {}
                for prop in profile.properties:
                    header = prop.name + _SUFFIX[prop.value.WhichOneof("kind") or "string_value"]
                    columns.setdefault(prop.name, header)
                    cells[prop.name] = _cell(prop.value)
                spool.write(json.dumps([profile.profile_id, cells]) + "\n")
                count += 1
        names = sorted(columns)
        writer.writerow(["profile_id", *(columns[name] for name in names)])
        spool.seek(0)
        for line in spool:
            profile_id, cells = json.loads(line)
            writer.writerow([profile_id, *(cells.get(name, "") for name in names)])
    return count


# ----------------------------------------------------------------------- commands

IMPORT_FIELDS = ["api_key", "segment_address", "campaign_address", "site_id"]


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-key", help="the site's API key (default: $CLARION_API_KEY)")
    parser.add_argument(
        "--site",
        help="the site the key must belong to, checked before anything is sent "
        "(default: $CLARION_SITE_ID; unset: the key's site)",
    )
    parser.add_argument("--segment-address", help="host:port (default: $CLARION_SEGMENT_ADDRESS)")
    parser.add_argument(
        "--campaign-address",
        help="host:port, to check --site (default: $CLARION_CAMPAIGN_ADDRESS)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per batch or page")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


IMPORT_HELP = """\
import a CSV file (UTF-8, a header line naming the columns) into the API key's site.

subscribers: endpoint,p256dh,auth[,browser][,timezone][,profile_id][,created_at][,vapid_key_id]
  p256dh and auth base64url as browsers give them; browser chrome, firefox, edge, opera,
  safari or other; created_at ISO-8601 (when the browser subscribed; empty: now). A known
  endpoint with the same details is left unchanged; an empty cell keeps what is stored.
profiles: profile_id, then a column per property, typed by a suffix: age:number,
  vip:boolean, signup:timestamp, tags:list (items separated by ;), plain = string.
  An empty cell leaves the property as it is.
events: name, occur_time, profile_id and/or subscriber_id, optionally event_id, then
  property columns typed as for profiles. Without event_id, each row's id is derived
  from its content, so importing the same file again stores nothing twice.

Rows are streamed in batches (1000; events 5000) with a progress bar on stderr. Rows
refused go to FILE.rejects.csv (row, reason, field, message, then the row's cells; row
2 is the first line after the header); the exit status is then 1."""


def register(
    sub: Any,
    add: Callable[..., argparse.ArgumentParser],
    variables_help: Callable[..., str],
) -> None:
    """Adds `clarion import` and `clarion export` to the `clarion` parser."""
    epilog = variables_help(IMPORT_FIELDS, ImportSettings)
    importing = add(sub, "import", "import subscribers, profiles or events from a CSV file", epilog,
                    description=IMPORT_HELP)  # fmt: skip
    importing.add_argument("kind", choices=sorted(KINDS))
    importing.add_argument("file", metavar="FILE.csv")
    importing.add_argument(
        "--batch-size", type=int, default=0,
        help="rows per streamed message (default: 1000; events 5000)",
    )  # fmt: skip
    _connection_arguments(importing)
    importing.set_defaults(func=cmd_import)

    exporting = add(
        sub, "export", "export an audience's subscribers or profiles to CSV", epilog,
        description="export who an audience selects now to CSV (standard output unless -o): "
        "everyone, a saved segment (--segment) or an ad-hoc definition (--definition, a "
        "JSON or YAML file in clarion.segment.v1's SegmentDefinition form). Subscribers come "
        "in the import's columns (plus subscriber_id, state, unsubscribe_reason), so the "
        "file imports as it is; profiles as profile_id and a typed column per property.",
    )  # fmt: skip
    exporting.add_argument("kind", choices=["profiles", "subscribers"])
    exporting.add_argument("--segment", metavar="SEG_ID", help="a saved segment's id")
    exporting.add_argument("--definition", metavar="FILE.json", help="an ad-hoc definition")
    exporting.add_argument(
        "--include-unsubscribed", action="store_true",
        help="subscribers: also those that unsubscribed",
    )  # fmt: skip
    exporting.add_argument("-o", "--output", metavar="FILE.csv", help="write here, not stdout")
    _connection_arguments(exporting)
    exporting.set_defaults(func=cmd_export)

"""Generated hostile input to every gateway route, against real services and databases.

Whatever a browser (or anybody) sends, the gateway answers below 500, every refusal is
a JSON {"error": {"code", "message"}} whose message stays short and never repeats a long
value of the caller's, it carries the CORS header, and a refused subscribe stores nothing.

Hypothesis runs each route's cases in one test (derandomized: the same cases every run)
against one stack and one site for the module, so no function-scoped fixture is shared
across examples. `ROUTE_CASES` counts the cases each route ran on each backend; run with
`-s` to see them.
"""

from __future__ import annotations

import copy
import json
import os
import re
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from clarion.segment.v1 import segment_service_pb2, subscriber_pb2
from services.campaign.admin import create_site
from services.kit.tokens import CLICK_SEPARATOR, engagement_token, unsubscribe_token
from tests.gateway.conftest import GatewaySite, Stack, b64url, browser_subscription
from tests.support.sites import bearer

# Cases per route and test; the whole module stays well under a minute per backend.
EXAMPLES = int(os.environ.get("CLARION_FUZZ_EXAMPLES", "400"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# However hostile the input, an error message is at most this long ...
MAX_MESSAGE = 400
# ... and repeats no run of the caller's value longer than this.
MAX_ECHO = 100

ACTIVE = subscriber_pb2.SUBSCRIBER_STATE_ACTIVE
ROUTE_CASES: Counter[tuple[str, str]] = Counter()
# What the generated cases were answered, (method, status, error code) over both backends.
ANSWERS: Counter[tuple[str, int, str]] = Counter()
ROUTES = (
    "healthz", "config", "subscribe", "unsubscribe", "events", "identify", "track", "preflight",
    "any", "click",
)


@dataclass(frozen=True)
class Deep:
    """A value nested `depth` arrays or objects deep (written as text: json.dumps recurses)."""

    depth: int
    brackets: str = "[]"


class Missing:
    """A field left out of the body."""


MISSING = Missing()


# --- strategies --------------------------------------------------------------------------

ANY_CHARACTER = st.characters(exclude_categories=())  # surrogates, controls, everything
SPECIAL_STRINGS = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "sub\x00x",
        "\ud800",
        "a\udfffb",
        "\ud83d",
        "\x7f",
        "\x85",
        "\u2028",
        "\ufeff",
        "\U0001f600",
        "\t\r\n",
        "%00",
        "../../etc/passwd",
        "null",
        "<script>alert(1)</script>",
        "' OR 1=1 --",
        "x" * 129,
        "x" * 2049,
        "é" * 3000,
        "\x00" * 300,
        "\ud800" * 300,
        "A" * 10_000,
    ]
)
HOSTILE_TEXT = st.one_of(
    SPECIAL_STRINGS,
    st.text(ANY_CHARACTER, max_size=40),
    st.text(ANY_CHARACTER, min_size=100, max_size=3000),
)
HUGE_NUMBERS = st.one_of(
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 10**100, 10**4000, -(10**4000)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -0.0, 5e-324]),
)
DEEP = st.builds(Deep, st.integers(1, 5000), st.sampled_from(["[]", "{}"]))
HOSTILE_VALUE = st.one_of(
    HOSTILE_TEXT,
    HUGE_NUMBERS,
    st.booleans(),
    st.none(),
    DEEP,
    st.lists(st.one_of(HOSTILE_TEXT, st.integers()), max_size=4),
    st.dictionaries(HOSTILE_TEXT, st.one_of(HOSTILE_TEXT, st.integers()), max_size=3),
)


def text_of(value: Any, *, escape: bool = True) -> str:
    """`value` as JSON text, Deep values included.

    escape=False writes strings out instead of as \\u escapes, so a lone surrogate stays
    one (and its bytes are not UTF-8).
    """
    if isinstance(value, Deep):
        opening, closing = value.brackets
        inner = '"x":' if opening == "{" else ""
        return (opening + inner) * (value.depth - 1) + opening + closing * value.depth
    if isinstance(value, dict):
        members = (
            f"{json.dumps(key, ensure_ascii=escape)}:{text_of(item, escape=escape)}"
            for key, item in value.items()
            if not isinstance(item, Missing)
        )
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(text_of(item, escape=escape) for item in value) + "]"
    # NaN and Infinity come out as JSON's non-numbers, on purpose.
    return json.dumps(value, ensure_ascii=escape)


@st.composite
def encoded(draw: st.DrawFn, value: Any) -> bytes:
    """The JSON text of `value` as bytes: mostly UTF-8, sometimes not (CESU, UTF-16, BOM)."""
    how = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "unescaped", "utf-16", "bom"]))
    if how == "unescaped":
        return text_of(value, escape=False).encode("utf-8", "surrogatepass")
    if how == "utf-16":
        return text_of(value).encode("utf-16")
    if how == "bom":
        return b"\xef\xbb\xbf" + text_of(value).encode()
    return text_of(value).encode()


RAW_BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"",
            b"   ",
            b"null",
            b"[]",
            b"[1]",
            b'"a string"',
            b"NaN",
            b"-Infinity",
            b"1e999999",
            b"9" * 5000,
            b"{" * 8000,
            b"[" * 16_000,
            b'{"subscription":' * 900 + b"1" + b"}" * 900,
            b'{"a":"' + b"[" * 10_000 + b'"}',
            b'{"kind":"viewed","run_id":"\xed\xa0\x80"}',
            b"\xff\xfe{\x00}\x00",
            b"\xef\xbb\xbf{}",
            b'{"a":1,}',
            b'{"a":"\\x"}',
            b'{"a":"\x00"}',
            b'{"a":"' + b"\\" * 3000,
            b'"' + b'\\"' * 3000,
            b"x" * 17_000,
        ]
    ),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            None,
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=UTF-16",
            "application/json; charset=latin-1",
            "text/plain;charset=UTF-8",
            "application/merge-patch+json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "text/html",
            "application/octet-stream",
            "garbage",
            ";;;",
            'application/json; charset="',
            "application/" + "j" * 2000,
        ]
    ),
    # Anything a header can carry (HEADER_VALUES is defined below, hence the deferral).
    st.deferred(lambda: HEADER_VALUES),
)
PATH_SEGMENTS = st.one_of(
    st.sampled_from(
        [
            "%00",
            "sub%00x",
            "%2F",
            "a%2Fb",
            "%2e%2e",
            "..",
            "%ff",
            "%ED%A0%80",
            "%",
            "%zz",
            "%C0%AF",
            "%E2%80%A8",
            "sub_" + "0" * 2000,
            "%F0%9F%98%80",
            "site%20id",
            "%0d%0aX-Injected:%20yes",
        ]
    ),
    st.text(ANY_CHARACTER, min_size=1, max_size=200).map(
        lambda text: urllib.parse.quote(text, safe="", errors="surrogatepass")
    ),
    # Id-like text with the characters that broke things (NUL, controls, surrogates, /).
    st.text(st.sampled_from("\x00\x1f\x7f\x85\ud800\u2028/%?#.~_-:aZ09é"), min_size=1, max_size=24)
    .map(lambda text: "sub_" + text)
    .map(lambda text: urllib.parse.quote(text, safe="", errors="surrogatepass")),
)
HEADER_VALUES = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300),
    st.sampled_from(["", "A" * 43, "x" * 4000, "tok\xe9n"]),
)


# --- sending and checking ------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_site(stack: Stack) -> GatewaySite:
    created = await create_site(stack.settings, "Fuzzed shop", "mailto:ops@fuzz.test")
    return GatewaySite(
        created.site_id,
        created.api_key,
        created.vapid_public_key,
        await stack.engagement_secret(created.site_id),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_subscriber(stack: Stack, fuzz_site: GatewaySite) -> str:
    """A subscriber of the fuzzed site that no hostile unsubscribe may touch."""
    answer = await send(
        stack,
        "POST",
        f"/v1/sites/{fuzz_site.site_id}/subscriptions",
        data=json.dumps({"subscription": browser_subscription(uuid.uuid4().hex)}).encode(),
        content_type="application/json",
    )
    assert answer.status == 201, answer
    return str(answer.body["subscriber_id"])


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


async def send(
    stack: Stack,
    method: str,
    path: str,
    *,
    data: bytes | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    # encoded=True: the path goes out byte for byte as written, percent escapes unchanged.
    url = URL(stack.url(path), encoded=True)
    sent = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    async with stack.http.request(
        method, url, data=data, headers=sent, skip_auto_headers=["Content-Type"]
    ) as response:
        raw = await response.read()
        body = json.loads(raw) if raw else None
        return Answer(response.status, body, dict(response.headers))


def long_strings(value: Any) -> list[str]:
    """The caller's strings that an error message must not repeat in full."""
    if isinstance(value, str):
        return [value] if len(value) > MAX_ECHO else []
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in long_strings(key) + long_strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in long_strings(item)]
    return []


def check(answer: Answer, sent: Any = None, *, method: str = "POST") -> None:
    code = (
        answer.body["error"].get("code", "")
        if isinstance(answer.body, dict) and "error" in answer.body
        else ""
    )
    ANSWERS[method, answer.status, str(code)] += 1
    assert answer.status < 500, answer
    assert answer.headers.get("Access-Control-Allow-Origin") == "*", answer
    if answer.status < 400 or method == "HEAD":
        return
    assert isinstance(answer.body, dict) and set(answer.body) == {"error"}, answer
    error = answer.body["error"]
    assert set(error) == {"code", "message"}, answer
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", error["code"]), answer
    message = error["message"]
    assert isinstance(message, str) and 0 < len(message) <= MAX_MESSAGE, answer
    for value in long_strings(sent):
        assert value[: MAX_ECHO + 1] not in message, answer


async def subscriber_state(stack: Stack, site: GatewaySite, subscriber_id: str) -> int:
    stored = await stack.segment.GetSubscriber(
        segment_service_pb2.GetSubscriberRequest(subscriber_id=subscriber_id),
        metadata=bearer(site.api_key),
    )
    return stored.subscriber.state


async def subscriber_count(stack: Stack, site: GatewaySite) -> int:
    count, token = 0, ""
    while True:
        page = await stack.segment.ListSubscribers(
            segment_service_pb2.ListSubscribersRequest(page_size=1000, page_token=token),
            metadata=bearer(site.api_key),
        )
        count += len(page.subscribers)
        token = page.next_page_token
        if not token:
            return count


# --- the routes --------------------------------------------------------------------------


def valid_subscribe_body() -> dict[str, Any]:
    return {
        "subscription": browser_subscription(uuid.uuid4().hex),
        "browser": "firefox",
        "timezone": "Europe/Berlin",
        "profile_id": "user-42",
    }


def valid_event(site: GatewaySite) -> dict[str, Any]:
    run_id, subscriber_id = f"run_{uuid.uuid4().hex}", f"sub_{uuid.uuid4().hex}"
    return {
        "kind": "clicked",
        "run_id": run_id,
        "campaign_id": f"cmp_{uuid.uuid4().hex}",
        "subscriber_id": subscriber_id,
        "button": "buy",
        "engagement_token": engagement_token(
            site.engagement_secret, site.site_id, run_id, subscriber_id
        ),
    }


# Where a body can go wrong, with values that look right but are not (other services'
# rules decide on them) beside the generally hostile ones.
SUBSCRIBE_FIELDS: dict[tuple[str, ...], list[Any]] = {
    ("subscription",): [{}, {"endpoint": "https://push.example.test/x"}],
    ("subscription", "endpoint"): [
        "https://127.0.0.1/",
        "ftp://push.example.test/x",
        "https://push.example.test/" + "a" * 2100,
        "https://push.example.test/ü",
        "https://push.example.test/a b",
    ],
    ("subscription", "keys"): [{}, {"p256dh": "", "auth": ""}],
    ("subscription", "keys", "p256dh"): [
        b64url(b"\x04" + bytes(64)),
        b64url(bytes(65)),
        b64url(b"\x04" + bytes(31)),
        "A",
        "AAAA",
        "not/base64+url!",
        "===",
        "AA==" * 10,
    ],
    ("subscription", "keys", "auth"): [b64url(bytes(15)), b64url(bytes(17)), "A", "AAA="],
    ("subscription", "expirationTime"): [0, "tomorrow"],
    ("browser",): ["netscape", "CHROME", "other"],
    ("timezone",): ["Mars/Olympus", "../../etc/passwd", "Europe/Berlin\n", "utc"],
    ("profile_id",): ["x" * 128, "x" * 129, "tab\there", "nbsp\u00a0", "\U0001f600"],
    ("unknown",): ["ignored"],
}
ID_LOOKALIKES = ["r" * 128, "r" * 129, "run id", "run/1", "run~1", "run_é"]
EVENT_FIELDS: dict[tuple[str, ...], list[Any]] = {
    ("kind",): ["hovered", "VIEWED", "viewed"],
    ("run_id",): ID_LOOKALIKES,
    ("campaign_id",): ID_LOOKALIKES,
    ("subscriber_id",): ID_LOOKALIKES,
    ("button",): ["b" * 64, "b" * 65, "buy now", ""],
    ("engagement_token",): ["A" * 43, "A" * 129, ""],
    ("unknown",): ["ignored"],
}


IDENTIFY_FIELDS: dict[tuple[str, ...], list[Any]] = {
    ("subscriber_id",): ID_LOOKALIKES,
    ("profile_id",): ["x" * 128, "x" * 129, "tab\there", "nbsp\u00a0", "\U0001f600", ""],
    ("unknown",): ["ignored"],
}
TIMES = [
    "2026-01-31T12:00:00Z",
    "2026-01-31T12:00:00.123456789+14:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-02-30T00:00:00Z",
    "2026-01-31",
    "２026-01-31T12:00:00Z",
    "9999-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
]
PROPERTY_VALUES = st.one_of(
    HOSTILE_VALUE,
    st.sampled_from(TIMES),
    st.lists(HOSTILE_TEXT, max_size=3),
    st.just(["x"] * 101),
    st.just("x" * 1025),
)
PROPERTY_NAMES = st.one_of(
    st.sampled_from(["total", "a b", "bad/name", "x" * 64, "x" * 65, "", "\x00", "\ud800"]),
    HOSTILE_TEXT,
)


@st.composite
def tracked_event(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9), label="not an object") == 0:
        return draw(HOSTILE_VALUE, label="event")
    base: dict[str, Any] = {
        "event_id": f"ev-{uuid.uuid4().hex}",
        "name": "Purchase",
        "occur_time": "2026-01-31T12:00:00Z",
        "properties": draw(
            st.dictionaries(PROPERTY_NAMES, PROPERTY_VALUES, max_size=3), label="properties"
        ),
    }
    fields: dict[tuple[str, ...], list[Any]] = {
        ("event_id",): ID_LOOKALIKES + ["clarion:x", ""],
        ("name",): ["n" * 128, "n" * 129, "", "Page\u2028Viewed"],
        ("occur_time",): TIMES,
        ("properties",): [{}, [], {"p": {"q": 1}}, {str(n): n for n in range(101)}],
    }
    return draw(mutated(base, fields), label="event")


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any], fields: dict[tuple[str, ...], list[Any]]):
    """`valid` with up to three fields made wrong; sometimes not an object at all."""
    if draw(st.integers(0, 9), label="not an object") == 0:
        return draw(HOSTILE_VALUE, label="body")
    body = copy.deepcopy(valid)
    for path in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        container = body
        for key in path[:-1]:
            container = container.get(key) if isinstance(container, dict) else None
        if isinstance(container, dict):
            container[path[-1]] = draw(
                st.one_of(
                    st.sampled_from(fields[path]),
                    st.just(MISSING),
                    HOSTILE_TEXT,
                    HOSTILE_VALUE,
                ),
                label=".".join(path),
            )
    return body


class TestEveryRouteAnswersHostileInputBelow500:
    @FUZZ
    @given(segment=PATH_SEGMENTS, method=st.sampled_from(["GET", "HEAD", "POST", "DELETE"]))
    async def test_config(self, stack, fuzz_site, database_backend, segment, method):
        for path in (f"/v1/sites/{segment}/config", f"/v1/sites/{fuzz_site.site_id}/{segment}"):
            check(await send(stack, method, path), method=method)
        ROUTE_CASES[database_backend, "config"] += 1

    @FUZZ
    @given(query=PATH_SEGMENTS, method=st.sampled_from(["GET", "HEAD", "POST", "PUT"]))
    async def test_healthz(self, stack, database_backend, query, method):
        answer = await send(stack, method, f"/healthz?x={query}")
        check(answer, method=method)
        if method == "GET":
            assert (answer.status, answer.body) == (200, {"status": "ok"})
        ROUTE_CASES[database_backend, "healthz"] += 1

    @FUZZ
    @given(data=st.data())
    async def test_subscribe(self, stack, fuzz_site, database_backend, data):
        body = data.draw(mutated(valid_subscribe_body(), SUBSCRIBE_FIELDS), label="body")
        before = await subscriber_count(stack, fuzz_site)
        answer = await send(
            stack,
            "POST",
            f"/v1/sites/{fuzz_site.site_id}/subscriptions",
            data=data.draw(encoded(body), label="bytes"),
            content_type=data.draw(st.sampled_from(["application/json", "text/plain", None])),
        )
        check(answer, body)
        if answer.status >= 400:
            assert await subscriber_count(stack, fuzz_site) == before, answer
        ROUTE_CASES[database_backend, "subscribe"] += 1

    @FUZZ
    @given(
        raw=RAW_BODIES,
        content_type=CONTENT_TYPES,
        route=st.sampled_from(["subscriptions", "events", "identify", "track"]),
        site=st.one_of(st.none(), PATH_SEGMENTS),
    )
    async def test_raw_bodies(
        self, stack, fuzz_site, database_backend, raw, content_type, route, site
    ):
        before = await subscriber_count(stack, fuzz_site)
        answer = await send(
            stack,
            "POST",
            f"/v1/sites/{site or fuzz_site.site_id}/{route}",
            data=raw,
            content_type=content_type,
        )
        check(answer)
        assert answer.status >= 400, answer  # no raw body here is a valid request
        assert await subscriber_count(stack, fuzz_site) == before
        ROUTE_CASES[database_backend, "subscribe" if route == "subscriptions" else route] += 1

    @FUZZ
    @given(data=st.data())
    async def test_events(self, stack, fuzz_site, database_backend, data):
        body = data.draw(mutated(valid_event(fuzz_site), EVENT_FIELDS), label="body")
        if (
            isinstance(body, dict)
            and isinstance(body.get("run_id"), str)
            and isinstance(body.get("subscriber_id"), str)
            and data.draw(st.booleans(), label="genuine token")
        ):
            # A token that verifies, so hostile ids are not stopped by the token check.
            body["engagement_token"] = engagement_token(
                fuzz_site.engagement_secret,
                fuzz_site.site_id,
                body["run_id"],
                body["subscriber_id"],
            )
        answer = await send(
            stack,
            "POST",
            f"/v1/sites/{fuzz_site.site_id}/events",
            data=data.draw(encoded(body), label="bytes"),
            content_type="application/json",
        )
        check(answer, body)
        ROUTE_CASES[database_backend, "events"] += 1

    async def _with_proof(
        self, stack, fuzz_site, fuzz_subscriber, data, route, body
    ) -> Answer:
        """Posts `body` with a token that verifies for its subscriber_id (mostly), a junk
        one, or none, so hostile bodies get past the proof and reach the services."""
        headers: dict[str, str] = {}
        how = data.draw(st.sampled_from(["genuine", "genuine", "missing", "junk"]), label="token")
        subscriber = body.get("subscriber_id") if isinstance(body, dict) else None
        if how == "genuine" and isinstance(subscriber, str):
            headers["X-Clarion-Unsubscribe-Token"] = unsubscribe_token(
                fuzz_site.engagement_secret, fuzz_site.site_id, subscriber
            )
        elif how == "junk":
            headers["X-Clarion-Unsubscribe-Token"] = data.draw(HEADER_VALUES, label="junk")
        return await send(
            stack,
            "POST",
            f"/v1/sites/{fuzz_site.site_id}/{route}",
            data=data.draw(encoded(body), label="bytes"),
            content_type=data.draw(st.sampled_from(["application/json", "text/plain", None])),
            headers=headers,
        )

    @FUZZ
    @given(data=st.data())
    async def test_identify(self, stack, fuzz_site, fuzz_subscriber, database_backend, data):
        valid = {"subscriber_id": fuzz_subscriber, "profile_id": "user-42"}
        body = data.draw(mutated(valid, IDENTIFY_FIELDS), label="body")
        answer = await self._with_proof(stack, fuzz_site, fuzz_subscriber, data, "identify", body)
        check(answer, body)
        assert await subscriber_state(stack, fuzz_site, fuzz_subscriber) == ACTIVE, answer
        ROUTE_CASES[database_backend, "identify"] += 1

    @FUZZ
    @given(data=st.data())
    async def test_track(self, stack, fuzz_site, fuzz_subscriber, database_backend, data):
        events = data.draw(st.lists(tracked_event(), min_size=0, max_size=4), label="events")
        if data.draw(st.integers(0, 19), label="too many") == 0:
            events = events + [{"event_id": "e", "name": "X"}] * 100
        valid = {"subscriber_id": fuzz_subscriber, "events": events}
        body = data.draw(
            mutated(valid, {("subscriber_id",): ID_LOOKALIKES, ("events",): [[], {}, "x"]}),
            label="body",
        )
        answer = await self._with_proof(stack, fuzz_site, fuzz_subscriber, data, "track", body)
        check(answer, body)
        if answer.status == 200:
            results = answer.body["results"]
            assert [r["index"] for r in results] == list(range(len(body["events"]))), answer
            for result in results:
                assert len(result["message"]) <= MAX_MESSAGE, answer
        ROUTE_CASES[database_backend, "track"] += 1

    @FUZZ
    @given(
        subscriber=st.one_of(PATH_SEGMENTS, st.just("sub_" + "0" * 32)),
        # "" is the module's real subscriber; a suffix makes its id hostile.
        real_suffix=st.one_of(
            st.none(),
            st.sampled_from(["", "%00", "%2F", "%20", "%0A", "~", "%ED%A0%80", "x" * 200]),
        ),
        # Mostly the real site, so the subscriber id is what gets checked.
        hostile_site=st.sampled_from([False, False, False, True]),
        site_segment=PATH_SEGMENTS,
        token=st.sampled_from(["genuine", "genuine", "missing", "junk"]),
        junk=HEADER_VALUES,
    )
    async def test_unsubscribe(
        self,
        stack,
        fuzz_site,
        fuzz_subscriber,
        database_backend,
        subscriber,
        real_suffix,
        hostile_site,
        site_segment,
        token,
        junk,
    ):
        if real_suffix is not None:
            subscriber = fuzz_subscriber + real_suffix
        headers = {}
        # Signed for the id as the server will decode it, so the id itself must be refused;
        # never for the real subscriber unchanged, which it would rightly unsubscribe.
        decoded = urllib.parse.unquote(subscriber, errors="replace")
        if token == "genuine" and decoded != fuzz_subscriber:
            headers["X-Clarion-Unsubscribe-Token"] = unsubscribe_token(
                fuzz_site.engagement_secret, fuzz_site.site_id, decoded
            )
        elif token != "missing":
            headers["X-Clarion-Unsubscribe-Token"] = junk
        answer = await send(
            stack,
            "DELETE",
            f"/v1/sites/{site_segment if hostile_site else fuzz_site.site_id}"
            f"/subscriptions/{subscriber}",
            headers=headers,
        )
        check(answer, method="DELETE")
        assert answer.status >= 400, answer  # none of these may unsubscribe anybody
        assert await subscriber_state(stack, fuzz_site, fuzz_subscriber) == ACTIVE, answer
        ROUTE_CASES[database_backend, "unsubscribe"] += 1

    @FUZZ
    @given(
        segment=PATH_SEGMENTS,
        template=st.sampled_from(
            [
                "/v1/sites/{}/subscriptions",
                "/v1/sites/{}/events",
                "/v1/sites/{}/identify",
                "/v1/sites/{}/track",
                "/v1/sites/{}/config",
                "/v1/sites/site_x/subscriptions/{}",
                "/{}",
            ]
        ),
        request_method=st.one_of(st.sampled_from(["POST", "DELETE", "GET"]), HEADER_VALUES),
        request_headers=HEADER_VALUES,
    )
    async def test_preflight(
        self, stack, database_backend, segment, template, request_method, request_headers
    ):
        answer = await send(
            stack,
            "OPTIONS",
            template.format(segment),
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": request_method,
                "Access-Control-Request-Headers": request_headers,
            },
        )
        check(answer, method="OPTIONS")
        ROUTE_CASES[database_backend, "preflight"] += 1

    @FUZZ
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]),
        template=st.sampled_from(
            [
                "/healthz",
                "/v1/sites/{}/config",
                "/v1/sites/{}/subscriptions",
                "/v1/sites/{}/subscriptions/sub_1",
                "/v1/sites/{}/events",
                "/v1/sites/{}/identify",
                "/v1/sites/{}/track",
                "/v1/sites/{}",
                "/v1/{}",
            ]
        ),
        raw=RAW_BODIES,
    )
    async def test_any_method_on_any_route(
        self, stack, fuzz_site, database_backend, method, template, raw
    ):
        answer = await send(
            stack, method, template.format(fuzz_site.site_id), data=raw, content_type=None
        )
        check(answer, method=method)
        ROUTE_CASES[database_backend, "any"] += 1

    @FUZZ
    @given(
        segment=PATH_SEGMENTS,
        run=st.one_of(PATH_SEGMENTS, st.sampled_from(ID_LOOKALIKES)),
        subscriber=st.one_of(PATH_SEGMENTS, st.sampled_from(ID_LOOKALIKES)),
        token=st.one_of(st.just("genuine"), st.just("A" * 43), PATH_SEGMENTS),
        button=st.one_of(
            st.none(),
            st.sampled_from(["0", "1", "2", "3", "-1", "01", "1.0", "１"]),
            # Short enough that the request line stays under aiohttp's 8 KiB.
            st.text(ANY_CHARACTER, max_size=300),
        ),
        structured=st.booleans(),
    )
    async def test_click(
        self, stack, fuzz_site, database_backend, segment, run, subscriber, token, button,
        structured,
    ):
        # A link made of a real site's id and made-up run and subscriber ids (signed for
        # them, or not), or any path segment at all: never a 5xx, never recorded.
        if structured:
            # Signed for the ids as the server decodes them; sent percent-encoded.
            run, subscriber = (urllib.parse.unquote(v, errors="replace") for v in (run, subscriber))
            if token == "genuine":
                token = engagement_token(
                    fuzz_site.engagement_secret, fuzz_site.site_id, run, subscriber
                )
            segment = CLICK_SEPARATOR.join(
                urllib.parse.quote(part, safe="~", errors="surrogatepass")
                for part in (fuzz_site.site_id, run, subscriber, token)
            )
        query = "" if button is None else "?b=" + urllib.parse.quote(
            button, safe="", errors="surrogatepass"
        )
        answer = await send(stack, "GET", f"/c/{segment}{query}")
        check(answer, method="GET")
        assert answer.status in (302, 404), answer
        ROUTE_CASES[database_backend, "click"] += 1

    def test_every_route_ran_its_cases(self, database_backend):
        ran = {route: ROUTE_CASES[database_backend, route] for route in ROUTES}
        print(f"\ngateway fuzz cases on {database_backend}: {ran}")
        print("answers (method, status, code):", sorted(ANSWERS.items()))
        assert all(count >= EXAMPLES for count in ran.values()), ran

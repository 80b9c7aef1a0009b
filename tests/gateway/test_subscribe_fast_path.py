"""The subscribe body's fast path (services/gateway/inputs.py `subscribe_body`) takes only
what the SubscribeBody model takes, as the model reads it: whatever it passes on, the
model refuses and words the refusal, so a browser sees the same 4xx either way."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.gateway import inputs

P256DH = base64.urlsafe_b64encode(b"\x04" + bytes(range(64))).rstrip(b"=").decode()
AUTH = base64.urlsafe_b64encode(bytes(range(16))).rstrip(b"=").decode()


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subscription": {
            "endpoint": "https://push.example.test/send/1",
            "expirationTime": None,
            "keys": {"p256dh": P256DH, "auth": AUTH},
        },
        "browser": "chrome",
        "timezone": "Europe/Berlin",
        "profile_id": "user-1",
    }
    body.update(overrides)
    return body


def _by_model(data: Any) -> inputs.Subscription | None:
    try:
        checked = inputs.SubscribeBody.model_validate(data)
    except ValidationError:
        return None
    keys = checked.subscription.keys
    return inputs.Subscription(
        checked.subscription.endpoint,
        inputs.base64url_decode(keys.p256dh),
        inputs.base64url_decode(keys.auth),
        checked.browser or "",
        checked.timezone or "",
        checked.profile_id or "",
    )


def _agree(data: Any) -> None:
    fast = inputs._plain_subscription(data)
    if fast is not None:
        assert fast == _by_model(data)


# Values a field may be given: right and wrong types, lengths at and past each limit,
# hostile characters, base64url and not.
_TEXT = st.one_of(
    st.text(max_size=5),
    st.text(alphabet="abc\x00\x1f\x7f\u200b\ud800=-_+/", max_size=6),
    st.sampled_from(
        [
            "",
            "chrome",
            "firefox",
            "Chrome",
            "other",
            "x" * 64,
            "x" * 65,
            "x" * 128,
            "x" * 129,
            "a" * 2048,
            "a" * 2049,
            P256DH,
            AUTH,
            P256DH + "=",
            AUTH + "==",
            AUTH + "===",
            "A",
            "AB",
            "ABC=",
            "ab_-",
            "abc def",
            "https://push.example.test/x",
        ]
    ),  # fmt: skip
)
_VALUE = st.one_of(_TEXT, st.none(), st.integers(), st.booleans(), st.lists(_TEXT, max_size=2))


@st.composite
def _bodies(draw: st.DrawFn) -> Any:
    body = _body()
    keys = body["subscription"]["keys"]
    for where, name in (
        (body["subscription"], "endpoint"), (keys, "p256dh"), (keys, "auth"),
        (body, "browser"), (body, "timezone"), (body, "profile_id"),
    ):  # fmt: skip
        choice = draw(st.sampled_from(["keep", "change", "drop"]))
        if choice == "change":
            where[name] = draw(_VALUE)
        elif choice == "drop":
            del where[name]
    if draw(st.booleans()):
        body["subscription"]["keys"] = draw(st.sampled_from([None, [], "keys", {}]))
    if draw(st.booleans()):
        body["subscription"] = draw(st.sampled_from([None, [], "x", {}]))
    return draw(st.sampled_from([body, [body], None, "body"]))


class TestFastPathTakesOnlyWhatTheModelTakes:
    def test_a_browser_s_subscription_is_taken_and_decoded(self) -> None:
        fast = inputs._plain_subscription(_body())
        assert fast is not None
        assert fast == _by_model(_body())
        assert fast.p256dh == b"\x04" + bytes(range(64)) and fast.auth == bytes(range(16))

    def test_fields_left_out_or_null_are_empty(self) -> None:
        for body in (_body(browser=None, timezone=None, profile_id=None),
                     {"subscription": _body()["subscription"]}):  # fmt: skip
            fast = inputs._plain_subscription(body)
            assert fast is not None
            assert (fast.browser, fast.timezone, fast.profile_id) == ("", "", "")
            assert fast == _by_model(body)

    def test_edges_are_left_to_the_model(self) -> None:
        for body in (
            _body(browser="Chrome"), _body(timezone="x" * 65), _body(profile_id="a\x00"),
            _body(subscription={"endpoint": "", "keys": {"p256dh": P256DH, "auth": AUTH}}),
            _body(subscription={"endpoint": "e", "keys": {"p256dh": "@@", "auth": AUTH}}),
            _body(subscription={"endpoint": "e\ud800", "keys": {"p256dh": P256DH, "auth": AUTH}}),
            _body(subscription={"endpoint": 1, "keys": {"p256dh": P256DH, "auth": AUTH}}),
            _body(browser=1), [], None,
        ):  # fmt: skip
            assert inputs._plain_subscription(body) is None
            assert _by_model(body) is None

    @settings(max_examples=400, deadline=None)
    @given(_bodies())
    def test_whatever_it_takes_the_model_takes_the_same(self, data: Any) -> None:
        _agree(data)

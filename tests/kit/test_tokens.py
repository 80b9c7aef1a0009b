"""Engagement and unsubscribe tokens: bound to what they were made for, and nothing else."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.kit.tokens import (
    engagement_token,
    unsubscribe_token,
    verify_engagement_token,
    verify_unsubscribe_token,
)

SECRET = bytes(range(32))
ids = st.text(max_size=40)
secrets = st.binary(min_size=16, max_size=64)


class TestEngagementToken:
    def test_is_base64url_without_padding_and_deterministic(self):
        token = engagement_token(SECRET, "site_a", "run_1", "sub_1")

        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
        assert token == engagement_token(SECRET, "site_a", "run_1", "sub_1")

    def test_verifies_for_what_it_was_made_for(self):
        token = engagement_token(SECRET, "site_a", "run_1", "sub_1")

        assert verify_engagement_token(SECRET, token, "site_a", "run_1", "sub_1")

    @pytest.mark.parametrize(
        ("site_id", "run_id", "subscriber_id"),
        [
            ("site_b", "run_1", "sub_1"),
            ("site_a", "run_2", "sub_1"),
            ("site_a", "run_1", "sub_2"),
            # Moving characters between parts must not give the same MAC input.
            ("site_a", "run_1s", "ub_1"),
            ("site_arun_1", "", "sub_1"),
            ("site_a", "sub_1", "run_1"),
        ],
    )
    def test_does_not_verify_for_anything_else(self, site_id, run_id, subscriber_id):
        token = engagement_token(SECRET, "site_a", "run_1", "sub_1")

        assert not verify_engagement_token(SECRET, token, site_id, run_id, subscriber_id)

    def test_another_secret_does_not_verify_it(self):
        token = engagement_token(SECRET, "site_a", "run_1", "sub_1")

        assert not verify_engagement_token(os.urandom(32), token, "site_a", "run_1", "sub_1")

    @pytest.mark.parametrize("token", ["", "x", "A" * 43, "é" * 43, "\ud800"])
    def test_junk_does_not_verify_and_does_not_raise(self, token):
        assert not verify_engagement_token(SECRET, token, "site_a", "run_1", "sub_1")

    def test_a_padded_or_altered_token_does_not_verify(self):
        token = engagement_token(SECRET, "site_a", "run_1", "sub_1")
        flipped = ("B" if token[0] == "A" else "A") + token[1:]

        assert not verify_engagement_token(SECRET, token + "=", "site_a", "run_1", "sub_1")
        assert not verify_engagement_token(SECRET, flipped, "site_a", "run_1", "sub_1")
        assert not verify_engagement_token(SECRET, token[:-1], "site_a", "run_1", "sub_1")

    @pytest.mark.parametrize("secret", [b"", b"short"])
    def test_a_short_secret_is_refused(self, secret):
        with pytest.raises(ValueError, match="secret"):
            engagement_token(secret, "site_a", "run_1", "sub_1")


class TestUnsubscribeToken:
    def test_verifies_for_its_site_and_subscriber_only(self):
        token = unsubscribe_token(SECRET, "site_a", "sub_1")

        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
        assert verify_unsubscribe_token(SECRET, token, "site_a", "sub_1")
        assert not verify_unsubscribe_token(SECRET, token, "site_a", "sub_2")
        assert not verify_unsubscribe_token(SECRET, token, "site_b", "sub_1")
        assert not verify_unsubscribe_token(os.urandom(32), token, "site_a", "sub_1")

    def test_the_two_kinds_are_not_interchangeable(self):
        # An unsubscribe token whose parts line up with an engagement token's still differs.
        assert unsubscribe_token(SECRET, "site_a", "sub_1") != engagement_token(
            SECRET, "site_a", "", "sub_1"
        )
        token = unsubscribe_token(SECRET, "site_a", "sub_1")
        assert not verify_engagement_token(SECRET, token, "site_a", "", "sub_1")
        engagement = engagement_token(SECRET, "site_a", "run_1", "sub_1")
        assert not verify_unsubscribe_token(SECRET, engagement, "site_a", "sub_1")


class TestBindingProperties:
    @given(secret=secrets, site=ids, run=ids, subscriber=ids)
    def test_a_token_verifies_for_its_own_parts(self, secret, site, run, subscriber):
        token = engagement_token(secret, site, run, subscriber)

        assert verify_engagement_token(secret, token, site, run, subscriber)

    @given(secret=secrets, made_for=st.tuples(ids, ids, ids), asked=st.tuples(ids, ids, ids))
    def test_a_token_verifies_for_no_other_parts(self, secret, made_for, asked):
        assume(made_for != asked)
        token = engagement_token(secret, *made_for)

        assert not verify_engagement_token(secret, token, *asked)

    @given(secret=secrets, other=secrets, site=ids, subscriber=ids)
    def test_an_unsubscribe_token_verifies_with_its_own_secret_only(
        self, secret, other, site, subscriber
    ):
        assume(secret != other)
        token = unsubscribe_token(secret, site, subscriber)

        assert verify_unsubscribe_token(secret, token, site, subscriber)
        assert not verify_unsubscribe_token(other, token, site, subscriber)

    @given(secret=secrets, site=ids, run=ids, subscriber=ids)
    def test_kinds_never_collide(self, secret, site, run, subscriber):
        assert engagement_token(secret, site, run, subscriber) != unsubscribe_token(
            secret, site, subscriber
        )

    @given(
        text=st.text(min_size=1, max_size=40),
        cuts=st.tuples(*[st.integers(0, 40)] * 4),
    )
    def test_the_same_characters_split_differently_give_another_token(self, text, cuts):
        # What naive concatenation would confuse: one string cut into three parts two ways.
        a, b, c, d = (min(cut, len(text)) for cut in cuts)
        first = (text[: min(a, b)], text[min(a, b) : max(a, b)], text[max(a, b) :])
        second = (text[: min(c, d)], text[min(c, d) : max(c, d)], text[max(c, d) :])
        assume(first != second)

        assert engagement_token(SECRET, *first) != engagement_token(SECRET, *second)

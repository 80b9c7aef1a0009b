"""Click links (services/kit/tokens.py): what the service worker builds, the gateway reads."""

from __future__ import annotations

import pytest

from services.kit.tokens import ClickToken, click_path, engagement_token, parse_click_token

SECRET = b"s" * 32


class TestClickLinks:
    def test_a_link_reads_back_as_its_parts(self):
        token = engagement_token(SECRET, "site_1", "run_a.b:c", "sub-1_x")

        path = click_path("site_1", "run_a.b:c", "sub-1_x", token, 2)

        assert path == f"/c/site_1~run_a.b:c~sub-1_x~{token}?b=2"
        assert parse_click_token(path[3:].split("?")[0]) == ClickToken(
            "site_1", "run_a.b:c", "sub-1_x", token
        )
        assert "?" not in click_path("site_1", "run_1", "sub_1", token)

    @pytest.mark.parametrize(
        "text",
        ["", "a~b~c", "a~b~c~d~e", "site.1~run~sub~" + "A" * 43, "s~r~s~" + "A" * 42,
         "s~r~s~" + "A" * 42 + "=", "s~~s~" + "A" * 43, "s~r~" + "x" * 129 + "~" + "A" * 43,
         "s~r/1~s~" + "A" * 43],
    )  # fmt: skip
    def test_anything_else_is_no_link(self, text):
        assert parse_click_token(text) is None

    @pytest.mark.parametrize(
        ("site_id", "run_id", "button"), [("site.1", "run", 0), ("s", "run~1", 0), ("s", "r", 3)]
    )
    def test_a_link_that_could_not_be_read_back_is_refused(self, site_id, run_id, button):
        with pytest.raises(ValueError):
            click_path(site_id, run_id, "sub", "A" * 43, button)

    def test_the_token_is_not_in_its_repr(self):
        assert "A" * 43 not in repr(ClickToken("s", "r", "u", "A" * 43))

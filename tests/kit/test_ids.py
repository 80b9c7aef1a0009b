"""Ids sort in the order one process made them, even within one millisecond."""

from __future__ import annotations

import re

from services.kit.ids import new_id


class TestNewId:
    def test_ids_made_one_after_another_sort_in_that_order(self) -> None:
        ids = [new_id("run") for _ in range(5000)]  # many share a millisecond
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)

    def test_shape_is_prefix_and_32_hex_digits(self) -> None:
        assert re.fullmatch(r"cmp_[0-9a-f]{32}", new_id("cmp"))

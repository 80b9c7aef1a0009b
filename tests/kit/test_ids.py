"""Ids sort in the order one process made them, even within one millisecond."""

from __future__ import annotations

import re

from services.kit.ids import new_id, new_ids


class TestNewId:
    def test_ids_made_one_after_another_sort_in_that_order(self) -> None:
        ids = [new_id("run") for _ in range(5000)]  # many share a millisecond
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)

    def test_shape_is_prefix_and_32_hex_digits(self) -> None:
        assert re.fullmatch(r"cmp_[0-9a-f]{32}", new_id("cmp"))

    def test_a_batch_of_ids_sorts_between_the_ids_made_around_it(self) -> None:
        before = new_id("sub")
        batch = new_ids("sub", 1000)
        after = new_id("sub")
        assert [before, *batch, after] == sorted({before, *batch, after})
        assert all(re.fullmatch(r"sub_[0-9a-f]{32}", made) for made in batch)
        assert new_ids("sub", 0) == []

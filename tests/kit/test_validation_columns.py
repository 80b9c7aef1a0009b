"""A list of flat messages is checked a field at a time first; a bad item is then found
one by one, so the error names the same item, field and reason as an item-by-item check."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import reporting_internal_service_pb2 as ris
from clarion.reporting.v1 import reporting_pb2
from services.kit.validation import InvalidField, check_request


def _outcomes(count: int) -> list[reporting_pb2.DeliveryOutcome]:
    return [
        reporting_pb2.DeliveryOutcome(
            run_id="run_1",
            campaign_id="cmp_1",
            subscriber_id=f"sub_{n}",
            status=common_pb2.DELIVERY_STATUS_SENT,
            browser=common_pb2.BROWSER_CHROME,
            occur_time=Timestamp(seconds=1_700_000_000 + n),
            variant="a" if n % 2 else "",
            profile_id=f"prf {n}" if n % 3 else "",
        )
        for n in range(count)
    ]


BAD = [
    ("subscriber_id", "sub\n2", "INVALID_FIELD"),
    ("subscriber_id", "sub 2", "INVALID_FIELD"),
    ("run_id", "r" * 129, "INVALID_FIELD"),
    ("campaign_id", "cmp\x00", "INVALID_FIELD"),
    ("variant", "a" * 17, "INVALID_FIELD"),
    ("profile_id", "two\tparts", "INVALID_FIELD"),
    ("profile_id", "two\nlines", "INVALID_FIELD"),
    ("status", 99, "INVALID_STATUS"),
    ("reason", 999, "INVALID_REASON"),
]


class TestListsOfFlatMessages:
    def test_a_valid_list_passes(self) -> None:
        check_request(ris.RecordDeliveryOutcomesRequest(outcomes=_outcomes(500)))

    @pytest.mark.parametrize(("name", "value", "reason"), BAD)
    @pytest.mark.parametrize("index", [0, 137, 499])
    def test_the_first_bad_item_and_field_are_named(
        self, name: str, value: object, reason: str, index: int
    ) -> None:
        outcomes = _outcomes(501)
        setattr(outcomes[index], name, value)
        # A later bad item too: the first one is named.
        outcomes[500].subscriber_id = "also bad"
        with pytest.raises(InvalidField) as raised:
            check_request(ris.RecordDeliveryOutcomesRequest(outcomes=outcomes))
        assert raised.value.reason == reason
        assert raised.value.metadata["field"] == f"outcomes[{index}].{name}"

    def test_a_time_out_of_range_is_named(self) -> None:
        outcomes = _outcomes(50)
        outcomes[7].occur_time.seconds = 253_402_300_800
        with pytest.raises(InvalidField) as raised:
            check_request(ris.RecordDeliveryOutcomesRequest(outcomes=outcomes))
        assert raised.value.metadata["field"] == "outcomes[7].occur_time"

"""Delivery's knobs are delivery's: the kit's settings do not carry them."""

from __future__ import annotations

import pytest

from services.delivery.settings import DeliverySettings, delivery_settings
from services.kit.config import Settings


class TestDeliverySettings:
    def test_the_kit_knows_no_delivery_knob(self) -> None:
        assert not {f for f in Settings.model_fields if f.startswith(("delivery_w", "push_t"))}
        assert {"delivery_workers", "push_timeout_seconds"} <= set(DeliverySettings.model_fields)

    def test_shared_settings_gain_delivery_knobs_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CLARION_DELIVERY_WORKERS", "7")
        shared = Settings(internal_token="t", delivery_address="127.0.0.1:1")
        own = delivery_settings(shared)
        assert (own.delivery_workers, own.delivery_address) == (7, "127.0.0.1:1")
        assert own.internal_token_value == "t"
        assert delivery_settings(own) is own

    def test_a_bad_knob_is_refused_naming_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CLARION_DELIVERY_WORKERS", "0")
        with pytest.raises(ValueError, match="delivery_workers"):
            delivery_settings(Settings())

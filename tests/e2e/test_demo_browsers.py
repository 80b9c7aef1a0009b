"""`clarion demo --scenario browsers`: one campaign reaches Chrome, Firefox, Edge and
Safari 16 over Web Push and legacy Safari over APNs (both simulators), each browser's
copy shaped by its content rules. On each test database."""

from __future__ import annotations

import pytest

from clarion.demo_browsers import ok, run_browsers_demo


@pytest.mark.slow
class TestBrowsersScenario:
    async def test_every_browser_gets_the_campaign_as_it_can_show_it(
        self,
        settings_factory,  # type: ignore[no-untyped-def]
    ) -> None:
        settings = settings_factory(push_timeout_seconds=2.0, delivery_poll_seconds=0.05)

        result = await run_browsers_demo(settings.data_dir, 3, settings=settings)

        assert ok(result), result
        browsers = result["browsers"]
        assert set(browsers) == {"chrome", "firefox", "edge", "safari", "safari_legacy"}
        for name in ("chrome", "firefox", "edge", "safari"):
            assert browsers[name]["decrypted"] == browsers[name]["sent"] == 3, name
        assert browsers["chrome"]["content"] == [
            "actions", "body", "icon", "image", "title", "url"
        ]  # fmt: skip
        assert result["content_rules"]["safari_drops"] == ["actions", "icon", "image"]
        legacy = browsers["safari_legacy"]
        assert legacy["accepted"] == legacy["sent"] == 3
        assert legacy["content"] == {
            "aps": {
                "alert": {
                    "title": "Spring sale",
                    "body": "50% off everything today",
                    "action": "View",
                },
                "url-args": ["spring-sale"],
            }
        }
        assert set(result["content_rules"]["warnings"]) == {
            "SAFARI_FIELDS_DROPPED",
            "SAFARI_LEGACY_FIELDS_DROPPED",
        }
        assert result["apns_duplicates"] == 0

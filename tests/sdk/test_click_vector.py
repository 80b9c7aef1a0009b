"""The web SDK builds the gateway's click links itself (sdk/web/src/payload.js clickPath).

Its unit tests check it against a shared vector, sdk/web/test/vectors/click_path.json;
this test checks the same vector against services.kit.tokens, so the SDK and the gateway
cannot drift apart unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path

from services.kit.tokens import click_path, engagement_token, parse_click_token

VECTOR = Path(__file__).parents[2] / "sdk" / "web" / "test" / "vectors" / "click_path.json"


def test_the_sdk_vector_is_what_the_gateway_builds_and_reads() -> None:
    vector = json.loads(VECTOR.read_text())
    parts = (vector["site_id"], vector["run_id"], vector["subscriber_id"])
    token = engagement_token(vector["secret"].encode(), *parts)
    assert token == vector["engagement_token"]
    for button, expected in vector["paths"].items():
        assert click_path(*parts, token, int(button)) == expected
        parsed = parse_click_token(expected.removeprefix("/c/").split("?")[0])
        assert parsed is not None
        assert (parsed.site_id, parsed.run_id, parsed.subscriber_id) == parts

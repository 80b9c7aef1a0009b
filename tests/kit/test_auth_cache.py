"""The API-key cache: answers from memory while fresh, and stays bounded under a flood."""

from __future__ import annotations

import secrets

from services.kit.auth import CachingSiteResolver


class TestCachingSiteResolver:
    async def test_a_known_key_is_asked_for_once_while_fresh(self) -> None:
        asked: list[str] = []

        async def resolve(api_key: str) -> str | None:
            asked.append(api_key)
            return "site_a" if api_key == "good" else None

        cache = CachingSiteResolver(resolve)
        assert [await cache.resolve("good") for _ in range(3)] == ["site_a"] * 3
        assert await cache.resolve("bad") is None
        assert await cache.resolve("bad") is None
        assert asked == ["good", "bad"]

    async def test_a_flood_of_random_keys_cannot_grow_memory(self) -> None:
        async def resolve(api_key: str) -> str | None:
            return None

        cache = CachingSiteResolver(resolve, max_keys=1000)
        for _ in range(20_000):
            assert await cache.resolve(secrets.token_hex(16)) is None
        assert len(cache) <= 2 * 1000

    async def test_an_empty_cache_is_still_a_resolver(self) -> None:
        # Server factories pick `site_resolver or default`: a fresh cache must not be
        # swapped for the default because it holds nothing yet.
        async def resolve(api_key: str) -> str | None:
            return None

        cache = CachingSiteResolver(resolve)
        assert len(cache) == 0
        assert (cache or None) is cache

    async def test_answers_expire_after_the_ttl_of_its_timer(self) -> None:
        answers = {"key": "site_a"}
        now = [0.0]

        async def resolve(api_key: str) -> str | None:
            return answers.get(api_key)

        cache = CachingSiteResolver(resolve, ttl_seconds=30.0, timer=lambda: now[0])
        assert await cache.resolve("key") == "site_a"
        del answers["key"]  # the key was rotated away
        now[0] = 29.9
        assert await cache.resolve("key") == "site_a"
        now[0] = 30.1
        assert await cache.resolve("key") is None

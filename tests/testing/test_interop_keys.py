"""The interop harness deletes only keys it created (issue 18: ``Interop(url, prefix="userdata")``
removed pre-existing ``userdata:*`` keys on close)."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from bullbridge.errors import ConfigurationError
from bullbridge.testing import Interop


async def test_a_user_prefix_holding_keys_is_refused_and_kept(redis_url: str) -> None:
    prefix = f"userdata-{uuid.uuid4().hex[:8]}"
    r = redis.from_url(redis_url, decode_responses=True)
    try:
        await r.set(f"{prefix}:precious", "mine")
        with pytest.raises(ConfigurationError, match="already holds 1 key"):
            async with Interop(redis_url, prefix=prefix):
                pass
        # Used without entering (a producer only): never seen empty, so nothing is deleted.
        loose = Interop(redis_url, prefix=prefix)
        await loose.python_producer("q").add("x", {})
        await loose.close()
        assert await r.get(f"{prefix}:precious") == "mine"
        assert [k async for k in r.scan_iter(f"{prefix}:q:*")], "its own keys stay too: it cannot tell them apart"
        # keep_keys deletes nothing, so any prefix is accepted.
        async with Interop(redis_url, prefix=prefix, keep_keys=True) as kept:
            await kept.python_producer("q").add("y", {})
        assert await r.get(f"{prefix}:precious") == "mine"
    finally:
        await r.delete(*[k async for k in r.scan_iter(f"{prefix}:*")])
        await r.aclose()


async def test_an_empty_user_prefix_and_a_generated_one_are_cleaned(redis_url: str) -> None:
    prefix = f"fresh-{uuid.uuid4().hex[:8]}"
    r = redis.from_url(redis_url, decode_responses=True)
    try:
        async with Interop(redis_url, prefix=prefix) as interop:
            await interop.python_producer("q").add("x", {})
            assert [k async for k in r.scan_iter(f"{prefix}:*")]
        assert [k async for k in r.scan_iter(f"{prefix}:*")] == []
        generated = Interop(redis_url)
        assert generated.prefix.startswith("bbt-")
        await generated.python_producer("q").add("x", {})
        await generated.close()
        assert [k async for k in r.scan_iter(f"{generated.prefix}:*")] == []
    finally:
        await r.aclose()

"""Fixtures: a real Redis for the session, a unique key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from server.store import Store
from tests.redis_server import test_redis_url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with test_redis_url() as url:
        yield url


@pytest.fixture
def key_prefix() -> str:
    """Unique per test, so tests can share one server (CI's machine Redis) safely."""
    return f"test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_client(redis_url: str, key_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    # Leave a shared server as we found it.
    keys = [key async for key in client.scan_iter(match=key_prefix + "*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def store(redis_client: aioredis.Redis, key_prefix: str) -> Store:
    return Store(redis_client, prefix=key_prefix)

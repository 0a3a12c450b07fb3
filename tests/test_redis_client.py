"""The server's Redis client hands cancellations on (server/redis_client.py)."""

from __future__ import annotations

from tests.cancellation import cancellations_pass_on


async def test_a_task_talking_to_redis_stops_when_cancelled(redis_url: str) -> None:
    await cancellations_pass_on(redis_url)

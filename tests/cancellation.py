"""Whether the server's Redis client hands cancellations on, and makes callers
wait for a connection (server/redis_client.py), for any URL it takes: the tests
of each kind of store call :func:`cancellations_pass_on` and
:func:`callers_wait_for_a_connection`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from server.redis_client import RedisClient, connect
from tests.timing import eventually, seconds


async def cancellations_pass_on(url: str) -> None:
    """With redis-py's own connections on Python 3.11, most of these cancels
    were swallowed (the loop went on running): shutdown then hung."""
    client = connect(url, decode_responses=True, socket_timeout=10, max_connections=4)
    kept_running = 0

    async def busy() -> None:
        nonlocal kept_running
        while True:
            await client.get("presence-test:nothing")
            if (task := asyncio.current_task()) is not None and task.cancelling():
                kept_running += 1  # the cancel was swallowed
                return

    try:
        for trial in range(30):
            task = asyncio.create_task(busy())
            # Let it run a varying number of round trips, then cancel mid-flight.
            for _ in range(5 + trial):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.wait([task], timeout=seconds(5))
            assert task.done()
        assert kept_running == 0
    finally:
        await client.aclose()


async def callers_wait_for_a_connection(
    client: RedisClient,
    queue: str,
    *,
    both_taken: Callable[[], Awaitable[bool]],
    refused: str,
    probe: Callable[[], Awaitable[Any]],
    push: Callable[[], Awaitable[Any]],
) -> Any:
    """With a client bounded to 2 commands in flight (and ``timeout`` short):
    two ``BLPOP`` on ``queue`` take both; ``probe()`` is refused (``refused``)
    after waiting its turn; a second ``probe()`` waits until ``push()`` frees
    one, and its answer is returned. The client is closed afterwards."""
    holding = [asyncio.create_task(client.blpop([queue], timeout=seconds(15))) for _ in range(2)]
    try:
        # No event tells that both were taken: the client's count does.
        await eventually(both_taken, seconds(5))
        with pytest.raises(RedisConnectionError, match=refused):
            await probe()  # after waiting `timeout` for a turn
        waiting = asyncio.create_task(probe())
        await push()
        return await asyncio.wait_for(waiting, seconds(5))
    finally:
        for task in holding:
            task.cancel()
        await asyncio.gather(*holding, return_exceptions=True)
        await client.aclose()

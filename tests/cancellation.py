"""Whether the server's Redis client hands cancellations on (server/redis_client.py),
for any URL it takes: the tests of each kind of store call :func:`cancellations_pass_on`."""

from __future__ import annotations

import asyncio

from server.redis_client import connect
from tests.timing import seconds


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

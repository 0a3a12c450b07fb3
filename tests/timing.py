"""One scalable unit for every timeout in the tests.

``PRESENCE_TEST_TIMEOUT_SCALE=3`` triples them on a slow machine; nothing else
needs to change, and no test sleeps to synchronise.
"""

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

SCALE = float(os.environ.get("PRESENCE_TEST_TIMEOUT_SCALE", "1"))


def seconds(value: float) -> float:
    """``value`` seconds, scaled for this machine."""
    return value * SCALE


async def eventually(predicate: Callable[[], Awaitable[bool]], within: float) -> float:
    """Seconds until ``predicate`` holds, checked every 50 ms, failing after
    ``within`` seconds. Only for what another process or Redis does, where there
    is no event to await."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while not await predicate():  # noqa: ASYNC110 - nothing to await: polled
            await asyncio.sleep(0.05)
    return time.monotonic() - started

"""failover: one of two instances killed (SIGKILL) while holding 2,000 agents.

Two servers share the bench's Redis; 2,000 lean agents (bench/lean_ws.py)
connect to the first, then it is killed. Measured: the time from the kill
until every one of its sessions reads ``disconnected`` / ``server-lost`` in
the log (recorded by the survivor's sweeper), and that none is left routable.
``instance_ttl`` is the default (5 s): cleanup can't be faster than that.
"""

from __future__ import annotations

import asyncio
import time

from bench.common import (
    COMPANY,
    Context,
    Result,
    bench_store,
    gather_bounded,
    lean_agent,
    new_prefix,
    routable_count,
    server_under_test,
)

#: Give up on the cleanup after this long (the target is 10 s).
CLEANUP_WITHIN = 60.0


async def run(ctx: Context) -> None:
    count = 500 if ctx.quick else 2000
    prefix = new_prefix()
    async with (
        bench_store(ctx.redis_url, prefix) as store,
        server_under_test(ctx.redis_url, prefix) as survivor,
        server_under_test(ctx.redis_url, prefix) as victim,
    ):
        sockets = await gather_bounded(
            count, 200, lambda i: lean_agent(victim.agent_url, f"f{i:05d}")
        )
        _, cursor = await store.head(COMPANY)
        victim.process.kill()
        killed = time.perf_counter()
        lost: set[str] = set()
        async with asyncio.timeout(CLEANUP_WITHIN):
            while len(lost) < count:
                for event in await store.events(COMPANY, after=cursor):
                    cursor = str(event.id)
                    if event.value == "disconnected" and event.reason == "server-lost":
                        lost.add(event.agent)
                await asyncio.sleep(0.05)
        cleaned = time.perf_counter() - killed
        still_routable = await routable_count(survivor.http_url)
        for socket in sockets:
            socket.close()
    ctx.add(
        Result(
            "failover",
            f"ghosts cleaned ({count} agents)",
            cleaned,
            "s",
            "<= 10",
            "SIGKILL to the last server-lost in the log; instance_ttl 5 s",
        ),
        Result("failover", "still routable after cleanup", float(still_routable), "", "<= 0"),
    )

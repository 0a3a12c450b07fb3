"""storm: 5,000 agents connecting at once, as after an instance restarted.

Every agent opens its socket and sends ``hello`` (status available) at the same
moment, on lean sockets (bench/lean_ws.py). Measured: the time until the last
``welcome``, and until the ACD's "who is available" query returns all of them;
then the log must hold exactly one ``connected`` per agent.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

from bench.common import (
    Context,
    CpuMeter,
    Result,
    lean_agent,
    logged_events,
    new_prefix,
    redis_pid,
    routable_count,
    server_under_test,
)

#: How long the ACD query may take to show everyone once all are welcomed.
VISIBLE_WITHIN = 30.0


async def connected_events(redis_url: str, prefix: str) -> Counter[str]:
    """Per agent, the ``connected`` events in the company's log."""
    events = await logged_events(redis_url, prefix)
    return Counter(event.agent for event in events if event.value == "connected")


async def run(ctx: Context) -> None:
    count = 1000 if ctx.quick else 5000
    prefix = new_prefix()
    async with server_under_test(ctx.redis_url, prefix) as server:
        meter = CpuMeter(server=server.pid, redis=await redis_pid(ctx.redis_url), bench=os.getpid())
        meter.start()
        began = time.perf_counter()
        sockets = await asyncio.gather(
            *(lean_agent(server.agent_url, f"s{i:05d}") for i in range(count))
        )
        welcomed = time.perf_counter() - began
        async with asyncio.timeout(VISIBLE_WITHIN):
            while (visible := await routable_count(server.http_url)) < count:  # noqa: ASYNC110 - polled over HTTP
                await asyncio.sleep(0.05)
        routable = time.perf_counter() - began
        cpu = meter.stop()
        connected = await connected_events(ctx.redis_url, prefix)
        for socket in sockets:
            socket.close()
    wrong = sum(1 for i in range(count) if connected[f"s{i:05d}"] != 1)
    note = (
        f"{count} agents at once; CPU (cores) server {cpu['server']:.2f}, "
        f"redis {cpu['redis']:.2f}, bench {cpu['bench']:.2f}"
    )
    ctx.add(
        Result("storm", f"all {count} welcomed", welcomed, "s", "", note),
        Result(
            "storm",
            f"all {count} routable (ACD query)",
            routable,
            "s",
            "<= 10",
            f"the query returned {visible}",
        ),
        Result("storm", "agents without exactly one connected", float(wrong), "", "<= 0"),
    )

"""sdk: agents as users run them, through the client SDK's ``AgentConsole``.

``CONSOLES`` consoles connect (``async with AgentConsole(...)``, status
available) and each changes its status with ``await console.set_status(…)``
in a loop, one change in flight, for the run's length; then they close (a
``bye`` each). The latency is what the console's caller waits for its ``Ack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from bench.common import (
    Context,
    CpuMeter,
    Result,
    new_prefix,
    p50,
    percentile,
    redis_pid,
    server_under_test,
    token,
)
from client_sdk import AgentConsole

CONSOLES = 100
VALUES = ("break", "available")


async def run(ctx: Context) -> None:
    seconds = 5.0 if ctx.quick else 10.0
    async with (
        server_under_test(ctx.redis_url, new_prefix()) as server,
        contextlib.AsyncExitStack() as consoles,
    ):
        began = time.perf_counter()
        opened = await asyncio.gather(
            *(
                consoles.enter_async_context(
                    AgentConsole(server.agent_url, token(f"k{i:03d}"), status="available")
                )
                for i in range(CONSOLES)
            )
        )
        connecting = time.perf_counter() - began
        acks: list[float] = []
        meter = CpuMeter(server=server.pid, redis=await redis_pid(ctx.redis_url), bench=os.getpid())
        meter.start()
        began = time.perf_counter()
        until = began + seconds

        async def churn(console: AgentConsole) -> None:
            n = 0
            while time.perf_counter() < until:
                sent = time.perf_counter()
                ack = await console.set_status(VALUES[n % 2])
                acks.append((time.perf_counter() - sent) * 1000)
                assert ack.event is not None
                n += 1

        await asyncio.gather(*(churn(console) for console in opened))
        elapsed = time.perf_counter() - began
        cpu = meter.stop()
    note = (
        f"{CONSOLES} consoles, one change in flight each; CPU (cores) server "
        f"{cpu['server']:.2f}, redis {cpu['redis']:.2f}, bench {cpu['bench']:.2f}"
    )
    ctx.add(
        Result("sdk", f"{CONSOLES} consoles connected", connecting, "s"),
        Result("sdk", "changes/s through AgentConsole", len(acks) / elapsed, "/s", "", note),
        Result("sdk", "set_status p50", p50(acks), "ms"),
        Result("sdk", "set_status p99", percentile(acks, 99), "ms"),
    )

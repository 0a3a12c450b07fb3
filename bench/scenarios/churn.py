"""churn: agents changing status as fast as acks come back, watched by 10 monitors.

K raw-WebSocket agents each loop ``status`` break/available, one change in
flight each; a change counts once acked (it is in the log by then). 10 raw
monitors subscribed to the company (after the agents connected, so they see
only the churn) time each event's receipt against the send time of the same
change: the n-th event a monitor gets for an agent is that agent's n-th
change, since a monitor receives each agent's events in log order. Send and
receipt are read from the same clock, in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import defaultdict

from websockets.asyncio.client import ClientConnection

from bench.common import (
    Context,
    CpuMeter,
    Result,
    agent,
    close_all,
    gather_bounded,
    monitor,
    new_prefix,
    p50,
    percentile,
    receive,
    redis_pid,
    send,
    server_under_test,
)

MONITORS = 10
VALUES = ("break", "available")


async def run(ctx: Context) -> None:
    agents = 200
    seconds = 5.0 if ctx.quick else 15.0
    async with server_under_test(ctx.redis_url, new_prefix()) as server:
        names = [f"c{i:04d}" for i in range(agents)]
        sockets: list[ClientConnection] = await gather_bounded(
            agents, 50, lambda i: agent(server.agent_url, names[i])
        )
        monitors: list[ClientConnection] = await gather_bounded(
            MONITORS, MONITORS, lambda i: monitor(server.monitor_url, f"sup{i}")
        )
        sent: dict[str, list[float]] = {name: [] for name in names}
        acks: list[float] = []
        received: list[float] = []
        errors: list[str] = []
        stop = asyncio.Event()
        #: Set once the monitors have every acked change: expected[0] deliveries.
        caught_up = asyncio.Event()
        expected = [0]

        async def churn(name: str, ws: ClientConnection) -> None:
            n = 0
            while not stop.is_set():
                began = time.perf_counter()
                sent[name].append(began)
                await send(ws, {"t": "status", "value": VALUES[n % 2], "ref": n})
                reply = await receive(ws)
                while reply["t"] == "state":  # someone else's change: none expected
                    reply = await receive(ws)
                if reply["t"] != "ack" or reply.get("event") is None:
                    errors.append(str(reply))
                acks.append((time.perf_counter() - began) * 1000)
                n += 1

        async def watch(ws: ClientConnection) -> None:
            seen: dict[str, int] = defaultdict(int)
            with contextlib.suppress(asyncio.CancelledError):
                while True:
                    frame = await receive(ws)
                    now = time.perf_counter()
                    if frame["t"] != "event":
                        errors.append(f"monitor got {frame['t']}")
                        continue
                    who = frame["event"]["agent"]
                    received.append((now - sent[who][seen[who]]) * 1000)
                    seen[who] += 1
                    if expected[0] and len(received) >= expected[0]:
                        caught_up.set()

        watchers = [asyncio.create_task(watch(ws)) for ws in monitors]
        meter = CpuMeter(server=server.pid, redis=await redis_pid(ctx.redis_url), bench=os.getpid())
        meter.start()
        began = time.perf_counter()
        workers = [asyncio.create_task(churn(n, ws)) for n, ws in zip(names, sockets, strict=True)]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*workers)
        expected[0] = len(acks) * MONITORS
        elapsed = time.perf_counter() - began
        cpu = meter.stop()
        # Let the monitors catch up with the last changes, then stop them.
        if len(received) >= expected[0]:
            caught_up.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(caught_up.wait(), 10)
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers)
        await close_all(sockets + monitors)
        warnings = server.warnings()
    note = (
        f"{agents} agents, {MONITORS} monitors, {elapsed:.0f} s; "
        f"CPU (cores) server {cpu['server']:.2f}, redis {cpu['redis']:.2f}, "
        f"bench {cpu['bench']:.2f}"
    )
    ctx.add(
        Result("churn", "status changes/s acked", len(acks) / elapsed, "/s", ">= 3000", note),
        Result("churn", "ack p50", p50(acks), "ms"),
        Result("churn", "ack p99", percentile(acks, 99), "ms", "<= 50"),
        Result("churn", "monitor receipt p50", p50(received), "ms"),
        Result("churn", "monitor receipt p99", percentile(received, 99), "ms", "<= 50"),
        Result(
            "churn",
            "monitor deliveries missing",
            float(expected[0] - len(received)),
            "",
            "<= 0",
            f"of {expected[0]}",
        ),
        Result(
            "churn",
            "server warnings logged",
            float(len(warnings)),
            "",
            "<= 0",
            f"e.g. {warnings[0].split(' ', 3)[-1]!r}" if warnings else "",
        ),
        Result("churn", "errors", float(len(errors)), "", "<= 0", "; ".join(errors[:3])),
    )

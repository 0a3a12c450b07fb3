"""idle: the server's resident memory per connected agent, against the floor of
a bare Starlette/uvicorn WebSocket echo with the same idle connections.

RSS (VmRSS from /proc) is read after a warm-up of 20 connections and again
with N raw agents connected (hello, welcome, status available) and idle; the
difference over N is the cost of one agent. The echo app (bench/echo_app.py)
runs under the same uvicorn settings: websockets-sansio, deflate off.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from websockets.asyncio.client import ClientConnection

from bench.common import (
    Context,
    Result,
    agent,
    close_all,
    gather_bounded,
    new_prefix,
    open_ws,
    receive,
    rss_kib,
    send,
    server_under_test,
)
from tests.processes import running_process
from tests.redis_server import free_port

WARM_UP = 20
#: Connections opened at once while filling (kept as in the runs that
#: docs/performance.md quotes, so figures stay comparable).
OPENING = 40


async def settle(pid: int) -> int:
    """RSS once it stops moving (the server finishes what the connects queued)."""
    await asyncio.sleep(1)
    last = rss_kib(pid)
    for _ in range(10):
        await asyncio.sleep(0.5)
        now = rss_kib(pid)
        if now == last:
            break
        last = now
    return last


async def presence(ctx: Context, count: int) -> tuple[float, float]:
    """KiB per agent, and seconds to connect them."""
    async with server_under_test(ctx.redis_url, new_prefix()) as server:
        warm: list[ClientConnection] = await gather_bounded(
            WARM_UP, WARM_UP, lambda i: agent(server.agent_url, f"w{i}")
        )
        before = await settle(server.pid)
        began = time.perf_counter()
        sockets: list[ClientConnection] = await gather_bounded(
            count, OPENING, lambda i: agent(server.agent_url, f"i{i:05d}")
        )
        took = time.perf_counter() - began
        after = await settle(server.pid)
        await close_all(sockets + warm)
    return (after - before) / count, took


async def echo_one(url: str) -> ClientConnection:
    ws = await open_ws(url)
    await send(ws, {"t": "ping"})
    await receive(ws)
    return ws


async def echo_floor(count: int, seconds: float) -> tuple[float, float]:
    """KiB per idle echo connection, and round trips/s with 50 clients."""
    port = free_port()
    args = ["-m", "bench.echo_app", str(port)]
    async with running_process(args, {}, port) as echo:
        url = f"ws://127.0.0.1:{port}/echo"
        warm = await gather_bounded(WARM_UP, WARM_UP, lambda i: echo_one(url))
        before = await settle(echo.pid)
        sockets: list[ClientConnection] = await gather_bounded(
            count, OPENING, lambda i: echo_one(url)
        )
        after = await settle(echo.pid)
        per_connection = (after - before) / count

        trips = 0
        until = time.perf_counter() + seconds

        async def bounce(ws: ClientConnection) -> None:
            nonlocal trips
            while time.perf_counter() < until:
                await send(ws, {"t": "status", "value": "break", "ref": trips})
                await receive(ws)
                trips += 1

        began = time.perf_counter()
        await asyncio.gather(*(bounce(ws) for ws in sockets[:50]))
        rate = trips / (time.perf_counter() - began)
        await close_all(sockets + warm)
        async with httpx.AsyncClient() as client:  # still serving after all that
            (await client.get(f"http://127.0.0.1:{port}/healthz")).raise_for_status()
    return per_connection, rate


async def run(ctx: Context) -> None:
    sizes = [1000] if ctx.quick else [1000, 5000, 10000]
    for count in sizes:
        per_agent, took = await presence(ctx, count)
        floor, trips = await echo_floor(count, 3.0)
        ctx.add(
            Result(
                "idle",
                f"RSS per agent ({count} agents)",
                per_agent,
                "KiB",
                note=f"connected in {took:.1f} s ({count / took:.0f}/s, {OPENING} at once)",
            ),
            Result("idle", f"MB per 1k agents ({count})", per_agent * 1000 / 1024, "MiB"),
            Result("idle", f"floor: echo RSS per connection ({count})", floor, "KiB"),
            Result("idle", f"ratio to echo floor ({count})", per_agent / floor, "x"),
        )
        if count == sizes[0]:
            ctx.add(
                Result("idle", "floor: echo round trips/s (50 clients)", trips, "/s"),
            )

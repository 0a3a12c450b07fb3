"""tenants: the same load spread over more and more companies.

For each company count in :data:`COUNTS` (``--quick``: :data:`QUICK_COUNTS`), a
fresh server gets :data:`SOCKETS` sockets (``--quick``: :data:`QUICK_SOCKETS`)
split evenly over the companies: each company one monitor subscribed to it and
the rest agents (999 agents for each of 10 companies, 1 for each of 5,000).
Then, open loop as in churn's fixed-rate run, :data:`RATE` status changes per
second in all for a fixed time: change ``i`` goes to agent ``i % agents``, and
agent ``k`` belongs to company ``k % companies``, so consecutive changes go to
different companies and each company gets its share of the rate. Each change
is sent when it is due and timed from then.

The shape keeps constant what the server pays per change and per socket: the
same rate, one ack and one monitor frame per change, the same number of
sockets. What grows with the count is what being many companies costs:
companies per group-commit batch, feed channels, per-company state, and
monitors in place of agents. The sockets are fixed rather than the agents
because a socket costs the server more than an idle agent's keys do: each one
is pinged and has tasks waiting on timers and futures, and with 10,000 sockets
instead of 5,010 the server's young garbage collections take tens of ms where
they took none, whatever the number of companies (the numbers are in
docs/performance.md). 5,000 companies need 10,000 sockets, so every count has
them; the agents go from 9,990 to 5,000.

Sockets open :data:`OPENING` at a time (as in tests/test_tenants.py), agents
first, then the monitors, so the monitors see only the changes; the setup is
outside the measured window. The agents and monitors are churn's
(:mod:`bench.scenarios.churn`), on :mod:`bench.lean_ws` sockets, each company
with tokens of its own; agent names are unique across companies, so one tally
serves them all. Reported per count, besides churn's figures: each process's
CPU over the window, and the Redis connections the server holds at its end
(the clients ``CLIENT LIST`` names ``presence:<instance>…``; the instance is
the one the fresh key prefix's ``instances`` set holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import redis.asyncio as aioredis

from bench.common import (
    SECRET,
    Context,
    CpuMeter,
    Result,
    gather_bounded,
    new_prefix,
    p50,
    percentile,
    redis_pid,
    server_under_test,
)
from bench.lean_ws import LeanSocket, lean_connect
from bench.scenarios.churn import (
    CATCH_UP,
    TICK,
    Agent,
    Monitor,
    Tally,
    collector_paused,
    send_at_rate,
)
from client_sdk.protocol import MSGPACK, encode
from server.auth import issue
from server.keys import Keys
from tests.processes import ServerProcess

COUNTS = (10, 100, 1000, 5000)
QUICK_COUNTS = (10, 100, 1000)
#: Agents and monitors in all, whatever the number of companies: each count must
#: divide it, into at least two.
SOCKETS = 10_000
QUICK_SOCKETS = 2_000
#: Changes per second in all.
RATE = 1000
#: Sockets opened at once while setting up.
OPENING = 100
#: What one instance may hold, whatever the number of companies (tests/test_tenants.py).
MAX_CONNECTIONS = 64


def company_token(company: str, sub: str, role: str) -> str:
    return issue(SECRET, company=company, sub=sub, role=role, now=int(time.time()), ttl=86_400)


async def open_agent(server: ServerProcess, agent: Agent, company: str) -> None:
    agent.socket = await lean_connect(server.agent_url, MSGPACK, agent.on_message)
    hello = {"t": "hello", "token": company_token(company, agent.name, "agent")}
    agent.socket.send(encode(hello | {"status": "available"}, MSGPACK))
    await agent.welcome


async def open_monitor(server: ServerProcess, monitor: Monitor, company: str) -> LeanSocket:
    """A monitor of ``company``, past its ``subscribed``."""
    socket = await lean_connect(server.monitor_url, MSGPACK, monitor.on_message)
    frames: list[dict[str, Any]] = [
        {"t": "hello", "token": company_token(company, "sup", "supervisor")},
        {"t": "subscribe", "ref": 1},
    ]
    for frame, answer in zip(frames, ("welcome", "subscribed"), strict=True):
        socket.send(encode(frame, MSGPACK))
        reply = await monitor.replies.get()
        if reply["t"] != answer:
            raise RuntimeError(f"monitor of {company}: expected {answer}, got {reply}")
    return socket


async def drive(agents: list[Agent], tally: Tally, seconds: float) -> None:
    """:data:`RATE` changes/s for ``seconds``, each stamped with when it was due;
    then the acks, for up to ``CATCH_UP``: one missing is an error."""
    total = await send_at_rate(agents, RATE, seconds)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CATCH_UP):
            while len(tally.acks) < total and not tally.errors:  # noqa: ASYNC110 - acks arrive by callback
                await asyncio.sleep(TICK)
    if len(tally.acks) < total:
        tally.errors.append(f"{total - len(tally.acks)} of {total} changes never acked")


async def redis_connections(redis_url: str, prefix: str) -> int:
    """The connections the one server on ``prefix`` holds, by their names."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        (instance,) = [str(member) for member in await client.smembers(Keys(prefix).instances())]
        clients: list[dict[str, Any]] = await client.client_list()
        return len([c for c in clients if c["name"].startswith(f"presence:{instance}")])
    finally:
        await client.aclose()


async def one_count(ctx: Context, companies: int, sockets: int, seconds: float) -> None:
    tally = Tally()
    names = [f"co-{n:04d}" for n in range(companies)]
    count = companies * (sockets // companies - 1)
    prefix = new_prefix()
    async with server_under_test(ctx.redis_url, prefix) as server:
        began = time.perf_counter()
        agents = [Agent(f"t{k:04d}", tally, lambda _: None) for k in range(count)]
        await gather_bounded(
            count, OPENING, lambda k: open_agent(server, agents[k], names[k % companies])
        )
        monitors = [Monitor(tally) for _ in range(companies)]
        watching = await gather_bounded(
            companies, OPENING, lambda n: open_monitor(server, monitors[n], names[n])
        )
        setup = time.perf_counter() - began
        meter = CpuMeter(server=server.pid, redis=await redis_pid(ctx.redis_url), bench=os.getpid())
        meter.start()
        with collector_paused():
            await drive(agents, tally, seconds)
        cpu = meter.stop()
        held = await redis_connections(ctx.redis_url, prefix)
        # One monitor per company: each change is delivered once.
        tally.expected = len(tally.acks)
        tally.check_caught_up()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tally.caught_up.wait(), CATCH_UP)
        for socket in watching + [agent.socket for agent in agents if agent.socket]:
            socket.close()
        warnings = server.warnings()
    acks, received = tally.acks, tally.received
    shape = (
        f"{companies} companies x ({count // companies} agents + 1 monitor), "
        f"{RATE}/s for {seconds:.0f} s; setup {setup:.1f} s"
    )
    rows: list[tuple[str, float, str, str, str]] = [
        # Over the schedule, as churn's: all of it when every change was acked.
        ("changes/s acked", len(acks) / seconds, "/s", f">= {RATE}", shape),
        ("ack p50", p50(acks), "ms", "", ""),
        ("ack p99", percentile(acks, 99), "ms", "", ""),
        ("monitor delivery p50", p50(received), "ms", "", ""),
        ("monitor delivery p99", percentile(received, 99), "ms", "", ""),
        ("deliveries missing", tally.expected - len(received), "", "<= 0", f"of {tally.expected}"),
        ("errors", len(tally.errors), "", "<= 0", tally.errors[0][:200] if tally.errors else ""),
        (
            "server warnings logged",
            len(warnings),
            "",
            "<= 0",
            f"e.g. {warnings[0].split(' ', 3)[-1]!r}" if warnings else "",
        ),
        *((f"CPU {name}", share, "cores", "", "") for name, share in cpu.items()),
        ("server's Redis connections", held, "", f"<= {MAX_CONNECTIONS}", ""),
    ]
    ctx.add(
        *(
            Result("tenants", f"{companies} companies: {metric}", float(value), unit, target, note)
            for metric, value, unit, target, note in rows
        )
    )


async def run(ctx: Context) -> None:
    seconds, sockets = (5.0, QUICK_SOCKETS) if ctx.quick else (10.0, SOCKETS)
    for companies in QUICK_COUNTS if ctx.quick else COUNTS:
        await one_count(ctx, companies, sockets, seconds)

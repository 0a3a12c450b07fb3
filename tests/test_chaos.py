"""Issue 4's acceptance run: three instances on one Redis, 300 SDK consoles and
three live monitors behind a load balancer, while one instance is killed, one
is stopped and started again, and Redis restarts (keeping its data).

Afterwards: every invariant holds over the whole log, each console's view of
its agent is the store's, each monitor's view is the store's, and every
session the killed instance held has exactly one ``server-lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from client_sdk import AgentConsole, LiveMonitor, PresenceError
from server.store import Store
from tests.eventlog import reasons
from tests.invariants import check_company
from tests.processes import LoadBalancer, ServerProcess
from tests.redis_server import RedisProcess
from tests.servers import instance_id, run_server, token
from tests.timing import eventually, seconds

AGENTS = 300
STATUSES = ("available", "break", "meal", "busy", "training")


async def test_presence_stays_exact_through_failures(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path)
    redis.start()
    client = aioredis.Redis.from_url(redis.url, decode_responses=True)
    store = Store(client, prefix="outage:")
    try:
        async with AsyncExitStack() as stack:

            async def start() -> ServerProcess:
                return await stack.enter_async_context(run_server(redis))

            a, b, c = await start(), await start(), await start()
            balancer = await stack.enter_async_context(LoadBalancer([a.port, b.port, c.port]))
            await run_chaos(redis, store, balancer, a, b, start)
    finally:
        await client.aclose()
        redis.kill()


async def run_chaos(
    redis: RedisProcess,
    store: Store,
    balancer: LoadBalancer,
    killed: ServerProcess,
    stopped: ServerProcess,
    start: Callable[[], Awaitable[ServerProcess]],
) -> None:
    consoles = [
        AgentConsole(
            balancer.agent_url,
            token(f"a-{n:03d}"),
            backoff=lambda: [0.1] * 600,
            request_timeout=seconds(30),
        )
        for n in range(AGENTS)
    ]
    for console in consoles:
        await console.connect()
    monitors = [
        LiveMonitor(
            balancer.monitor_url, token(f"sup-{n}", "supervisor"), backoff=lambda: [0.1] * 600
        )
        for n in range(3)
    ]
    for monitor in monitors:
        await monitor.connect()
    held_by_killed = [
        str(console.session)
        for n, console in enumerate(consoles)
        if (await store.holder("acme", f"a-{n:03d}") or "").startswith(instance_id(killed))
    ]
    assert len(held_by_killed) > AGENTS // 5  # the balancer spread them

    churning = True

    async def churn(console: AgentConsole, rng: random.Random) -> None:
        while churning:
            # Mid-failover a change may time out or be refused: the console carries on.
            with contextlib.suppress(PresenceError, TimeoutError):
                await console.set_status(rng.choice(STATUSES))
            await asyncio.sleep(rng.uniform(0.2, 1.0))

    workers = [asyncio.create_task(churn(c, random.Random(n))) for n, c in enumerate(consoles)]
    await asyncio.sleep(2)  # the scenario's pace, not a synchronisation
    killed.kill()
    await asyncio.sleep(2)
    assert await stopped.stop() == 0
    restarted = await start()
    balancer.backends = [*balancer.backends, restarted.port]
    await asyncio.sleep(2)
    redis.kill()
    await asyncio.sleep(1)
    redis.start()
    await asyncio.sleep(3)
    churning = False
    await asyncio.gather(*workers)

    # Quiet now: every console back online, every monitor caught up.
    async def settled() -> bool:
        if not all(console.connected for console in consoles):
            return False
        try:
            states = await store.states("acme")
        except RedisConnectionError:
            return False  # our own client's connection went down with Redis; it reconnects
        return all(
            states[f"a-{n:03d}"].connection == "online"
            and states[f"a-{n:03d}"].session == console.session
            for n, console in enumerate(consoles)
        )

    await eventually(settled, seconds(60))
    _, last = await store.head("acme")

    async def caught_up() -> bool:
        return all(m.cursor is not None and m.cursor.id == last for m in monitors)

    await eventually(caught_up, seconds(30))

    events = await check_company(store, "acme")  # invariants 1–5 over the whole log
    states = {agent: state.to_wire() for agent, state in (await store.states("acme")).items()}
    for n, console in enumerate(consoles):
        mine = console.state
        assert mine is not None
        stored = states[f"a-{n:03d}"]
        fields = ("connection", "status", "activity", "session")
        assert {k: mine[k] for k in fields} == {k: stored[k] for k in fields}, n
    for monitor in monitors:
        assert dict(monitor.agents) == states
    for session in held_by_killed:
        assert reasons(events, session).count(("disconnected", "server-lost")) == 1, session
    for console in consoles:
        await console.close()
    for monitor in monitors:
        await monitor.close()

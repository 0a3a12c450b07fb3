"""The multi-tenant shape: thousands of companies on one instance, each with its
own supervisor watching, served with a small fixed number of Redis connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import redis.asyncio as aioredis

from presence_protocol import JSON
from server.auth import issue
from tests.clients import RawAgent, RawMonitor, connect_raw
from tests.processes import presence_server
from tests.servers import SECRET, instance_id, process_env
from tests.timing import seconds

COMPANIES = 2000
#: What one instance may hold, whatever the number of companies.
MAX_CONNECTIONS = 64
#: Sockets opened at once while setting up: a burst of thousands would measure
#: the test's own event loop, not the server.
OPENING = 100

T = TypeVar("T")


async def bounded(count: int, make: Callable[[int], Awaitable[T]]) -> list[T]:
    """``make(0) … make(count - 1)``, at most :data:`OPENING` at a time, in order."""
    gate = asyncio.Semaphore(OPENING)

    async def one(n: int) -> T:
        async with gate:
            return await make(n)

    return await asyncio.gather(*(one(n) for n in range(count)))


def token(company: str, sub: str, role: str) -> str:
    return issue(SECRET, company=company, sub=sub, role=role, now=int(time.time()))


async def hello(client: RawAgent, company: str, sub: str, role: str) -> dict[str, Any]:
    welcome = await client.request({"t": "hello", "token": token(company, sub, role)})
    assert welcome["t"] == "welcome", welcome
    return welcome


async def named_connections(redis_client: aioredis.Redis, instance: str) -> int:
    clients: Iterable[dict[str, Any]] = await redis_client.client_list()
    return sum(1 for c in clients if c["name"].startswith(f"presence:{instance}"))


async def test_two_thousand_watched_companies_all_changing_at_once(
    redis_url: str, key_prefix: str, redis_client: aioredis.Redis
) -> None:
    companies = [f"co-{n:04d}" for n in range(COMPANIES)]
    async with presence_server(process_env(redis_url, key_prefix)) as server:

        async def open_agent(n: int) -> RawAgent:
            agent = RawAgent(await connect_raw(server.agent_url, JSON), JSON)
            await hello(agent, companies[n], "a-1", "agent")
            return agent

        async def open_monitor(n: int) -> RawMonitor:
            monitor = RawMonitor(await connect_raw(server.monitor_url, JSON), JSON)
            monitor.view = {}
            await hello(monitor, companies[n], "sup-1", "supervisor")
            subscribed = await monitor.subscribe()
            assert [agent["agent"] for agent in subscribed["agents"]] == ["a-1"]
            return monitor

        agents = await bounded(COMPANIES, open_agent)
        monitors = await bounded(COMPANIES, open_monitor)

        async def ack(n: int) -> None:
            answer = await agents[n].recv()
            assert answer["t"] == "ack" and answer["event"]["value"] == "available", answer

        async def delivery(n: int) -> None:
            frame = await monitors[n].next_event()
            assert frame["event"]["value"] == "available", frame
            assert frame["state"]["routable"], frame

        # Every agent at once: each ack and each monitor's event within the second.
        async with asyncio.timeout(seconds(1)):
            for n, agent in enumerate(agents):
                await agent.send({"t": "status", "value": "available", "ref": n})
            await asyncio.gather(
                *(ack(n) for n in range(COMPANIES)), *(delivery(n) for n in range(COMPANIES))
            )

        held = await named_connections(redis_client, instance_id(server).rstrip("/"))
        assert 0 < held <= MAX_CONNECTIONS, held
        for client in (*agents, *monitors):
            await client.ws.close()

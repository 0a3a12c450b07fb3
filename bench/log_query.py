"""How fast one agent's day comes out of a busy company's log (target: < 100 ms).

    python -m bench.log_query [--agents 5000] [--events 20] [--queries 200]

Fills one company (a key prefix of its own) with ``--agents`` agents'
``--events`` events each, interleaved as a day's traffic would be, through the
store's script like the server writes them; then times
``store.log(company, agent=…, start_ms=…, end_ms=…)`` for random agents, and the
same over HTTP (``GET /v1/agents/{agent}/events?from=&to=``) from a server
started in this process. Uses ``PRESENCE_BENCH_REDIS_URL`` if set (its keys are
deleted afterwards), else a private Valkey.

The log's ids are Redis's clock, so the "day" the queries select is the fill's
wall-clock window: the whole of each agent's events, the worst case for a day.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
import time
import uuid
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any

import httpx
import redis.asyncio as aioredis
import uvicorn

from server.app import create_app, uvicorn_config
from server.auth import issue
from server.config import Settings
from server.store import Store
from tests.redis_server import private_redis

COMPANY = "bench"
DAY_MS = 86_400_000
#: Script runs in flight at once while filling: enough to keep Redis busy.
IN_FLIGHT = 64
#: After the session's first two events (connected, available), pairs that
#: leave the agent routable again, so every pair applies.
PAIRS: list[tuple[tuple[str, str], tuple[str, str]]] = [
    (("activity", "in-call"), ("activity", "end-call")),
    (("status", "break"), ("status", "available")),
    (("acd", "occupying"), ("acd", "releasing")),
    (("activity", "meeting"), ("activity", "meeting-end")),
]


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    url = os.environ.get("PRESENCE_BENCH_REDIS_URL")
    if url:
        yield url
        return
    with private_redis("valkey") as private:
        yield private


def change(store: Store, agent: str, step: tuple[str, str], now: int) -> Awaitable[Any]:
    kind, value = step
    if kind == "activity":
        return store.activity(COMPANY, agent, value, now=now)
    if kind == "status":
        return store.set_status(COMPANY, agent, value, by_user=True, now=now)
    return store.acd(COMPANY, agent, value, now=now)


async def bounded(calls: Iterable[Awaitable[Any]]) -> None:
    """Await ``calls`` with at most IN_FLIGHT at once (a coroutine starts when awaited)."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(call: Awaitable[Any]) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(call) for call in calls))


async def fill(store: Store, agents: list[str], events: int, day: int) -> None:
    """Every agent's ``events`` events, one step of every agent at a time."""
    steps = [step for k in range((events - 2) // 2) for step in PAIRS[k % len(PAIRS)]]
    gap = DAY_MS // (len(steps) + 1)

    def now(agent_index: int, step_index: int) -> int:
        return day + step_index * gap + agent_index

    await bounded(
        store.hello(COMPANY, a, conn=f"bench/{a}", now=now(i, 0), status="available")
        for i, a in enumerate(agents)
    )
    for s, step in enumerate(steps, start=1):
        await bounded(change(store, a, step, now(i, s)) for i, a in enumerate(agents))


def figures(name: str, samples: list[float], counts: list[int]) -> None:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    print(
        f"{name:<34} p50 {statistics.median(ordered):7.2f} ms   p99 {p99:7.2f} ms   "
        f"max {ordered[-1]:7.2f} ms   ({statistics.mean(counts):.0f} events each)"
    )


async def over_http(
    url: str, prefix: str, agents: list[str], start: int, end: int
) -> tuple[list[float], list[int]]:
    settings = Settings(key_prefix=prefix, log_level="warning")
    secret = "bench-" + "x" * 32
    app = create_app(settings, redis_url=url, secret=secret)
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on such sockets,
    # and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn_config(app, settings))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # it failed to start: say why
        await asyncio.sleep(0.01)  # uvicorn offers no startup event to await
    token = issue(secret, company=COMPANY, sub="bench", role="supervisor", now=int(time.time()))
    samples, counts = [], []
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            for agent in agents:
                started = time.perf_counter()
                response = await client.get(
                    f"/v1/agents/{agent}/events", params={"from": start, "to": end}
                )
                samples.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                counts.append(len(response.json()["events"]))
    finally:
        server.should_exit = True
        await task
    return samples, counts


async def run(url: str, agent_count: int, events: int, queries: int) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    client = aioredis.Redis.from_url(url, decode_responses=True)
    store = Store(client, prefix=prefix)
    agents = [f"agent-{n:05d}" for n in range(agent_count)]
    day = int(time.time() * 1000) // DAY_MS * DAY_MS
    try:
        filled_from = int(time.time() * 1000)
        started = time.perf_counter()
        await fill(store, agents, events, day)
        elapsed = time.perf_counter() - started
        filled_to = int(time.time() * 1000) + 1
        length = await client.xlen(store.stream_key(COMPANY))
        print(
            f"filled {length} entries ({agent_count} agents) in {elapsed:.1f} s "
            f"({length / elapsed:.0f} events/s)"
        )

        picked = random.Random(7).choices(agents, k=queries)
        samples, counts = [], []
        for agent in picked:
            began = time.perf_counter()
            page, _ = await store.log(COMPANY, agent=agent, start_ms=filled_from, end_ms=filled_to)
            samples.append((time.perf_counter() - began) * 1000)
            counts.append(len(page))
        figures("store.log(agent=…, day)", samples, counts)

        samples, counts = [], []
        after: str | None = None
        while len(samples) < 20 and (after is not None or not samples):
            began = time.perf_counter()
            page, after = await store.log(
                COMPANY, after=after, start_ms=filled_from, end_ms=filled_to, limit=1000
            )
            samples.append((time.perf_counter() - began) * 1000)
            counts.append(len(page))
        figures("store.log(company, 1000 a page)", samples, counts)

        samples, counts = await over_http(url, prefix, picked, filled_from, filled_to)
        figures("GET /v1/agents/{a}/events?from&to", samples, counts)
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.log_query", description=__doc__)
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--events", type=int, default=20, help="per agent, even, at least 2")
    parser.add_argument("--queries", type=int, default=200)
    options = parser.parse_args()
    with redis_url() as url:
        asyncio.run(run(url, options.agents, options.events, options.queries))


if __name__ == "__main__":
    main()

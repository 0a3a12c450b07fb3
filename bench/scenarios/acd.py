"""acd: claims per second with 8 concurrent claimers, and the "who is available"
query, over HTTP against ``python -m server``; the claimers are lean HTTP/1.1
keep-alive connections (bench/lean_http.py), the query uses ``httpx``.

N routable agents are written through the store directly (``hello`` with
status available, each on a connection id of its own), as the log_query
bench fills its log. Each claimer loops ``POST /v1/acd/claim``, back to back;
each agent claimed goes to a queue that 8 other connections drain with
``POST /v1/agents/{a}/acd {"value": "releasing"}`` (the call ended), so the
pool never runs dry. Claims/s counts claims only, but the server also serves a
release per claim. Afterwards the log is read: per agent, ``occupying`` and
``releasing`` must alternate (no agent claimed twice at once).
"""

from __future__ import annotations

import asyncio
import os
import time

import httpx

from bench.common import (
    COMPANY,
    Context,
    CpuMeter,
    Result,
    bench_store,
    logged_events,
    new_prefix,
    p50,
    percentile,
    redis_pid,
    server_under_test,
    token,
)
from bench.fill import bounded
from bench.lean_http import LeanHttp

CLAIMERS = 8
#: Connections ending calls, apart from the claimers: in a contact center the
#: call's end, not the claimer, frees the agent.
RELEASERS = 8


async def fill(redis_url: str, prefix: str, count: int) -> None:
    now = int(time.time() * 1000)
    async with bench_store(redis_url, prefix) as store:
        await bounded(
            store.hello(COMPANY, f"a{i:05d}", conn=f"bench/{i}", now=now + i, status="available")
            for i in range(count)
        )


async def claimer(
    base: str,
    until: float,
    claims: list[float],
    refusals: list[int],
    calls: asyncio.Queue[str | None],
) -> None:
    """Claim back to back; each claimed agent's call goes to the releasers."""
    headers = {"Authorization": f"Bearer {token('acd', role='acd')}"}
    async with LeanHttp(base, headers) as client:
        while time.perf_counter() < until:
            began = time.perf_counter()
            status, body = await client.post("/v1/acd/claim", {})
            claims.append((time.perf_counter() - began) * 1000)
            if status != 200:
                refusals.append(status)
                continue
            calls.put_nowait(body["state"]["agent"])


async def releaser(base: str, releases: list[float], calls: asyncio.Queue[str | None]) -> None:
    """End calls as they come (``releasing``), until told to stop (``None``)."""
    headers = {"Authorization": f"Bearer {token('acd', role='acd')}"}
    async with LeanHttp(base, headers) as client:
        while (agent := await calls.get()) is not None:
            began = time.perf_counter()
            status, body = await client.post(f"/v1/agents/{agent}/acd", {"value": "releasing"})
            releases.append((time.perf_counter() - began) * 1000)
            if status != 200:
                raise RuntimeError(f"release of {agent}: {status} {body}")


async def double_assignments(redis_url: str, prefix: str) -> int:
    """Claims of an agent that was already occupied, read from the log: per
    agent, ``occupying`` and ``releasing`` must alternate."""
    occupied: set[str] = set()
    doubles = 0
    for event in await logged_events(redis_url, prefix):
        if event.value == "occupying":
            doubles += event.agent in occupied
            occupied.add(event.agent)
        elif event.value == "releasing":
            occupied.discard(event.agent)
    return doubles


async def run(ctx: Context) -> None:
    agents = 5000
    seconds = 5.0 if ctx.quick else 10.0
    prefix = new_prefix()
    await fill(ctx.redis_url, prefix, agents)
    async with server_under_test(ctx.redis_url, prefix) as server:
        base = server.http_url
        # The query first, on the untouched pool: p99 of sequential requests.
        headers = {"Authorization": f"Bearer {token('acd', role='acd')}"}
        samples: list[float] = []
        async with httpx.AsyncClient(base_url=base, headers=headers) as client:
            for _ in range(50):  # warm-up: connection, caches
                await client.get(
                    "/v1/agents", params={"routable": "true", "order": "idle", "limit": "10"}
                )
            for _ in range(200 if ctx.quick else 1000):
                began = time.perf_counter()
                response = await client.get(
                    "/v1/agents", params={"routable": "true", "order": "idle", "limit": "10"}
                )
                samples.append((time.perf_counter() - began) * 1000)
                response.raise_for_status()
                assert len(response.json()["agents"]) == 10
        ctx.add(
            Result("acd", f"available-agents query p50 ({agents} agents)", p50(samples), "ms"),
            Result(
                "acd",
                f"available-agents query p99 ({agents} agents)",
                percentile(samples, 99),
                "ms",
                "<= 20",
            ),
        )

        claims: list[float] = []
        releases: list[float] = []
        refusals: list[int] = []
        meter = CpuMeter(server=server.pid, redis=await redis_pid(ctx.redis_url), bench=os.getpid())
        meter.start()
        began = time.perf_counter()
        until = began + seconds
        calls: asyncio.Queue[str | None] = asyncio.Queue()
        releasing = [asyncio.create_task(releaser(base, releases, calls)) for _ in range(RELEASERS)]
        await asyncio.gather(
            *(claimer(base, until, claims, refusals, calls) for _ in range(CLAIMERS))
        )
        elapsed = time.perf_counter() - began
        for _ in releasing:
            calls.put_nowait(None)
        await asyncio.gather(*releasing)
        cpu = meter.stop()
    doubles = await double_assignments(ctx.redis_url, prefix)
    note = (
        f"{CLAIMERS} claimers; {RELEASERS} more connections release each claimed agent; "
        f"CPU (cores) server {cpu['server']:.2f}, redis {cpu['redis']:.2f}, "
        f"bench {cpu['bench']:.2f}"
    )
    ctx.add(
        Result("acd", "claims/s (8 claimers)", len(claims) / elapsed, "/s", ">= 2000", note),
        Result("acd", "claim p50", p50(claims), "ms"),
        Result("acd", "claim p99", percentile(claims, 99), "ms", "<= 10"),
        Result("acd", "release p99", percentile(releases, 99), "ms"),
        Result("acd", "claims refused", float(len(refusals)), "", "<= 0"),
        Result("acd", "double assignments (from the log)", float(doubles), "", "<= 0"),
    )

"""log_query: one agent's day of events among N agents' history (target < 100 ms).

Fills the log with ``bench/fill.py`` (20 events per agent, interleaved), then
times ``GET /v1/agents/{a}/events?from=&to=`` for random agents against
``python -m server``, ``store.log`` for the same agents directly, and the
company's whole window paged 1,000 entries at a time.
"""

from __future__ import annotations

import random
import time

import httpx

from bench.common import (
    COMPANY,
    Context,
    Result,
    bench_store,
    new_prefix,
    p50,
    percentile,
    server_under_test,
    token,
)
from bench.fill import DAY_MS, fill

EVENTS = 20
QUERIES = 200
#: Pages of the company's window read in a row (1,000 entries each).
COMPANY_PAGES = 20


async def run(ctx: Context) -> None:
    count = 1000 if ctx.quick else 5000
    prefix = new_prefix()
    agents = [f"agent-{n:05d}" for n in range(count)]
    day = int(time.time() * 1000) // DAY_MS * DAY_MS
    async with bench_store(ctx.redis_url, prefix) as store:
        start = int(time.time() * 1000)
        began = time.perf_counter()
        await fill(store, agents, EVENTS, day)
        took = time.perf_counter() - began
        end = int(time.time() * 1000) + 1
        length = await store.redis.xlen(store.keys.events(COMPANY))
        picked = random.Random(7).choices(agents, k=QUERIES)
        direct: list[float] = []
        for name in picked:
            t0 = time.perf_counter()
            await store.log(COMPANY, agent=name, start_ms=start, end_ms=end)
            direct.append((time.perf_counter() - t0) * 1000)
        pages: list[float] = []
        after: str | None = None
        while len(pages) < COMPANY_PAGES and (after is not None or not pages):
            t0 = time.perf_counter()
            _, after = await store.log(COMPANY, after=after, start_ms=start, end_ms=end, limit=1000)
            pages.append((time.perf_counter() - t0) * 1000)
    over_http: list[float] = []
    async with server_under_test(ctx.redis_url, prefix) as server:
        headers = {"Authorization": f"Bearer {token('sup', role='supervisor')}"}
        async with httpx.AsyncClient(base_url=server.http_url, headers=headers) as http:
            for name in picked:
                t0 = time.perf_counter()
                response = await http.get(
                    f"/v1/agents/{name}/events", params={"from": start, "to": end}
                )
                over_http.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
                assert len(response.json()["events"]) == EVENTS
    ctx.add(
        Result(
            "log_query",
            "log fill through the store script",
            length / took,
            "events/s",
            note=f"{length} events, {count} agents x {EVENTS}",
        ),
        Result(
            "log_query", f"store.log(agent, day) p99 ({count} agents)", percentile(direct, 99), "ms"
        ),
        Result(
            "log_query",
            f"store.log(company, 1000 a page) p99 ({len(pages)} pages)",
            percentile(pages, 99),
            "ms",
        ),
        Result("log_query", f"GET agent's day p50 ({count} agents)", p50(over_http), "ms"),
        Result(
            "log_query",
            f"GET agent's day p99 ({count} agents)",
            percentile(over_http, 99),
            "ms",
            "<= 100",
        ),
    )

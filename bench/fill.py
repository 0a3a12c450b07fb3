"""Filling a company's log as a day's traffic would: every agent's events,
interleaved, through the store's script like the server writes them. The log's
ids are Redis's clock, so a "day" query over the fill's wall-clock window
selects the whole of each agent's events: the worst case for a day.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

from bench.common import COMPANY
from server.store import Store

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

"""Group commit: requests that arrive while batches are in flight go together
in the next one.

Every status change is one script run in Redis, and at thousands of changes a
second the per-call cost in Python (packing, the pool, a round trip's
bookkeeping) was over a third of the server's CPU. Coalescing the changes that
queue up meanwhile into one run costs an idle server nothing (a lone request
leaves at once) and makes a busy one cheaper per change the busier it gets.

Batches are per key (a shard: the companies whose changes may go to Redis
together; on Redis Cluster, one master's), at most ``max_batch`` items, at most
``max_in_flight`` at once per key — more than one, so a request never waits
for a whole round trip of someone else's batch while the connection pool has
room (the ACD's claims were latency-bound at one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    def __init__(
        self,
        run_batch: Callable[[str, Sequence[Item]], Awaitable[Sequence[Result | Exception]]],
        max_batch: int,
        max_in_flight: int,
    ) -> None:
        """``run_batch(key, items)`` returns one result per item, in order: a
        result that is an exception is raised to its caller alone, and what
        ``run_batch`` raises is raised to every caller of that batch."""
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: dict[str, list[tuple[Item, asyncio.Future[Result]]]] = {}
        self._in_flight: dict[str, int] = {}
        self._runners: set[asyncio.Task[None]] = set()

    async def submit(self, key: str, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append((item, future))
        if self._in_flight.get(key, 0) < self._max_in_flight:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            runner = asyncio.create_task(self._run(key), name=f"coalesce-{key}")
            self._runners.add(runner)
            runner.add_done_callback(self._runners.discard)
        return await future

    async def _run(self, key: str) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while pending := self._pending.get(key):
                batch = pending[: self._max_batch]
                del pending[: self._max_batch]
                if not pending:
                    del self._pending[key]
                try:
                    results = await self._run_batch(key, [item for item, _ in batch])
                except Exception as exc:  # each caller decides: retry or give up
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if future.done():  # its caller may have given up
                            continue
                        if isinstance(result, BaseException):
                            future.set_exception(result)
                        else:
                            future.set_result(result)
                batch = []
        finally:
            # Cancelled (shutdown): nobody must wait forever on a batch that won't run.
            for _, future in batch:
                future.cancel()
            self._in_flight[key] -= 1
            if not self._in_flight[key]:
                del self._in_flight[key]
                for _, future in self._pending.pop(key, ()):
                    future.cancel()

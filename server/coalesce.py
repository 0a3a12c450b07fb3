"""Group commit: requests that arrive while a batch is in flight go together in
the next one.

Every status change is one script run in Redis, and at thousands of changes a
second the per-call cost in Python (packing, the pool, a round trip's
bookkeeping) was over a third of the server's CPU. Coalescing the changes that
queue up meanwhile into one run costs an idle server nothing (a lone request
leaves at once) and makes a busy one cheaper per change the busier it gets.

Batches are per key (a company: one script run touches one company's keys, so
one cluster slot), at most ``max_batch`` items, one in flight per key.
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
        run_batch: Callable[[str, Sequence[Item]], Awaitable[Sequence[Result]]],
        max_batch: int,
    ) -> None:
        """``run_batch(key, items)`` returns one result per item, in order; what it
        raises is raised to every caller of that batch."""
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._pending: dict[str, list[tuple[Item, asyncio.Future[Result]]]] = {}
        self._runners: set[asyncio.Task[None]] = set()

    async def submit(self, key: str, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = []
            runner = asyncio.create_task(self._run(key, pending), name=f"coalesce-{key}")
            self._runners.add(runner)
            runner.add_done_callback(self._runners.discard)
        pending.append((item, future))
        return await future

    async def _run(self, key: str, pending: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while pending:
                batch = pending[: self._max_batch]
                del pending[: self._max_batch]
                try:
                    results = await self._run_batch(key, [item for item, _ in batch])
                except Exception as exc:  # each caller decides: retry or give up
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():  # its caller may have given up
                            future.set_result(result)
                batch = []
        finally:
            # Cancelled (shutdown): nobody must wait forever on a batch that won't run.
            for _, future in batch + pending:
                future.cancel()
            del self._pending[key]

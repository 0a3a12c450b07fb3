"""Group commit (server/coalesce.py): what arrives during a batch goes in the next."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from server.coalesce import Coalescer
from tests.timing import seconds


class Recorder:
    """A batch runner that records its batches and can be held mid-batch."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()

    async def __call__(self, key: str, items: Sequence[int]) -> list[int]:
        self.batches.append((key, list(items)))
        self.started.set()
        await self.release.wait()
        if any(item < 0 for item in items):
            raise ValueError("negative")
        return [item * 10 for item in items]


async def holding_first_batch(
    max_batch: int, max_in_flight: int = 1
) -> tuple[Recorder, Coalescer[int, int], asyncio.Task[int]]:
    """A coalescer whose first batch (``[1]``) has started and is held there."""
    runner = Recorder()
    coalescer = Coalescer(runner, max_batch=max_batch, max_in_flight=max_in_flight)
    runner.release.clear()
    first = asyncio.create_task(coalescer.submit("acme", 1))
    await runner.started.wait()
    runner.started.clear()
    return runner, coalescer, first


async def test_a_lone_request_runs_at_once_alone() -> None:
    runner = Recorder()
    coalescer = Coalescer(runner, max_batch=8, max_in_flight=1)
    assert await asyncio.wait_for(coalescer.submit("acme", 1), seconds(5)) == 10
    assert runner.batches == [("acme", [1])]


async def test_requests_arriving_during_a_batch_go_together_in_the_next() -> None:
    runner, coalescer, first = await holding_first_batch(3, 1)
    later = [asyncio.create_task(coalescer.submit("acme", n)) for n in range(2, 7)]
    await asyncio.sleep(0)  # let them all queue behind the held batch
    runner.release.set()
    results = await asyncio.wait_for(asyncio.gather(first, *later), seconds(5))
    assert results == [10, 20, 30, 40, 50, 60]
    assert runner.batches == [("acme", [1]), ("acme", [2, 3, 4]), ("acme", [5, 6])]


async def test_a_failing_batch_fails_only_its_callers() -> None:
    runner, coalescer, held = await holding_first_batch(2, 1)
    failing = [asyncio.create_task(coalescer.submit("acme", n)) for n in (-1, 2)]
    after = asyncio.create_task(coalescer.submit("acme", 3))
    await asyncio.sleep(0)
    runner.release.set()
    assert await asyncio.wait_for(held, seconds(5)) == 10
    for task in failing:
        with pytest.raises(ValueError, match="negative"):
            await asyncio.wait_for(task, seconds(5))
    assert await asyncio.wait_for(after, seconds(5)) == 30


async def test_a_caller_that_gives_up_leaves_the_others_their_results() -> None:
    runner, coalescer, held = await holding_first_batch(8, 1)
    impatient = asyncio.create_task(coalescer.submit("acme", 2))
    patient = asyncio.create_task(coalescer.submit("acme", 3))
    await asyncio.sleep(0)
    impatient.cancel()
    runner.release.set()
    assert await asyncio.wait_for(asyncio.gather(held, patient), seconds(5)) == [10, 30]
    assert impatient.cancelled()


async def test_keys_batch_apart_and_do_not_wait_for_each_other() -> None:
    runner, coalescer, held = await holding_first_batch(8, 1)
    other = asyncio.create_task(coalescer.submit("globex", 2))
    # globex's batch starts while acme's is still held.
    await asyncio.wait_for(runner.started.wait(), seconds(5))
    assert runner.batches == [("acme", [1]), ("globex", [2])]
    runner.release.set()
    assert await asyncio.wait_for(asyncio.gather(held, other), seconds(5)) == [10, 20]


async def test_up_to_max_in_flight_batches_run_at_once_then_requests_wait() -> None:
    runner, coalescer, first = await holding_first_batch(8, 2)
    second = asyncio.create_task(coalescer.submit("acme", 2))
    # A second batch leaves at once, though the first is still in flight ...
    await asyncio.wait_for(runner.started.wait(), seconds(5))
    later = [asyncio.create_task(coalescer.submit("acme", n)) for n in (3, 4)]
    await asyncio.sleep(0)
    # ... and with both slots taken, the rest wait to go together.
    assert runner.batches == [("acme", [1]), ("acme", [2])]
    runner.release.set()
    results = await asyncio.wait_for(asyncio.gather(first, second, *later), seconds(5))
    assert results == [10, 20, 30, 40]
    assert runner.batches[2:] == [("acme", [3, 4])]

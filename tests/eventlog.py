"""Reading a company's event log in tests: waiting for what a server records on
its own time, and short views of events to compare."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.store import Store
from tests.timing import eventually, seconds


async def wait_for_log(
    store: Store, predicate: Callable[[list[Any]], bool], company: str = "acme"
) -> list[Any]:
    """The log once ``predicate`` holds: the server records a close on its own time."""
    events: list[Any] = []

    async def holds() -> bool:
        nonlocal events
        events = await store.events(company)
        return predicate(events)

    await eventually(holds, seconds(5))
    return events


def values(events: list[Any]) -> list[tuple[str, str | None]]:
    """Each event's value and reason."""
    return [(e.value, e.reason) for e in events]


def reasons(events: list[Any], session: str) -> list[tuple[str, str | None]]:
    """The value and reason of each of ``session``'s events."""
    return [(e.value, e.reason) for e in events if e.session == session]

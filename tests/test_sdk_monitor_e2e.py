"""The SDK's LiveMonitor against a real server and Redis, while SDK consoles change state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from client_sdk import (
    AgentConsole,
    Cursor,
    LiveMonitor,
    MonitorEvent,
    Resnapshot,
    SessionClosed,
)
from client_sdk.protocol import JSON, MSGPACK
from server.store import Store
from tests.clients import console_for, fast_backoff
from tests.servers import RunningServer
from tests.timing import seconds


def monitor_for(server: RunningServer, *, role: str = "supervisor", **options: Any) -> LiveMonitor:
    options.setdefault("backoff", fast_backoff)
    return LiveMonitor(
        server.monitor_url,
        server.token("sup-1", role=role),
        request_timeout=seconds(5),
        **options,
    )


async def next_change(changes: AsyncIterator[Any]) -> Any:
    return await asyncio.wait_for(anext(changes), seconds(5))


async def caught_up(
    changes: AsyncIterator[Any], store: Store, since: Cursor
) -> list[MonitorEvent | Resnapshot]:
    """Take changes from ``since`` until one reaches the log's last event.

    Not ``monitor.cursor``: the reader folds ahead of what the iterator has yielded.
    """
    last = (await store.events("acme"))[-1].id
    assert last is not None
    taken = []
    while Cursor(since.epoch, last).follows(since):
        taken.append(await next_change(changes))
        since = taken[-1].cursor
    return taken


async def served(store: Store, segment: str | None = None) -> dict[str, dict[str, Any]]:
    """What the store holds, as a monitor of ``segment`` should see it."""
    states = await store.states("acme")
    return {
        agent: state.to_wire()
        for agent, state in states.items()
        if segment is None or segment in state.segments
    }


async def missed_since(store: Store, cursor: Cursor) -> list[tuple[Any, ...]]:
    return [(e.id, e.type, e.value, e.reason) for e in await store.events("acme", cursor.id)]


def described(changes: list[MonitorEvent | Resnapshot]) -> Iterator[tuple[Any, ...]]:
    for change in changes:
        assert isinstance(change, MonitorEvent), change
        event = change.event
        yield event["id"], event["type"], event["value"], event["reason"]


@pytest.mark.parametrize("subprotocol", [MSGPACK, JSON])
async def test_snapshot_then_events_end_equal_to_the_store(
    server: RunningServer, store: Store, subprotocol: str
) -> None:
    async with (
        console_for(server, "a-1", status="available") as a1,
        console_for(server, "a-2") as a2,
        monitor_for(server, subprotocol=subprotocol) as monitor,
    ):
        changes = aiter(monitor.events())
        snapshot = await next_change(changes)
        assert isinstance(snapshot, Resnapshot)
        assert snapshot.agents == await served(store) == monitor.agents
        assert snapshot.cursor == monitor.cursor

        await a1.set_status("break")
        await a2.report("meeting")
        await a2.report("meeting-end")
        async with console_for(server, "a-3", status="available"):
            pass  # connected, available, then bye: disconnected
        await a1.close()

        taken = await caught_up(changes, store, snapshot.cursor)
        assert list(described(taken)) == await missed_since(store, snapshot.cursor)
        assert monitor.agents == await served(store)
        last = taken[-1]
        assert isinstance(last, MonitorEvent) and last.cursor == monitor.cursor
        assert last.state == monitor.agents[last.event["agent"]]
    assert monitor.closed and monitor.close_code == 1000


async def test_a_lost_socket_resumes_without_gap_or_duplicate(
    server: RunningServer, store: Store
) -> None:
    reconnecting, changed = asyncio.Event(), asyncio.Event()
    tokens = 0

    async def token() -> str:
        """The token for each connection; a reconnection's waits until the changes
        below have landed, so they are all made while the monitor is away."""
        nonlocal tokens
        tokens += 1
        if tokens > 1:
            reconnecting.set()
            await changed.wait()
        return server.token("sup-1", role="supervisor")

    monitor = LiveMonitor(
        server.monitor_url, token, backoff=fast_backoff, request_timeout=seconds(5)
    )
    async with (
        console_for(server, "a-1", status="available") as a1,
        console_for(server, "a-2") as a2,
        monitor,
    ):
        changes = aiter(monitor.events())
        snapshot = await next_change(changes)
        await a1.set_status("break")
        before = (await caught_up(changes, store, snapshot.cursor))[-1].cursor

        assert monitor._ws is not None
        monitor._ws.transport.abort()  # the network drops: no close frame
        await asyncio.wait_for(reconnecting.wait(), seconds(5))
        assert not monitor.connected
        await a1.set_status("available")
        await a2.report("in-call")
        await a2.report("end-call")
        changed.set()

        taken = await caught_up(changes, store, before)
        # Recovered: the missed events, each once, and no new snapshot.
        assert list(described(taken)) == await missed_since(store, before)
        assert monitor.connected and monitor.cursor is not None
        assert monitor.cursor.epoch == snapshot.cursor.epoch
        assert monitor.agents == await served(store)


async def test_a_segment_monitor_sees_its_agents_only(server: RunningServer, store: Store) -> None:
    sales_token = server.token("a-1", segments=("sales",))
    async with (
        AgentConsole(server.agent_url, sales_token, backoff=fast_backoff) as a1,
        console_for(server, "a-2", status="available") as a2,
        monitor_for(server, segment="sales") as monitor,
    ):
        changes = aiter(monitor.events())
        snapshot = await next_change(changes)
        assert set(snapshot.agents) == {"a-1"} and snapshot.agents == await served(store, "sales")
        await a2.set_status("break")  # outside the segment: not shown
        await a1.set_status("available")
        taken = await caught_up(changes, store, snapshot.cursor)
        assert len(taken) == 1 and isinstance(taken[0], MonitorEvent)
        assert (taken[0].event["agent"], taken[0].event["value"]) == ("a-1", "available")
        assert monitor.agents == await served(store, "sales")


async def test_resume_from_a_stored_cursor(server: RunningServer, store: Store) -> None:
    async with console_for(server, "a-1") as a1:
        async with monitor_for(server) as first:
            stored = first.cursor
        assert stored is not None
        await a1.set_status("available")
        await a1.report("meeting")

        async with monitor_for(server, cursor=stored) as again:
            changes = aiter(again.events())
            taken = await caught_up(changes, store, stored)
            assert list(described(taken)) == await missed_since(store, stored)
            # No snapshot: the view holds the agents that changed since the cursor.
            assert again.agents == await served(store)


@pytest.mark.parametrize(("role", "close_code"), [("agent", 4503), ("acd", 4503)])
async def test_only_supervisors_and_admins(
    server: RunningServer, role: str, close_code: int
) -> None:
    with pytest.raises(SessionClosed) as refused:
        await monitor_for(server, role=role).connect()
    assert refused.value.code == close_code
    async with monitor_for(server, role="admin") as monitor:
        assert monitor.connected


async def test_a_bad_token_is_unauthorized(server: RunningServer) -> None:
    monitor = LiveMonitor(server.monitor_url, "not-a-jwt")
    with pytest.raises(SessionClosed) as refused:
        await monitor.connect()
    assert refused.value.code == 4501

"""``/v1/monitor`` over real sockets (spec §5): snapshot, live events, resume, slow readers."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from client_sdk import AgentConsole
from client_sdk.protocol import JSON, MSGPACK, encode
from server.store import Store, id_key
from tests.clients import RawMonitor, open_agent, open_monitor
from tests.eventlog import wait_for_log
from tests.servers import RunningServer
from tests.timing import seconds

NOW = 1_732_400_000_000


async def last_id(store: Store, company: str = "acme") -> str:
    _, entry_id = await store.head(company)
    return entry_id


def states_on_the_wire(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {agent: state.to_wire() for agent, state in states.items()}


@pytest.mark.parametrize("role", ["agent", "acd"])
async def test_only_supervisors_and_admins(server: RunningServer, role: str) -> None:
    ws = await connect(server.monitor_url, subprotocols=[JSON])
    await ws.send(encode({"t": "hello", "token": server.token("x-1", role=role)}, JSON))
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), seconds(5))
    assert ws.close_code == 4503


@pytest.mark.parametrize("subprotocol", [JSON, MSGPACK])
async def test_snapshot_then_every_event(
    server: RunningServer, store: Store, subprotocol: str
) -> None:
    agent, _ = await open_agent(server, "a-1", hello={"status": "available"})
    monitor = await open_monitor(server, role="admin", subprotocol=subprotocol)
    subscribed = await monitor.subscribe()
    assert subscribed["recovered"] is False and subscribed["ref"] == 1
    assert [s["agent"] for s in subscribed["agents"]] == ["a-1"]
    assert subscribed["cursor"] == {
        "epoch": await store.redis.get(store.keys.epoch("acme")),
        "id": await last_id(store),
    }
    await agent.request({"t": "status", "value": "break", "ref": 1})
    frame = await monitor.next_event()
    assert frame["event"]["value"] == "break" and frame["state"]["status"] == "break"
    assert frame["cursor"]["id"] == frame["event"]["id"] == frame["state"]["version"]
    await agent.ws.close()
    await monitor.read_until(await wait_for_disconnect(store))
    assert monitor.view == states_on_the_wire(await store.states("acme"))
    assert await monitor.request({"t": "subscribe"}) == {
        "t": "error",
        "ref": None,
        "code": "bad-request",
        "message": "already subscribed",
    }
    await monitor.ws.close()


async def wait_for_disconnect(store: Store) -> str:
    events = await wait_for_log(store, lambda events: events[-1].value == "disconnected")
    return str(events[-1].id)


async def test_joins_a_busy_log_without_gap_or_duplicate(
    server: RunningServer, store: Store
) -> None:
    """The issue's acceptance: 50 SDK consoles change state while a monitor subscribes."""
    statuses = ["available", "break", "meal", "busy", "training"]
    consoles = [
        AgentConsole(server.agent_url, server.token(f"a-{n:02d}"), request_timeout=seconds(10))
        for n in range(50)
    ]
    await asyncio.gather(*(console.connect() for console in consoles))
    subscribed = asyncio.Event()

    async def churn(console: AgentConsole, rng: random.Random) -> None:
        for step in range(30):
            if step == 10:
                await subscribed.wait()  # keep changing while the monitor subscribes
            await console.set_status(rng.choice(statuses))

    async def watch() -> RawMonitor:
        # Its client takes frames off the socket as they come and keeps them for
        # read_until below, so the server sees a monitor that keeps up (one that
        # does not is test_a_monitor_that_stops_reading_is_closed_and_harms_no_one).
        monitor = await open_monitor(server)
        await monitor.subscribe()
        subscribed.set()
        return monitor

    work = [churn(console, random.Random(n)) for n, console in enumerate(consoles)]
    monitor, *_ = await asyncio.gather(watch(), *work)
    assert monitor.cursor is not None
    snapshot_cursor = monitor.cursor["id"]
    await monitor.read_until(await last_id(store))
    logged = [e.to_wire() for e in await store.events("acme", after=snapshot_cursor)]
    assert monitor.events == logged  # same ids, same order, same content
    assert len(logged) > 100  # it really joined a moving log
    assert monitor.view == states_on_the_wire(await store.states("acme"))
    await asyncio.gather(*(console.close() for console in consoles))
    await monitor.ws.close()


async def test_resume_from_a_cursor_gets_exactly_the_missed_events(
    server: RunningServer, store: Store
) -> None:
    agent, _ = await open_agent(server, "a-1")
    monitor = await open_monitor(server)
    await monitor.subscribe()
    await agent.request({"t": "status", "value": "available", "ref": 1})
    await monitor.read_until(await last_id(store))
    view, cursor = monitor.view, monitor.cursor
    await monitor.ws.close()
    for value in ("break", "meal", "available"):
        await agent.request({"t": "status", "value": value, "ref": 2})
    await agent.request({"t": "activity", "value": "meeting", "ref": 3})
    assert cursor is not None
    missed = [e.to_wire() for e in await store.events("acme", after=cursor["id"])]
    resumed = await open_monitor(server)
    resumed.view = view
    subscribed = await resumed.subscribe(cursor=cursor)
    assert subscribed["recovered"] is True and subscribed["agents"] is None
    assert subscribed["cursor"] == cursor
    await resumed.read_until(await last_id(store))
    assert resumed.events == missed and len(missed) == 4
    await agent.request({"t": "activity", "value": "meeting-end", "ref": 4})  # then live
    assert (await resumed.next_event())["event"]["value"] == "meeting-end"
    assert resumed.view == states_on_the_wire(await store.states("acme"))
    await agent.ws.close()
    await resumed.ws.close()


@pytest.mark.parametrize("cursor_kind", ["other-epoch", "trimmed", "malformed"])
async def test_a_cursor_that_cannot_be_served_gets_a_snapshot(
    server: RunningServer, store: Store, cursor_kind: str
) -> None:
    agent, _ = await open_agent(server, "a-1")
    first_id = (await store.events("acme"))[0].id
    assert first_id is not None
    epoch = await store.redis.get(store.keys.epoch("acme"))
    await agent.request({"t": "status", "value": "break", "ref": 1})
    monitor = await open_monitor(server)
    if cursor_kind == "malformed":
        answer = await monitor.request({"t": "subscribe", "cursor": {"id": 5}, "ref": 3})
        assert (answer["t"], answer["code"]) == ("error", "bad-request")
        await monitor.ws.close()
        return
    if cursor_kind == "trimmed":
        # Retention drops history past the cursor: a replay would have a hole.
        last_ms = id_key(str((await store.events("acme"))[-1].id))[0]
        await store.trim("acme", last_ms + 1)
        cursor = {"epoch": epoch, "id": first_id}
    else:
        cursor = {"epoch": "not-" + epoch, "id": first_id}
    subscribed = await monitor.subscribe(cursor=cursor)
    assert subscribed["recovered"] is False
    assert {s["agent"]: s for s in subscribed["agents"]} == states_on_the_wire(
        await store.states("acme")
    )
    await agent.ws.close()
    await monitor.ws.close()


async def test_a_segment_monitor_sees_its_segment(server: RunningServer, store: Store) -> None:
    sales = await store.hello("acme", "s-1", conn="t/1", now=NOW, segments=("sales",))
    await store.hello("acme", "v-1", conn="t/2", now=NOW, segments=("vip",))
    monitor = await open_monitor(server)
    subscribed = await monitor.subscribe(segment="sales")
    assert [s["agent"] for s in subscribed["agents"]] == ["s-1"]
    await store.set_status("acme", "v-1", "meal", by_user=True, now=NOW, conn="t/2")
    await store.set_status("acme", "s-1", "meal", by_user=True, now=NOW, conn="t/1")
    frame = await monitor.next_event()  # v-1's change is not sent
    assert (frame["event"]["agent"], frame["event"]["value"]) == ("s-1", "meal")
    assert sales.session is not None
    await monitor.ws.close()


async def test_tenants_see_only_their_own(server: RunningServer, store: Store) -> None:
    await store.hello("acme", "a-1", conn="t/1", now=NOW)
    other = await open_monitor(server, company="globex")
    subscribed = await other.subscribe()
    assert subscribed["agents"] == []
    await store.set_status("acme", "a-1", "meal", by_user=True, now=NOW, conn="t/1")
    await store.hello("globex", "g-1", conn="t/2", now=NOW)
    frame = await other.next_event()
    assert frame["event"]["agent"] == "g-1"  # acme's change never reached it
    await other.ws.close()


async def test_a_monitor_that_stops_reading_is_closed_and_harms_no_one(
    start_server: Callable[..., Awaitable[RunningServer]], store: Store
) -> None:
    server = await start_server(
        monitor_queue=50,
        rate_limit=100_000,
        rate_burst=100_000,
        send_buffer=8192,
        # The stuck monitor resumes reading once the 1,500 changes are through, which takes
        # as long as this machine makes it: the grace must outlast that, not the default 5 s.
        close_grace=seconds(60),
    )
    # A small receive buffer, so the server notices quickly that nobody reads.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting
    sock.connect(("127.0.0.1", server.port))
    stuck = await open_monitor(server, sock=sock)
    await stuck.subscribe()
    healthy = await open_monitor(server)
    await healthy.subscribe()
    stuck.ws.transport.pause_reading()
    changes = 1500
    # The healthy monitor reads as it goes: connected, busy, then every change.
    reading = asyncio.create_task(healthy.read_count(2 + changes))
    agent, _ = await open_agent(server, "a-1")
    slowest_ack = 0.0
    for n in range(changes):
        started = time.monotonic()
        await agent.request({"t": "status", "value": ("meal", "break")[n % 2], "ref": n})
        slowest_ack = max(slowest_ack, time.monotonic() - started)
    await asyncio.wait_for(reading, seconds(10))
    assert [e["id"] for e in healthy.events] == [e.id for e in await store.events("acme")]
    # Reading again within the grace period, it gets what was queued, then 4100.
    stuck.ws.transport.resume_reading()

    async def drain() -> None:
        while True:
            await stuck.ws.recv()

    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(drain(), seconds(5))
    assert stuck.ws.close_code == 4100
    assert slowest_ack < seconds(1)
    await agent.ws.close()
    await healthy.ws.close()

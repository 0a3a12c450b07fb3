"""LiveMonitor against a scripted ``/v1/monitor``: the test plays the server, frame by
frame, so it can send what a real one rarely does (duplicates, 4100, a new epoch)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from client_sdk import (
    Cursor,
    ErrorCode,
    LiveMonitor,
    MonitorEvent,
    ProtocolError,
    RequestError,
    Resnapshot,
    SessionClosed,
)
from client_sdk.protocol import JSON, MSGPACK, decode, encode
from tests.timing import seconds

SUBPROTOCOLS = [Subprotocol(MSGPACK), Subprotocol(JSON)]


def state(
    agent: str, version: str, *, segments: tuple[str, ...] = (), **fields: Any
) -> dict[str, Any]:
    return {
        "agent": agent,
        "status": "available",
        "segments": list(segments),
        "version": version,
        **fields,
    }


@dataclass
class Connection:
    """One monitor connection, past ``hello``: the test answers its ``subscribe``."""

    ws: ServerConnection
    subscribe: dict[str, Any]

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(encode(frame, self.ws.subprotocol or MSGPACK))

    async def subscribed(
        self, cursor: tuple[str, str], agents: list[dict[str, Any]] | None = None
    ) -> None:
        await self.send(
            {
                "t": "subscribed",
                "ref": self.subscribe.get("ref"),
                "recovered": agents is None,
                "agents": agents,
                "cursor": {"epoch": cursor[0], "id": cursor[1]},
            }
        )

    async def event(self, after: dict[str, Any], epoch: str = "e1") -> None:
        event = {"id": after["version"], "agent": after["agent"], "type": "acd", "value": "x"}
        cursor = {"epoch": epoch, "id": after["version"]}
        await self.send({"t": "event", "event": event, "state": after, "cursor": cursor})


@dataclass
class FakeServer:
    url: str = ""
    #: Close code for every ``hello`` while set, as a server refusing the token would.
    refuse: int | None = None
    connections: asyncio.Queue[Connection] = field(default_factory=asyncio.Queue)

    async def handler(self, ws: ServerConnection) -> None:
        hello = decode(await ws.recv())
        assert hello["t"] == "hello" and hello["token"] == "sup-token"
        if self.refuse is not None:
            await ws.close(self.refuse)
            return
        await ws.send(encode({"t": "welcome", "company": "acme", "role": "supervisor"}, MSGPACK))
        subscribe = decode(await ws.recv())
        assert subscribe["t"] == "subscribe"
        await self.connections.put(Connection(ws, subscribe))
        await ws.wait_closed()

    async def next(self) -> Connection:
        return await asyncio.wait_for(self.connections.get(), seconds(5))


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    async with serve(fake.handler, "127.0.0.1", 0, subprotocols=SUBPROTOCOLS) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}/v1/monitor"
        yield fake


def monitor_for(fake: FakeServer, **options: Any) -> LiveMonitor:
    options.setdefault("backoff", lambda: [0.01] * 20)
    return LiveMonitor(fake.url, "sup-token", request_timeout=seconds(5), **options)


async def connected(
    fake: FakeServer,
    monitor: LiveMonitor,
    cursor: tuple[str, str] = ("e1", "5-2"),
    agents: list[dict[str, Any]] | None = None,
) -> Connection:
    """Connect ``monitor``, answering its subscribe with a snapshot of ``agents``."""
    connecting = asyncio.create_task(monitor.connect())
    connection = await fake.next()
    await connection.subscribed(cursor, [] if agents is None else agents)
    await connecting
    return connection


async def next_change(changes: AsyncIterator[Any]) -> Any:
    return await asyncio.wait_for(anext(changes), seconds(5))


@pytest.mark.parametrize("subprotocol", [MSGPACK, JSON])
async def test_snapshot_then_events_without_duplicates(fake: FakeServer, subprotocol: str) -> None:
    a1, a2 = state("a-1", "5-1"), state("a-2", "5-2")
    monitor = monitor_for(fake, subprotocol=subprotocol)
    connection = await connected(fake, monitor, agents=[a1, a2])
    assert connection.ws.subprotocol == subprotocol
    assert connection.subscribe == {"t": "subscribe", "ref": 1}
    assert monitor.agents == {"a-1": a1, "a-2": a2} and monitor.cursor == Cursor("e1", "5-2")
    changes = aiter(monitor.events())
    first = await next_change(changes)
    assert first == Resnapshot({"a-1": a1, "a-2": a2}, Cursor("e1", "5-2"))

    sent = [state("a-1", "5-9", status="busy"), state("a-1", "5-10"), state("a-2", "5-11")]
    for after in [sent[0], sent[1], sent[0], sent[1], state("a-2", "5-2"), sent[2]]:
        await connection.event(after)
    received = [await next_change(changes) for _ in range(3)]
    assert [change.cursor.id for change in received] == ["5-9", "5-10", "5-11"]
    assert all(isinstance(change, MonitorEvent) for change in received)
    assert monitor.agents == {"a-1": sent[1], "a-2": sent[2]}
    assert monitor.cursor == Cursor("e1", "5-11")
    await monitor.close()
    assert monitor.closed and monitor.close_code == 1000
    with pytest.raises(StopAsyncIteration):
        await next_change(changes)


@pytest.mark.parametrize("close_code", [4100, 1001, 1000, 1011, None])
async def test_resumes_from_the_last_cursor(fake: FakeServer, close_code: int | None) -> None:
    monitor = monitor_for(fake)
    connection = await connected(fake, monitor, agents=[state("a-1", "5-1")])
    changes = aiter(monitor.events())
    assert isinstance(await next_change(changes), Resnapshot)
    await connection.event(state("a-1", "5-3"))
    await next_change(changes)
    if close_code is None:
        connection.ws.transport.abort()
    else:
        await connection.ws.close(close_code)

    again = await fake.next()
    assert again.subscribe["cursor"] == {"epoch": "e1", "id": "5-3"}
    assert not monitor.connected
    await again.subscribed(("e1", "5-3"))
    await again.event(state("a-1", "5-3"))  # a server resending the cursor's own event
    await again.event(state("a-2", "5-4"))
    change = await next_change(changes)
    assert isinstance(change, MonitorEvent) and change.cursor.id == "5-4"
    assert monitor.connected and set(monitor.agents) == {"a-1", "a-2"}
    await monitor.close()


async def test_an_iterator_queues_from_the_call_not_the_first_anext(fake: FakeServer) -> None:
    monitor = monitor_for(fake)
    connection = await connected(fake, monitor)
    early = monitor.events()  # not iterated yet
    reading = monitor.events()
    assert isinstance(await next_change(reading), Resnapshot)
    await connection.event(state("a-1", "5-3"))
    assert (await next_change(reading)).cursor.id == "5-3"  # folded by now
    assert isinstance(await next_change(early), Resnapshot)
    assert (await next_change(early)).cursor.id == "5-3"
    await monitor.close()
    for changes in (early, reading):
        for _ in range(2):
            with pytest.raises(StopAsyncIteration):
                await next_change(changes)
    with pytest.raises(StopAsyncIteration):
        await next_change(monitor.events())  # closed: ends at once


async def test_a_dropped_iterator_stops_queueing(fake: FakeServer) -> None:
    monitor = monitor_for(fake)
    connection = await connected(fake, monitor)
    async for change in monitor.events():
        assert isinstance(change, Resnapshot)
        break
    gc.collect()  # CPython has freed it already; others collect it later
    assert not monitor._iterators
    await connection.event(state("a-1", "5-3"))
    await monitor.close()


async def test_a_new_snapshot_replaces_the_view(fake: FakeServer) -> None:
    monitor = monitor_for(fake)
    connection = await connected(fake, monitor, agents=[state("a-1", "5-1")])
    changes = aiter(monitor.events())
    await next_change(changes)
    await connection.ws.close(1001)
    again = await fake.next()
    fresh = [state("a-2", "1-0")]
    await again.subscribed(("e2", "1-0"), fresh)
    assert await next_change(changes) == Resnapshot({"a-2": fresh[0]}, Cursor("e2", "1-0"))
    await again.event(state("a-2", "1-1"), epoch="e2")
    assert (await next_change(changes)).cursor == Cursor("e2", "1-1")
    await monitor.close()


@pytest.mark.parametrize(
    "garbage",
    [
        {
            "t": "event",
            "event": {},
            "state": state("a-1", "1-0"),
            "cursor": {"epoch": "e2", "id": "1-0"},
        },
        {
            "t": "event",
            "event": {},
            "state": {"status": "busy"},
            "cursor": {"epoch": "e1", "id": "9-0"},
        },
        {"t": "event", "event": {}, "state": state("a-1", "9-0")},
        b"\xc1",
    ],
    ids=["another-epoch", "state-without-agent", "no-cursor", "undecodable"],
)
async def test_a_frame_it_cannot_fold_makes_it_resubscribe(
    fake: FakeServer, garbage: dict[str, Any] | bytes
) -> None:
    monitor = monitor_for(fake)
    connection = await connected(fake, monitor, agents=[state("a-1", "5-1")])
    if isinstance(garbage, bytes):
        await connection.ws.send(garbage)
    else:
        await connection.send(garbage)
    again = await fake.next()
    assert again.subscribe["cursor"] == {"epoch": "e1", "id": "5-2"}
    assert monitor.agents == {"a-1": state("a-1", "5-1")}
    await again.subscribed(("e1", "5-2"))
    await monitor.close()


async def test_a_segment_subscription(fake: FakeServer) -> None:
    monitor = monitor_for(fake, segment="sales")
    sales = state("a-1", "5-1", segments=("sales",))
    connection = await connected(fake, monitor, agents=[sales])
    assert connection.subscribe["segment"] == "sales"
    changes = aiter(monitor.events())
    await next_change(changes)
    await connection.event(state("a-7", "5-3", segments=("support",)))  # stays outside
    left = state("a-1", "5-4", segments=("support",))
    await connection.event(left)
    change = await next_change(changes)
    assert change.state == left and monitor.agents == {}
    assert monitor.cursor == Cursor("e1", "5-4")
    await monitor.close()


@pytest.mark.parametrize("close_code", [4500, 4503, 4510])
async def test_a_terminal_close_ends_it(fake: FakeServer, close_code: int) -> None:
    monitor = monitor_for(fake)
    connection = await connected(fake, monitor)
    changes = aiter(monitor.events())
    await next_change(changes)
    await connection.ws.close(close_code, "no more")
    with pytest.raises(StopAsyncIteration):
        await next_change(changes)
    assert monitor.closed and monitor.close_code == close_code and not monitor.connected
    with pytest.raises(SessionClosed):
        await monitor.connect()
    await monitor.close()
    assert monitor.close_code == close_code
    assert fake.connections.empty()


@pytest.mark.parametrize("close_code", [4501, 4503])
async def test_a_refused_hello_raises_session_closed(fake: FakeServer, close_code: int) -> None:
    fake.refuse = close_code
    with pytest.raises(SessionClosed) as refused:
        await monitor_for(fake).connect()
    assert refused.value.code == close_code


async def test_a_refused_subscribe_raises_request_error(fake: FakeServer) -> None:
    monitor = monitor_for(fake)
    connecting = asyncio.create_task(monitor.connect())
    connection = await fake.next()
    await connection.send({"t": "error", "ref": 1, "code": "bad-request", "message": "segment"})
    with pytest.raises(RequestError) as refused:
        await connecting
    assert refused.value.code is ErrorCode.BAD_REQUEST and refused.value.status is None


async def test_recovered_without_a_cursor_is_a_protocol_error(fake: FakeServer) -> None:
    monitor = monitor_for(fake)
    connecting = asyncio.create_task(monitor.connect())
    await (await fake.next()).subscribed(("e1", "5-2"))  # recovered, yet we sent no cursor
    with pytest.raises(ProtocolError):
        await connecting


async def test_resuming_from_a_stored_cursor(fake: FakeServer) -> None:
    monitor = monitor_for(fake, cursor=Cursor("e1", "5-10"))
    connecting = asyncio.create_task(monitor.connect())
    connection = await fake.next()
    assert connection.subscribe["cursor"] == {"epoch": "e1", "id": "5-10"}
    await connection.subscribed(("e1", "5-10"))
    await connecting
    changes = aiter(monitor.events())
    await connection.event(state("a-3", "5-11"))
    # No snapshot came, so no Resnapshot either: the view holds what changed.
    change = await next_change(changes)
    assert isinstance(change, MonitorEvent) and change.cursor.id == "5-11"
    assert set(monitor.agents) == {"a-3"}
    await monitor.close()


async def test_close_while_reconnecting(fake: FakeServer) -> None:
    reconnecting = asyncio.Event()

    def slow_backoff() -> list[float]:
        reconnecting.set()  # called once the drop is noticed, before the first delay
        return [seconds(30)]

    monitor = monitor_for(fake, backoff=slow_backoff)
    connection = await connected(fake, monitor)
    await connection.ws.close(4100)
    await asyncio.wait_for(reconnecting.wait(), seconds(5))
    assert not monitor.connected and not monitor.closed
    await asyncio.wait_for(monitor.close(), seconds(5))
    assert monitor.closed and monitor.close_code is None


async def test_gives_up_when_the_backoff_is_spent(fake: FakeServer) -> None:
    monitor = monitor_for(fake, backoff=lambda: [0.01, 0.01])
    connection = await connected(fake, monitor)
    changes = aiter(monitor.events())
    await next_change(changes)
    fake.refuse = 1011  # every attempt fails, none for good
    await connection.ws.close(1001)
    with pytest.raises(StopAsyncIteration):
        await next_change(changes)
    assert monitor.closed and monitor.close_code is None


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="segment"):
        LiveMonitor("ws://x/v1/monitor", "t", segment="no spaces")
    with pytest.raises(ValueError, match="subprotocol"):
        LiveMonitor("ws://x/v1/monitor", "t", subprotocol="presence.v2")
    with pytest.raises(ValueError, match="request_timeout"):
        LiveMonitor("ws://x/v1/monitor", "t", request_timeout=0)

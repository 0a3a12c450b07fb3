"""Clients of a server under test.

Raw WebSocket clients speak the protocol by hand, to test the server alone:
:class:`RawAgent` (``/v1/agent``) and :class:`RawMonitor` (``/v1/monitor``),
opened on a :class:`~tests.servers.RunningServer` with :func:`open_agent` and
:func:`open_monitor`, or on a server process with :func:`raw_agent` and
:func:`raw_monitor`. :func:`console_for` is the SDK's console, set up for tests.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect

from client_sdk import AgentConsole
from client_sdk.protocol import JSON, decode, encode
from server.store import id_key
from tests.servers import RunningServer, token
from tests.timing import seconds

#: How the raw clients connect, unless a test says otherwise. They take every frame
#: off the socket as it arrives and keep it for the test (no ``max_queue``: by
#: default a client stops reading its socket once 16 frames wait), so the server's
#: pings are answered and its queues drain while the test is busy elsewhere; and
#: they send no pings of their own: the server's heartbeat is what tests are about,
#: and a client's keepalive would only add a deadline of its own. The opening
#: handshake's deadline (10 s by default) is scaled like every other.
CONNECT_OPTIONS: Final[dict[str, Any]] = {
    "max_queue": None,
    "ping_interval": None,
    "open_timeout": seconds(10),
}


def connect_raw(url: str, subprotocol: str, **options: Any) -> connect:
    """A WebSocket to ``url`` offering ``subprotocol``, with :data:`CONNECT_OPTIONS`:
    await it, or open it with ``async with``."""
    return connect(url, subprotocols=[subprotocol], **{**CONNECT_OPTIONS, **options})


class RawAgent:
    """A console speaking the protocol by hand, to test the server alone."""

    def __init__(self, ws: ClientConnection, subprotocol: str) -> None:
        self.ws, self.subprotocol = ws, subprotocol

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(encode(message, self.subprotocol))

    async def recv(self) -> dict[str, Any]:
        # Past instance_ttl (5 s): a hello resuming a session of a killed instance waits up
        # to that long for the verdict, and a busy machine takes a little more.
        return decode(await asyncio.wait_for(self.ws.recv(), seconds(10)))

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.send(message)
        return await self.recv()

    async def closed(self) -> tuple[int | None, str]:
        """Wait for the server to close; the close code and reason."""
        async with asyncio.timeout(seconds(5)):
            await self.ws.wait_closed()
        return self.ws.close_code, self.ws.close_reason or ""


class RawMonitor(RawAgent):
    """A supervisor's view kept by hand: the snapshot, then each event's state."""

    view: dict[str, dict[str, Any]]
    events: list[dict[str, Any]]
    cursor: dict[str, str] | None = None

    async def subscribe(self, **fields: Any) -> dict[str, Any]:
        subscribed = await self.request({"t": "subscribe", "ref": 1, **fields})
        assert subscribed["t"] == "subscribed", subscribed
        self.cursor = subscribed["cursor"]
        self.events = []
        if not subscribed["recovered"]:
            self.view = {state["agent"]: state for state in subscribed["agents"]}
        return subscribed

    async def next_event(self) -> dict[str, Any]:
        frame = await self.recv()
        assert frame["t"] == "event", frame
        assert self.cursor is not None
        assert id_key(frame["cursor"]["id"]) > id_key(self.cursor["id"]), "cursors must grow"
        self.cursor = frame["cursor"]
        self.events.append(frame["event"])
        self.view[frame["state"]["agent"]] = frame["state"]
        return frame

    async def read_count(self, count: int) -> None:
        for _ in range(count):
            await self.next_event()

    async def read_until(self, last_id: str) -> None:
        """Take events until the one with ``last_id`` (the log's last)."""
        while self.cursor is None or id_key(self.cursor["id"]) < id_key(last_id):
            await self.next_event()


async def open_agent(
    server: RunningServer,
    agent: str = "a-1",
    *,
    subprotocol: str = JSON,
    hello: dict[str, Any] | None = None,
    **connect_options: Any,
) -> tuple[RawAgent, dict[str, Any]]:
    ws = await connect_raw(server.agent_url, subprotocol, **connect_options)
    raw = RawAgent(ws, subprotocol)
    welcome = await raw.request({"t": "hello", "token": server.token(agent), **(hello or {})})
    assert welcome["t"] == "welcome", welcome
    return raw, welcome


async def open_monitor(
    server: RunningServer,
    *,
    company: str = "acme",
    role: str = "supervisor",
    subprotocol: str = JSON,
    **connect_options: Any,
) -> RawMonitor:
    ws = await connect_raw(server.monitor_url, subprotocol, **connect_options)
    monitor = RawMonitor(ws, subprotocol)
    monitor.view = {}
    token = server.token("sup-1", company=company, role=role)
    welcome = await monitor.request({"t": "hello", "token": token})
    assert welcome == {"t": "welcome", "company": company, "role": role}
    return monitor


async def raw_agent(
    url: str, agent: str, *, company: str = "acme", **hello: Any
) -> tuple[RawAgent, dict[str, Any]]:
    """An agent on a server process (tokens signed with ``tests.servers.SECRET``)."""
    ws = await connect_raw(url, JSON)
    raw = RawAgent(ws, JSON)
    welcome = await raw.request({"t": "hello", "token": token(agent, company=company), **hello})
    assert welcome["t"] == "welcome", welcome
    return raw, welcome


async def raw_monitor(url: str, *, subscribe: bool = True, company: str = "acme") -> RawMonitor:
    """A supervisor's monitor on a server process, subscribed unless told not to."""
    ws = await connect_raw(url, JSON)
    monitor = RawMonitor(ws, JSON)
    monitor.view = {}
    welcome = await monitor.request(
        {"t": "hello", "token": token("sup", "supervisor", company=company)}
    )
    assert welcome["t"] == "welcome"
    if subscribe:
        await monitor.subscribe()
    return monitor


def fast_backoff() -> list[float]:
    """Reconnect at once, a bounded number of times: tests wait on events, not delays."""
    return [0.01] * 50


def console_for(server: RunningServer, agent: str = "a-1", **options: Any) -> AgentConsole:
    return AgentConsole(
        server.agent_url,
        server.token(agent),
        backoff=fast_backoff,
        request_timeout=seconds(5),
        **options,
    )

"""``/v1/agent`` over a real socket, driven by a raw WebSocket client (spec §4)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from client_sdk.protocol import JSON, MSGPACK, decode, encode
from server.store import Store
from tests.clients import RawAgent, connect_raw, open_agent
from tests.eventlog import values, wait_for_log
from tests.servers import RunningServer
from tests.timing import seconds


@pytest.mark.parametrize("subprotocol", [JSON, MSGPACK])
async def test_both_subprotocols(server: RunningServer, subprotocol: str) -> None:
    agent, welcome = await open_agent(server, subprotocol=subprotocol)
    assert agent.ws.subprotocol == subprotocol
    assert welcome["resumed"] is False and welcome["state"]["connection"] == "online"
    assert {"value": "break", "label": "Descanso"} in welcome["statuses"]
    await agent.send({"t": "ping", "ref": 5})
    raw = await asyncio.wait_for(agent.ws.recv(), seconds(5))
    assert isinstance(raw, str if subprotocol == JSON else bytes)
    assert decode(raw) == {"t": "pong", "ref": 5}
    await agent.ws.close()


async def test_no_subprotocol_offered_means_msgpack(server: RunningServer) -> None:
    async with connect(server.agent_url) as ws:
        await ws.send(encode({"t": "hello", "token": server.token("a-1")}, MSGPACK))
        welcome = await asyncio.wait_for(ws.recv(), seconds(5))
        assert isinstance(welcome, bytes) and decode(welcome)["t"] == "welcome"


async def test_token_in_authorization_header(server: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {server.token('a-1')}"}
    async with connect(server.agent_url, subprotocols=[JSON], additional_headers=headers) as ws:
        await ws.send(json.dumps({"t": "hello"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), seconds(5)))["t"] == "welcome"


def expired_token(server: RunningServer) -> str:
    claims = {"sub": "a-1", "company": "acme", "role": "agent", "exp": int(time.time()) - 10}
    return jwt.encode(claims, server.secret, algorithm="HS256")


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda s: s.token("sup-1", role="supervisor"), 4503),
        (lambda s: s.token("acd", role="acd"), 4503),
        (expired_token, 4501),
        (lambda s: s.token("a-1") + "x", 4501),
        (
            lambda s: jwt.encode(
                {"sub": "a-1", "company": "acme", "role": "agent"}, s.secret, algorithm="HS256"
            ),
            4501,
        ),  # no exp
        (lambda s: None, 4501),
    ],
    ids=["supervisor", "acd", "expired", "bad-signature", "no-exp", "missing"],
)
async def test_refused_tokens(
    server: RunningServer, store: Store, make_token: Callable[[RunningServer], Any], code: int
) -> None:
    async with connect(server.agent_url, subprotocols=[JSON]) as ws:
        await ws.send(json.dumps({"t": "hello", "token": make_token(server)}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), seconds(5))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    assert await store.events("acme") == []


async def test_hello_must_come_first(server: RunningServer) -> None:
    reasons = []
    for first in (json.dumps({"t": "ping"}), "not json"):
        async with connect_raw(server.agent_url, JSON) as ws:
            await ws.send(first)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), seconds(5))
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4500
            reasons.append(closed.value.rcvd.reason)
    # Refused for what was sent, not for a hello_timeout running out meanwhile.
    assert reasons[0] == "the first frame must be hello"
    assert reasons[1] not in ("", "no hello in time")


async def test_hello_must_come_in_time(
    start_server: Callable[..., Awaitable[RunningServer]],
) -> None:
    server = await start_server(hello_timeout=seconds(0.3))  # short: silence is the scenario
    async with connect_raw(server.agent_url, JSON) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), seconds(5))
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4500, "no hello in time")


async def test_bad_frames_get_errors_and_the_connection_lives_on(
    server: RunningServer, store: Store
) -> None:
    agent, _ = await open_agent(server)
    bad: list[Any] = [
        "not json",
        "[1, 2]",
        json.dumps({"no": "t"}),
        json.dumps({"t": 7}),
        json.dumps({"t": "teleport"}),
        json.dumps({"t": "status"}),
        json.dumps({"t": "status", "value": 12}),
        json.dumps({"t": "status", "value": "Not A Slug"}),
        json.dumps({"t": "activity", "value": "occupying"}),
        json.dumps({"t": "hello", "token": server.token("a-1")}),
        json.dumps({"t": "ping", "ref": "one"}),
        b"\xc1\x00",
    ]
    for frame in bad:
        await agent.ws.send(frame)
        answer = await agent.recv()
        assert answer["t"] == "error" and answer["code"] == "bad-request", (frame, answer)
    assert await agent.request({"t": "status", "value": "nap", "ref": 1}) == {
        "t": "error",
        "ref": 1,
        "code": "unknown-status",
        "message": "nap is not one of the company's statuses",
    }
    assert (await agent.request({"t": "activity", "value": "end-call", "ref": 2}))["code"] == (
        "invalid-transition"
    )
    assert await agent.request({"t": "ping", "ref": 3}) == {"t": "pong", "ref": 3}
    assert values(await store.events("acme")) == [("connected", None), ("busy", None)]
    await agent.ws.close()


async def test_ack_comes_after_the_event_is_in_the_log(server: RunningServer, store: Store) -> None:
    agent, welcome = await open_agent(server, hello={"status": "available"})
    assert welcome["state"]["routable"] is True
    ack = await agent.request({"t": "activity", "value": "meeting", "ref": 9})
    assert ack["ref"] == 9 and ack["state"]["activity"] == "meeting"
    last = (await store.events("acme"))[-1]
    assert last.id == ack["event"]["id"] == ack["state"]["version"]
    assert (last.type, last.value, last.session) == (
        "status-changed",
        "meeting",
        welcome["session"],
    )
    unchanged = await agent.request({"t": "activity", "value": "meeting-end", "ref": 10})
    assert unchanged["event"]["value"] == "meeting-end"
    same = await agent.request({"t": "status", "value": "available", "ref": 11})
    assert same["event"] is None and same["state"]["status"] == "available"
    await agent.ws.close()


async def test_oversize_frame_closes_1009_and_records_protocol_error(
    server: RunningServer, store: Store
) -> None:
    agent, _ = await open_agent(server)
    await agent.ws.send(json.dumps({"t": "ping", "pad": "x" * 5000}))
    code, _ = await agent.closed()
    assert code == 1009
    events = await wait_for_log(store, lambda e: e[-1].value == "disconnected")
    assert (events[-1].value, events[-1].reason) == ("disconnected", "protocol-error")


async def test_heartbeat_timeout(
    start_server: Callable[..., Awaitable[RunningServer]], store: Store
) -> None:
    # Short, so the test is quick; scaled, as every deadline of a server in this loop.
    server = await start_server(ping_interval=seconds(0.5), ping_timeout=seconds(0.5))
    agent, _ = await open_agent(server)
    started = time.monotonic()
    # Stop reading: our side never sees the server's pings, so never answers them.
    agent.ws.transport.pause_reading()
    events = await wait_for_log(store, lambda e: e[-1].value == "disconnected")
    elapsed = time.monotonic() - started
    assert events[-1].reason == "heartbeat-timeout"
    settings = server.settings
    assert elapsed <= settings.ping_interval + settings.ping_timeout + seconds(1)
    agent.ws.transport.abort()


async def test_transport_lost_then_resumed(server: RunningServer, store: Store) -> None:
    agent, welcome = await open_agent(server)
    agent.ws.transport.abort()
    await wait_for_log(store, lambda e: e[-1].value == "disconnected")
    again, resumed = await open_agent(server, hello={"session": welcome["session"]})
    assert resumed["resumed"] is True and resumed["session"] == welcome["session"]
    assert values(await store.events("acme"))[-2:] == [
        ("disconnected", "transport-closed"),
        ("reconnected", None),
    ]
    await again.ws.close()


async def test_close_frame_is_client_closed_and_resumable(
    server: RunningServer, store: Store
) -> None:
    agent, welcome = await open_agent(server)
    await agent.ws.close(1001)
    await wait_for_log(store, lambda e: e[-1].value == "disconnected")
    assert values(await store.events("acme"))[-1] == ("disconnected", "client-closed")
    assert await store.session_resumable("acme", welcome["session"])


async def test_bye_ends_the_session(server: RunningServer, store: Store) -> None:
    agent, welcome = await open_agent(server)
    ack = await agent.request({"t": "bye", "ref": 4})
    assert ack["ref"] == 4 and ack["event"]["reason"] == "client-closed"
    assert (await agent.closed())[0] == 1000
    assert not await store.session_resumable("acme", welcome["session"])
    again, fresh = await open_agent(server, hello={"session": welcome["session"]})
    assert fresh["resumed"] is False and fresh["session"] != welcome["session"]
    await again.ws.close()


async def test_second_console_replaces_the_first(server: RunningServer, store: Store) -> None:
    first, welcome = await open_agent(server, hello={"status": "available"})
    second, other = await open_agent(server)
    assert other["session"] != welcome["session"]
    assert (await first.closed())[0] == 4509
    assert values(await store.events("acme"))[-3:] == [
        ("disconnected", "session-replaced"),
        ("connected", None),
        ("busy", None),
    ]
    await second.ws.close()


async def test_same_session_on_a_new_connection_replaces_the_old(
    server: RunningServer, store: Store
) -> None:
    first, welcome = await open_agent(server)
    second, resumed = await open_agent(server, hello={"session": welcome["session"]})
    assert resumed["resumed"] is True
    assert (await first.closed())[0] == 4509
    await second.ws.close()
    events = await wait_for_log(store, lambda e: e[-1].reason == "client-closed")
    assert values(events)[2:] == [
        ("disconnected", "connection-replaced"),
        ("reconnected", None),
        ("disconnected", "client-closed"),
    ]


async def test_changes_from_elsewhere_are_pushed(server: RunningServer, store: Store) -> None:
    agent, _ = await open_agent(server, hello={"status": "available"})
    acd = Store(store.redis, prefix=store.prefix, instance="the-acd")
    outcome = await acd.acd("acme", "a-1", "occupying", now=int(time.time() * 1000))
    push = await agent.recv()
    assert push["t"] == "state"
    assert push["event"]["value"] == "occupying" and push["event"]["id"] == outcome.changes[0][0].id
    assert push["state"]["activity"] == "occupying" and push["state"]["routable"] is False
    await agent.ws.close()


async def test_token_expiring_during_the_session(server: RunningServer, store: Store) -> None:
    agent = RawAgent(await connect_raw(server.agent_url, JSON), JSON)
    # exp counts whole seconds from the current one: this leaves the hello at least
    # seconds(1) of the token's life, however late in its second the token is made.
    ttl = 1 + math.ceil(seconds(1))
    welcome = await agent.request({"t": "hello", "token": server.token("a-1", ttl=ttl)})
    assert welcome["t"] == "welcome", welcome
    async with asyncio.timeout(ttl + seconds(5)):
        await agent.ws.wait_closed()
    assert agent.ws.close_code == 4511
    assert values(await store.events("acme"))[-1] == ("disconnected", "token-expired")


async def test_flooding_is_refused_then_closed(
    start_server: Callable[..., Awaitable[RunningServer]], store: Store
) -> None:
    server = await start_server(rate_limit=1, rate_burst=3)
    agent, _ = await open_agent(server)
    answers = []

    async def flood() -> None:
        for ref in range(100):
            answers.append(await agent.request({"t": "ping", "ref": ref}))

    with pytest.raises(ConnectionClosed):
        await flood()
    assert answers[:3] == [{"t": "pong", "ref": ref} for ref in range(3)]
    assert {
        "t": "error",
        "ref": 3,
        "code": "rate-limited",
        "message": "too many frames; slow down",
    } in answers
    assert agent.ws.close_code == 4129
    events = await wait_for_log(store, lambda e: e[-1].value == "disconnected")
    assert events[-1].reason == "rate-limited"
    # A well-behaved console of the same company is unaffected.
    other, _ = await open_agent(server, "a-2")
    assert await other.request({"t": "ping", "ref": 1}) == {"t": "pong", "ref": 1}
    await other.ws.close()


async def test_origin_allowlist(start_server: Callable[..., Awaitable[RunningServer]]) -> None:
    server = await start_server(allowed_origins=("https://console.example",))
    with pytest.raises(InvalidStatus) as refused:
        await connect(server.agent_url, origin=Origin("https://evil.example"))
    assert refused.value.response.status_code == 403
    agent, _ = await open_agent(server, origin=Origin("https://console.example"))
    await agent.ws.close()


async def test_compression_is_not_negotiated(server: RunningServer) -> None:
    # The client offers permessage-deflate by default; the server declines it.
    agent, _ = await open_agent(server)
    assert agent.ws.response is not None
    assert "Sec-WebSocket-Extensions" not in agent.ws.response.headers
    await agent.ws.close()


async def test_a_burst_of_consoles_waits_for_redis_connections(
    start_server: Callable[..., Awaitable[RunningServer]], store: Store
) -> None:
    """More consoles at once than Redis connections: they queue, none is refused."""
    server = await start_server(redis_connections=4)
    burst = 150  # beyond redis-py's default pool, which fails rather than waits
    opened = await asyncio.gather(*(open_agent(server, f"a-{n:03d}") for n in range(burst)))
    assert all(welcome["t"] == "welcome" for _, welcome in opened)
    assert len(await store.states("acme")) == burst
    for agent, _ in opened:
        await agent.ws.close()

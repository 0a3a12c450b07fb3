"""The SDK's AgentConsole against a real server and Redis, as a console uses it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from client_sdk import AgentConsole, ErrorCode, RequestError, SessionClosed
from client_sdk.protocol import JSON, MSGPACK
from server.store import Store
from tests.clients import console_for, fast_backoff
from tests.eventlog import values, wait_for_log
from tests.servers import RunningServer
from tests.timing import seconds


async def next_change(changes: AsyncIterator[Any]) -> Any:
    return await asyncio.wait_for(anext(changes), seconds(5))


@pytest.mark.parametrize("subprotocol", [MSGPACK, JSON])
async def test_connect_and_set_status(
    server: RunningServer, store: Store, subprotocol: str
) -> None:
    async with console_for(server, subprotocol=subprotocol) as console:
        assert console.connected and console.session is not None
        ack = await console.set_status("break")
        assert ack.event is not None and ack.event["type"] == "status-changed-user"
        assert ack.state["status"] == "break" == console.state["status"]  # type: ignore[index]
        events = await store.events("acme")
        assert [(e.type, e.value, e.session) for e in events] == [
            ("status-changed", "connected", console.session),
            ("status-changed", "busy", console.session),
            ("status-changed-user", "break", console.session),
        ]


async def test_initial_status_from_the_console(server: RunningServer, store: Store) -> None:
    async with console_for(server, status="available") as console:
        assert console.state is not None and console.state["routable"] is True
    assert values(await store.events("acme"))[:2] == [("connected", None), ("available", None)]


async def test_refusals_raise_typed_errors(server: RunningServer) -> None:
    async with console_for(server) as console:
        with pytest.raises(RequestError) as refused:
            await console.set_status("nap")
        assert refused.value.code is ErrorCode.UNKNOWN_STATUS
        with pytest.raises(RequestError) as invalid:
            await console.report("end-call")
        assert invalid.value.code is ErrorCode.INVALID_TRANSITION
        assert (await console.report("meeting")).state["activity"] == "meeting"


async def test_reconnects_on_its_own_after_the_socket_is_cut(
    server: RunningServer, store: Store
) -> None:
    async with console_for(server) as console:
        session = console.session
        changes = aiter(console.states())
        assert console._ws is not None
        console._ws.transport.abort()  # the network drops: no close frame
        state, event = await next_change(changes)  # the welcome of the new connection
        assert event is None and state["connection"] == "online"
        assert console.session == session
        assert (await console.set_status("meal")).state["status"] == "meal"
        assert values(await store.events("acme"))[2:] == [
            ("disconnected", "transport-closed"),
            ("reconnected", None),
            ("meal", None),
        ]
        assert {e.session for e in await store.events("acme")} == {session}


async def test_pushes_from_elsewhere_reach_callbacks_and_iterators(
    server: RunningServer, store: Store
) -> None:
    async with console_for(server, status="available") as console:
        seen: list[tuple[Any, Any]] = []
        console.on_state(lambda state, event: seen.append((state, event)))
        changes = aiter(console.states())
        acd = Store(store.redis, prefix=store.prefix, instance="the-acd")
        await acd.acd("acme", "a-1", "occupying", now=int(time.time() * 1000))
        state, event = await next_change(changes)
        assert (event["value"], state["activity"]) == ("occupying", "occupying")
        assert seen == [(state, event)]
        assert console.state == state


async def test_a_second_console_ends_the_first_for_good(
    server: RunningServer, store: Store
) -> None:
    first = console_for(server)
    await first.connect()
    changes = aiter(first.states())
    async with console_for(server) as second:
        with pytest.raises(StopAsyncIteration):
            await next_change(changes)  # the first console's pushes end: it closed
        assert first.closed and first.close_code == 4509
        with pytest.raises(SessionClosed):
            await first.set_status("break")
        # The second keeps working, and nothing more came from the first.
        assert (await second.set_status("break")).state["session"] == second.session
        sessions = [e.session for e in await store.events("acme")]
        assert sessions.count(first.session) == 3  # connected, busy, disconnected
    await first.close()


async def test_close_ends_the_session(server: RunningServer, store: Store) -> None:
    console = console_for(server)
    await console.connect()
    session = console.session
    assert session is not None
    await console.close()
    assert console.closed and console.close_code == 1000
    assert values(await store.events("acme"))[-1] == ("disconnected", "client-closed")
    assert not await store.session_resumable("acme", session)
    again = console_for(server)
    await again.connect()
    assert again.session != session
    await again.close()


async def test_a_fresh_token_for_each_connection(server: RunningServer, store: Store) -> None:
    issued: list[str] = []

    async def fresh_token() -> str:
        issued.append(server.token("a-1"))
        return issued[-1]

    console = AgentConsole(
        server.agent_url, fresh_token, backoff=fast_backoff, request_timeout=seconds(5)
    )
    async with console:
        changes = aiter(console.states())
        assert console._ws is not None
        console._ws.transport.abort()
        await next_change(changes)
    assert len(issued) == 2
    await wait_for_log(store, lambda e: e[-1].reason == "client-closed")

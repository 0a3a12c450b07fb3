"""Several instances as real processes on one Redis (spec §8): fan-out across
instances, kicks and replacement reaching the holder, SIGKILL and ghost
cleanup, SIGTERM and the drain."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from client_sdk import AgentConsole
from server.store import Store
from tests.clients import raw_agent, raw_monitor
from tests.eventlog import reasons
from tests.invariants import check_company
from tests.processes import LoadBalancer, ServerProcess, presence_server
from tests.servers import instance_id, process_env, token
from tests.timing import eventually, seconds

Start = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def start_instance(redis_url: str, key_prefix: str, store: Store) -> AsyncIterator[Start]:
    """Start ``python -m server`` processes sharing the test's Redis and prefix."""
    async with AsyncExitStack() as stack:

        async def start(**settings: Any) -> ServerProcess:
            env = process_env(redis_url, key_prefix, **settings)
            return await stack.enter_async_context(presence_server(env))

        yield start
    for company in ("acme",):
        if await store.events(company):
            await check_company(store, company)


async def test_one_presence_across_instances(start_instance: Start, store: Store) -> None:
    a, b = await start_instance(), await start_instance()
    monitor = await raw_monitor(b.monitor_url)
    agent, welcome = await raw_agent(a.agent_url, "a-1", status="available")
    # A change made on A reaches a monitor on B, in order.
    await agent.request({"t": "status", "value": "break", "ref": 1})
    values = [(await monitor.next_event())["event"]["value"] for _ in range(3)]
    assert values == ["connected", "available", "break"]
    # The ACD on B changes the agent held on A: A pushes the state to the console.
    async with httpx.AsyncClient(base_url=b.http_url) as http:
        headers = {"Authorization": f"Bearer {token('acd', 'admin')}"}
        answer = await http.post("/v1/agents/a-1/status", json={"value": "meal"}, headers=headers)
        assert answer.status_code == 200, answer.text
        push = await agent.recv()
        assert (push["t"], push["state"]["status"]) == ("state", "meal")
        # A kick on B closes the socket held on A with 4510.
        kicked = await http.post("/v1/agents/a-1/disconnect", headers=headers)
        assert kicked.status_code == 200, kicked.text
    code, _ = await agent.closed()
    assert code == 4510
    # A session dropped on A resumes on B; replacement across instances closes A's socket.
    again, fresh = await raw_agent(a.agent_url, "a-1")
    back, resumed = await raw_agent(b.agent_url, "a-1", session=fresh["session"])
    assert resumed["resumed"] is True
    assert (await again.closed())[0] == 4509
    assert reasons(await store.events("acme"), fresh["session"])[-2:] == [
        ("disconnected", "connection-replaced"),
        ("reconnected", None),
    ]
    assert welcome["session"] != fresh["session"]
    await back.ws.close()
    await monitor.ws.close()


async def test_a_killed_instance_is_cleaned_up_within_seconds(
    start_instance: Start, store: Store
) -> None:
    a, b = await start_instance(), await start_instance()
    agents = [await raw_agent(a.agent_url, f"a-{n:02d}", status="available") for n in range(20)]
    sessions = [welcome["session"] for _, welcome in agents]
    killed_at = time.monotonic()
    a.kill()
    # Three consoles come straight back, on the survivor, before anyone noticed.
    returning = [await raw_agent(b.agent_url, f"a-{n:02d}", session=sessions[n]) for n in range(3)]
    assert all(welcome["resumed"] for _, welcome in returning)

    async def all_cleaned() -> bool:
        events = await store.events("acme")
        return all(("disconnected", "server-lost") in reasons(events, s) for s in sessions)

    await eventually(all_cleaned, seconds(20))
    cleanup = time.monotonic() - killed_at
    print(f"\nghost cleanup after SIGKILL: {cleanup:.2f} s (20 sessions, instance_ttl 5 s)")
    assert cleanup < 10  # the bound, with default settings: not scaled
    events = await store.events("acme")
    for n, session in enumerate(sessions):
        lost = reasons(events, session).count(("disconnected", "server-lost"))
        assert lost == 1, (session, reasons(events, session))
        if n < 3:  # the log still reads disconnected, then reconnected
            assert reasons(events, session)[-2:] == [
                ("disconnected", "server-lost"),
                ("reconnected", None),
            ]
    # The ACD is offered only the agents who came back.
    async with httpx.AsyncClient(base_url=b.http_url) as http:
        headers = {"Authorization": f"Bearer {token('acd', 'acd')}"}
        routable = await http.get("/v1/agents", params={"routable": "true"}, headers=headers)
    assert [s["agent"] for s in routable.json()["agents"]] == ["a-00", "a-01", "a-02"]
    for agent, _ in returning:
        await agent.ws.close()


async def test_the_first_instance_up_cleans_after_the_last_one_down(
    start_instance: Start, store: Store
) -> None:
    a = await start_instance(instance_ttl=1)
    _, welcome = await raw_agent(a.agent_url, "a-1")
    a.kill()
    await start_instance(instance_ttl=1)

    async def cleaned() -> bool:
        return ("disconnected", "server-lost") in reasons(
            await store.events("acme"), welcome["session"]
        )

    await eventually(cleaned, seconds(10))


async def test_sigterm_drains_and_consoles_move_on(start_instance: Start, store: Store) -> None:
    a, b = await start_instance(), await start_instance()
    async with LoadBalancer([a.port, b.port]) as balancer:
        consoles = [
            AgentConsole(balancer.agent_url, token(f"a-{n}"), backoff=lambda: [0.05] * 100)
            for n in range(6)
        ]
        for console in consoles:
            await console.connect()
        on_a = [
            str(console.session)
            for console in consoles
            if (await store.holder("acme", agent_of(console)) or "").startswith(instance_id(a))
        ]
        assert on_a  # the balancer spread them
        assert await a.stop() == 0  # drained, then exited cleanly

        async def all_moved() -> bool:
            events = await store.events("acme")
            return all(
                reasons(events, session)[-2:]
                == [("disconnected", "server-shutdown"), ("reconnected", None)]
                for session in on_a
            )

        await eventually(all_moved, seconds(10))  # back through the balancer, same sessions
        assert {str(c.session) for c in consoles} >= set(on_a)
        for console in consoles:
            await console.close()


def agent_of(console: AgentConsole) -> str:
    assert console.state is not None
    return str(console.state["agent"])

"""The SDK's AcdClient against a real server and Redis, with SDK consoles as the agents."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from client_sdk import AcdClient, AgentConsole, ErrorCode, RequestError
from server.state import CompanyConfig
from server.store import Store
from tests.clients import console_for, fast_backoff
from tests.servers import RunningServer
from tests.timing import seconds


def acd_for(server: RunningServer, role: str = "acd") -> AcdClient:
    return AcdClient(server.http_url, server.token("acd-1", role=role), timeout=seconds(5))


async def refusal(request: Awaitable[object]) -> RequestError:
    """The RequestError a request raises."""
    with pytest.raises(RequestError) as refused:
        await request
    return refused.value


async def test_claim_release_occupy_timeout(server: RunningServer, store: Store) -> None:
    async with acd_for(server) as acd:
        nobody = await refusal(acd.claim())
        assert (nobody.code, nobody.status) == (ErrorCode.NO_AGENT_AVAILABLE, 404)

        async with (
            console_for(server, "a-1", status="available") as a1,
            console_for(server, "a-2", status="available"),
        ):
            assert [s["agent"] for s in await acd.available()] == ["a-1", "a-2"]
            pushes: asyncio.Queue[tuple[dict[str, Any], dict[str, Any] | None]] = asyncio.Queue()
            a1.on_state(lambda state, event: pushes.put_nowait((state, event)))

            claimed = await acd.claim()
            assert claimed.agent == "a-1" and claimed.state["activity"] == "occupying"
            assert claimed.event is not None and claimed.events[-1] == claimed.event
            assert (claimed.event["type"], claimed.event["value"]) == ("acd", "occupying")
            pushed, event = await asyncio.wait_for(pushes.get(), seconds(5))
            assert pushed["activity"] == "occupying" and event == claimed.event
            assert [s["agent"] for s in await acd.available()] == ["a-2"]

            released = await acd.release("a-1", reason="client-abandoned")
            assert released.event is not None
            assert (released.event["value"], released.event["reason"]) == (
                "releasing",
                "client-abandoned",
            )
            assert released.state["activity"] == "idle" and released.state["routable"] is True

            assert (await acd.occupy("a-1")).state["activity"] == "occupying"
            timed_out = await acd.timeout("a-1")
            assert timed_out.event is not None and timed_out.event["value"] == "timeout"
            assert timed_out.state["activity"] == "idle"

            # a-1 is routable again, a-2 idle for longer: only the exclusion gets a-1.
            assert (await acd.claim(exclude=["a-2"])).agent == "a-1"
            assert (await acd.claim()).agent == "a-2"
            assert (await refusal(acd.claim())).code is ErrorCode.NO_AGENT_AVAILABLE

            served = await store.state("acme", "a-1")
            assert served is not None and await acd.agent("a-1") == served.to_wire()
            last = (await store.events("acme"))[-1]
            assert (last.agent, last.type, last.value) == ("a-2", "acd", "occupying")


async def test_claims_by_segment(server: RunningServer) -> None:
    sales = server.token("a-1", segments=("sales",))
    async with (
        AgentConsole(server.agent_url, sales, status="available", backoff=fast_backoff),
        console_for(server, "a-2", status="available"),
        acd_for(server) as acd,
    ):
        assert [s["agent"] for s in await acd.available(segment="sales")] == ["a-1"]
        assert len(await acd.available(limit=1)) == 1
        assert (await acd.claim(segment="sales")).agent == "a-1"
        none_left = await refusal(acd.claim(segment="sales"))
        assert none_left.code is ErrorCode.NO_AGENT_AVAILABLE


async def test_stats(server: RunningServer) -> None:
    async with (
        console_for(server, "a-1", status="available"),
        console_for(server, "a-2"),
        acd_for(server) as acd,
    ):
        stats = await acd.stats()
        assert stats["total"] == 2 and stats["routable"] == 1
        assert stats["connection"]["online"] == 2
        assert stats["status"]["available"] == 1 and stats["status"]["busy"] == 1
        assert stats["longest_idle"]["agent"] == "a-1"
        assert (await acd.stats(segment="sales"))["total"] == 0


async def test_refusals_carry_the_spec_codes(server: RunningServer, store: Store) -> None:
    async with console_for(server, "a-1") as a1, acd_for(server) as acd:
        not_occupied = await refusal(acd.release("a-1"))
        assert (not_occupied.code, not_occupied.status) == (ErrorCode.INVALID_TRANSITION, 409)
        busy = await refusal(acd.occupy("a-1"))  # busy, so not routable
        assert busy.code is ErrorCode.INVALID_TRANSITION
        unknown = await refusal(acd.agent("nobody"))
        assert (unknown.code, unknown.status) == (ErrorCode.NOT_FOUND, 404)

        await a1.set_status("available")
        await store.put_config("acme", CompanyConfig(acd_mode="broadcast"))
        broadcast = await refusal(acd.claim())
        assert (broadcast.code, broadcast.status) == (ErrorCode.ACD_MODE, 409)


async def test_tokens_and_roles(server: RunningServer) -> None:
    async with AcdClient(server.http_url, "not-a-jwt") as stranger:
        unauthorized = await refusal(stranger.available())
        assert (unauthorized.code, unauthorized.status) == (ErrorCode.UNAUTHORIZED, 401)
    async with acd_for(server, role="agent") as agent:
        forbidden = await refusal(agent.available())
        assert (forbidden.code, forbidden.status) == (ErrorCode.FORBIDDEN, 403)
    async with acd_for(server, role="supervisor") as supervisor:
        assert await supervisor.available() == []
        assert (await refusal(supervisor.claim())).code is ErrorCode.FORBIDDEN

"""Redis outages, for real: a private Redis is killed and restarted under a
running server process (spec §3 invariant 5: nothing acknowledged is lost).

What a change meets during an outage (docs/deployment.md, the failure table): the server retries
the write for ``store_retry`` seconds, idempotently; if Redis is back by then
the change is applied once and acknowledged late; if not, the console gets
``store-unavailable`` and nothing was applied. A console that drops meanwhile
has its ``disconnected`` written when Redis is back, with the time it happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from client_sdk import AgentConsole
from server.store import Store
from tests.clients import raw_agent, raw_monitor
from tests.eventlog import reasons
from tests.invariants import check_company
from tests.processes import ServerProcess
from tests.redis_server import RedisProcess
from tests.servers import instance_id, run_server, token
from tests.timing import eventually, seconds

#: How long these tests keep Redis down: the scenario, not a synchronisation.
SHORT_OUTAGE = 1.0
LONG_OUTAGE = 2.5


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    redis = RedisProcess(tmp_path)
    redis.start()
    yield redis
    redis.kill()


@pytest.fixture
async def store_of(private_redis: RedisProcess) -> AsyncIterator[Store]:
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    yield Store(client, prefix="outage:")
    await client.aclose()


async def dropped(store: Store, session: str) -> bool:
    """Whether the log has the session's transport-closed (written late or not)."""
    return ("disconnected", "transport-closed") in reasons(await store.events("acme"), session)


async def ready(server: ServerProcess) -> int:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        return (await http.get("/readyz")).status_code


async def test_a_short_outage_is_invisible_to_consoles(
    private_redis: RedisProcess, store_of: Store
) -> None:
    # Retrying well past the outage, even on a slow machine: the test is of a short one.
    async with run_server(private_redis, store_retry=seconds(15)) as server:
        steady, _ = await raw_agent(server.agent_url, "a-1")
        leaving, welcome = await raw_agent(server.agent_url, "a-2")
        monitor = await raw_monitor(server.monitor_url)
        private_redis.kill()
        assert await ready(server) == 503
        await steady.send({"t": "status", "value": "break", "ref": 1})
        dropped_at = time.time_ns() // 1_000_000
        leaving.ws.transport.abort()
        await asyncio.sleep(SHORT_OUTAGE)
        private_redis.start()
        ack = await asyncio.wait_for(steady.recv(), seconds(20))
        assert (ack["t"], ack["ref"], ack["event"]["value"]) == ("ack", 1, "break")
        assert await steady.request({"t": "ping", "ref": 2}) == {"t": "pong", "ref": 2}
        await eventually(lambda: _is(ready(server), 200), seconds(10))

        await eventually(lambda: dropped(store_of, welcome["session"]), seconds(10))
        events = await store_of.events("acme")
        drop = next(e for e in events if e.session == welcome["session"] and e.reason)
        # When it happened (as soon as the server saw the socket go), not when written.
        assert abs(drop.ts - dropped_at) < seconds(1) * 1000
        assert [e.value for e in events if e.agent == "a-1"].count("break") == 1
        # The monitor followed through the outage: everything, in order.
        await monitor.read_until(str(events[-1].id))
        assert [e["id"] for e in monitor.events] == [
            e.id for e in events[len(events) - len(monitor.events) :]
        ]
        await steady.ws.close()
        await monitor.ws.close()
    await check_company(store_of, "acme")


async def _is(value: Any, expected: Any) -> bool:
    return await value == expected


async def test_a_long_outage_refuses_changes_and_defers_disconnections(
    private_redis: RedisProcess, store_of: Store
) -> None:
    async with run_server(private_redis, store_retry=0.5) as server:
        steady, _ = await raw_agent(server.agent_url, "a-1")
        leaving, welcome = await raw_agent(server.agent_url, "a-2")
        private_redis.kill()
        answer = await steady.request({"t": "status", "value": "break", "ref": 1})
        assert (answer["t"], answer["code"]) == ("error", "store-unavailable")
        dropped_at = time.time_ns() // 1_000_000
        leaving.ws.transport.abort()
        await asyncio.sleep(LONG_OUTAGE)  # well past store_retry: the drop must wait
        private_redis.start()

        await eventually(lambda: dropped(store_of, welcome["session"]), seconds(15))
        events = await store_of.events("acme")
        drop = next(e for e in events if e.session == welcome["session"] and e.reason)
        written_at = int(str(drop.id).split("-")[0])
        assert abs(drop.ts - dropped_at) < seconds(1) * 1000
        assert written_at - drop.ts >= LONG_OUTAGE * 1000 * 0.8  # written later, dated true
        assert "break" not in [e.value for e in events]  # refused means not applied
        # The console's socket lived through it, and works again.
        ack = await steady.request({"t": "status", "value": "break", "ref": 2})
        assert ack["event"]["value"] == "break"
        await steady.ws.close()
    await check_company(store_of, "acme")


async def test_redis_back_empty_gets_the_truth_back(
    private_redis: RedisProcess, store_of: Store
) -> None:
    async with run_server(private_redis) as server:
        first, hello_1 = await raw_agent(server.agent_url, "a-1", status="break")
        second, hello_2 = await raw_agent(server.agent_url, "a-2")
        monitor = await raw_monitor(server.monitor_url)
        old_cursor = monitor.cursor
        private_redis.kill()
        private_redis.wipe()  # its disk is gone: the log, the states, everything
        private_redis.start()

        async def true_again() -> bool:
            states = await store_of.states("acme")
            return {agent: (s.connection, s.status, s.session) for agent, s in states.items()} == {
                "a-1": ("online", "break", hello_1["session"]),
                "a-2": ("online", "busy", hello_2["session"]),
            }

        await eventually(true_again, seconds(15))  # no instance was restarted
        # Listed again as held here: a sweeper finds them if this instance dies now.
        listing = store_of.keys.conns(instance_id(server).rstrip("/"))

        async def listed_again() -> bool:
            held: dict[str, str] = await store_of.redis.hgetall(listing)  # type: ignore[misc]
            return sorted(held.values()) == ["acme a-1", "acme a-2"]

        await eventually(listed_again, seconds(15))
        # The monitor is told the log started over, and gets a fresh snapshot.
        async with asyncio.timeout(seconds(15)):
            await monitor.ws.wait_closed()
        assert monitor.ws.close_code == 1012
        resumed = await connect_monitor_with(server, old_cursor)
        assert resumed["recovered"] is False
        assert {s["agent"]: s["status"] for s in resumed["agents"]} == {
            "a-1": "break",
            "a-2": "busy",
        }
        assert resumed["cursor"]["epoch"] != (old_cursor or {}).get("epoch")
        # The sockets lived through it and act as before.
        ack = await first.request({"t": "status", "value": "meal", "ref": 1})
        assert ack["event"]["value"] == "meal"
        await first.ws.close()
        await second.ws.close()
    await check_company(store_of, "acme")


async def connect_monitor_with(server: ServerProcess, cursor: Any) -> dict[str, Any]:
    monitor = await raw_monitor(server.monitor_url, subscribe=False)
    subscribed = await monitor.request({"t": "subscribe", "cursor": cursor, "ref": 1})
    await monitor.ws.close()
    return subscribed


async def test_the_sdk_rides_out_an_outage(private_redis: RedisProcess, store_of: Store) -> None:
    """Past ``store_retry`` the server answers store-unavailable; the SDK sends the
    change again until it goes through: the console's code only waits."""
    async with run_server(private_redis, store_retry=0.5) as server:
        console = AgentConsole(
            server.agent_url,
            token("a-1"),
            backoff=lambda: [0.2] * 200,
            request_timeout=seconds(30),
        )
        await console.connect()
        private_redis.kill()
        change = asyncio.create_task(console.set_status("break"))
        await asyncio.sleep(LONG_OUTAGE)  # several refusals happen meanwhile
        assert not change.done()
        private_redis.start()
        ack = await asyncio.wait_for(change, seconds(20))
        assert ack.event is not None and ack.event["value"] == "break"
        assert [e.value for e in await store_of.events("acme")].count("break") == 1
        await console.close()
    await check_company(store_of, "acme")

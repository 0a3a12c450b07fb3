"""Redis Sentinel (``redis+sentinel://``): the URL, the client
(server/redis_client.py), and the server as a real process on the Sentinel group
of tests/topologies.py, serving, and through a failover under load.

What a failover may cost with the default durability: Redis replicates
asynchronously, and the old master goes on taking writes until the server learns
of the new one (about a second: the sentinels' own delay, and the pool asking
them every 0.25 s), so changes acknowledged meanwhile are lost
(docs/deployment.md, "Sentinel"). The tests assert what must hold however the
timing falls, and print what was lost (``-s`` shows it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from server.redis_client import connect, parse_sentinel_url
from server.store import Store
from tests.cancellation import callers_wait_for_a_connection, cancellations_pass_on
from tests.clients import raw_agent, raw_monitor
from tests.invariants import check_company
from tests.load import Changer, Watcher, check_acknowledged, progress, summary
from tests.processes import ServerProcess, presence_server
from tests.servers import process_env
from tests.timing import seconds
from tests.topologies import SentinelGroup

pytest_plugins = ["tests.topologies"]

PREFIX = "sentinel:"
AGENTS = 6


def client_of(group: SentinelGroup, **options: Any) -> Any:
    options = {
        "decode_responses": True,
        "socket_timeout": seconds(5),
        "socket_connect_timeout": seconds(2),
        "max_connections": 4,
        "timeout": seconds(5),
        **options,
    }
    return connect(group.url, **options)


@pytest.fixture
async def store(sentinel_group: SentinelGroup) -> AsyncIterator[Store]:
    """The test's view of the data, through the same Sentinel URL."""
    client = client_of(sentinel_group)
    yield Store(client, PREFIX, retry_for=seconds(15))
    await client.aclose()


def run_server(group: SentinelGroup, **settings: Any) -> AbstractAsyncContextManager[ServerProcess]:
    return presence_server(process_env(group.url, PREFIX, **settings))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ------------------------------------------------------------------------ the URL


def test_the_url_names_the_sentinels_the_master_and_the_db() -> None:
    url = parse_sentinel_url(
        "redis+sentinel://user:p%40ss@s1:26380,s2,[::1]:26381/presence/2"
        "?sentinel_password=hush&health_check_interval=5"
    )
    assert url.sentinels == (("s1", 26380), ("s2", 26379), ("::1", 26381))
    assert url.master == "presence"
    assert url.options == {
        "username": "user",
        "password": "p@ss",
        "db": 2,
        "health_check_interval": 5,
    }
    assert url.sentinel_options == {"password": "hush"}
    assert parse_sentinel_url("redis+sentinel://s1/presence/").options == {}


def test_tls_is_for_the_master_and_the_sentinels() -> None:
    url = "rediss+sentinel://s1/presence?ssl_ca_certs=/ca.pem"
    assert parse_sentinel_url(url).tls
    pool = connect(url, max_connections=2).connection_pool
    assert pool.connection_class.__name__ == "CancellableSentinelManagedSSLConnection"
    assert pool.connection_kwargs["ssl_ca_certs"] == "/ca.pem"
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool
    assert sentinel.connection_class.__name__ == "CancellableSSLConnection"
    assert sentinel.connection_kwargs["ssl_ca_certs"] == "/ca.pem"


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1",
        "redis+sentinel://s1/",
        "redis+sentinel://s1/presence/zero",
        "redis+sentinel://s1/presence/0/more",
        "redis+sentinel://s1:port/presence",
    ],
)
def test_a_url_without_a_master_name_and_db_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="Sentinel URL"):
        parse_sentinel_url(url)


# ------------------------------------------------------------------- the client


@pytest.mark.sentinel
async def test_writes_pass_cancellations_on(sentinel_group: SentinelGroup) -> None:
    await cancellations_pass_on(sentinel_group.url)


@pytest.mark.sentinel
async def test_the_pool_is_bounded_and_callers_wait(sentinel_group: SentinelGroup) -> None:
    client = client_of(sentinel_group, socket_timeout=seconds(20), max_connections=2, timeout=0.5)
    queue = f"{PREFIX}queue"

    async def both_taken() -> bool:
        return len(client.connection_pool._in_use_connections) == 2

    async def push() -> None:
        async with (await sentinel_group.master()).client() as direct:
            await direct.lpush(queue, "one")

    answer = await callers_wait_for_a_connection(
        client,
        queue,
        both_taken=both_taken,
        refused="No connection available",
        probe=client.ping,
        push=push,
    )
    assert answer is True


@pytest.mark.sentinel
async def test_a_command_on_the_demoted_master_fails_and_the_next_goes_to_the_new_one(
    sentinel_group: SentinelGroup,
) -> None:
    client = client_of(sentinel_group)
    try:
        await client.set(f"{PREFIX}state", "before")
        new_master = await sentinel_group.failover()  # demoted at once (REPLICAOF)
        # READONLY, as redis-py's Sentinel connection reports it (and drops the
        # connection): a ConnectionError, which the server's callers retry.
        with pytest.raises(RedisConnectionError, match="previous master is now a slave"):
            await client.set(f"{PREFIX}state", "after")
        await client.set(f"{PREFIX}state", "after")
        connection = next(iter(client.connection_pool._available_connections))
        assert (connection.host, connection.port) == new_master
    finally:
        await client.aclose()


@pytest.mark.sentinel
async def test_a_change_that_reaches_the_demoted_master_is_retried(
    sentinel_group: SentinelGroup, store: Store
) -> None:
    await store.hello("acme", "a-1", conn="i/1", now=now_ms())
    await sentinel_group.failover()  # demoted at once: the store's connection is to it
    outcome = await store.set_status("acme", "a-1", "break", by_user=True, now=now_ms())
    assert outcome.state is not None and outcome.state.status == "break"


# ------------------------------------------------------------------- the server


@pytest.mark.sentinel
async def test_the_server_serves_on_sentinel(sentinel_group: SentinelGroup, store: Store) -> None:
    async with run_server(sentinel_group) as server:
        agent, _ = await raw_agent(server.agent_url, "a-1")
        monitor = await raw_monitor(server.monitor_url)
        ack = await agent.request({"t": "status", "value": "break", "ref": 1})
        assert (ack["t"], ack["event"]["value"]) == ("ack", "break")
        frame = await monitor.next_event()
        assert (frame["event"]["id"], frame["state"]["status"]) == (ack["event"]["id"], "break")
        await agent.ws.close()
        await monitor.ws.close()
        # On the master the sentinels name, under the names the server gives them.
        master = await sentinel_group.master()
        async with master.client() as direct:
            names = {client["name"] for client in await direct.client_list()}
            assert await direct.exists(f"{PREFIX}{{acme}}:events")
        assert {name.split(":")[0] for name in names if name} >= {"presence"}
        assert any(name.endswith(":pubsub") for name in names)
    await check_company(store, "acme")


@pytest.mark.sentinel
@pytest.mark.parametrize("durability", ["local", "replicated"])
async def test_a_failover_under_load(
    sentinel_group: SentinelGroup, store: Store, durability: str
) -> None:
    """``SENTINEL FAILOVER`` with the old master left running, as Sentinel does it:
    the sentinels name the new master within about a second, and make the old one
    its replica (dropping its clients) only some 10 s later. With ``local``
    durability, changes acknowledged by the old master in that second are lost
    (counted, printed); with ``replicated``, none is."""
    old_master = await sentinel_group.master_address()
    # Retrying well past the failover, even on a slow machine: the test is of one
    # that completes, as a short outage does.
    async with run_server(sentinel_group, store_retry=seconds(15), durability=durability) as server:
        watcher = Watcher(server.monitor_url)
        watching = asyncio.create_task(watcher.run())
        changers = [Changer(f"a-{n}") for n in range(AGENTS)]
        stop = asyncio.Event()
        load = [asyncio.create_task(c.run(server.agent_url, stop)) for c in changers]
        try:
            await progress(load, lambda: all(len(c.acked) >= 3 for c in changers), seconds(20))
            before = sum(len(c.acked) for c in changers)
            assert await sentinel_group.failover(demote=False) != old_master
            # Changes go on being acknowledged: each agent's last ones were sent
            # once the old master was a replica.
            counts = [len(c.acked) for c in changers]
            await progress(
                load,
                lambda: all(len(c.acked) >= n + 3 for c, n in zip(changers, counts, strict=True)),
                seconds(30),
            )
            stop.set()
            await asyncio.gather(*load)
            events = await check_company(store, "acme")  # the log replays to the states
            await asyncio.wait_for(watcher.reached(str(events[-1].id)), seconds(20))
        finally:
            stop.set()
            watching.cancel()
            for task in load:
                task.cancel()
            await asyncio.gather(watching, *load, return_exceptions=True)

    lost = check_acknowledged(changers, watcher, events)
    if durability == "replicated":
        assert lost == [], f"{len(lost)} acknowledged changes lost: {lost[:3]}"
    print(f"\nfailover under load ({durability}): {summary(changers, watcher, events, before)}")

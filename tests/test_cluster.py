"""Redis Cluster (``redis+cluster://``): the URL, the client
(server/redis_client.py), and the server as real processes on the cluster of
tests/topologies.py (3 masters, a replica each): companies on every master,
a busy company's slot moved under load, a master killed under load.

The whole suite also runs on a cluster (``PRESENCE_TEST_TOPOLOGY=cluster``,
README); these are what needs the faults, or companies known to be on each
master.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from server.redis_client import BoundedRedisCluster, connect, parse_cluster_url
from server.store import Store
from tests.cancellation import callers_wait_for_a_connection, cancellations_pass_on
from tests.clients import raw_agent, raw_monitor
from tests.invariants import check_company
from tests.load import Changer, Watcher, check_acknowledged, progress, summary
from tests.processes import ServerProcess, presence_server
from tests.redis_nodes import connections
from tests.scraping import sample, scrape
from tests.servers import instance_id, process_env, token
from tests.timing import seconds
from tests.topologies import RedisCluster, key_slot

pytest_plugins = ["tests.topologies"]

PREFIX = "cluster:"
AGENTS = 6


def client_of(cluster: RedisCluster, **options: Any) -> BoundedRedisCluster:
    options = {
        "decode_responses": True,
        "socket_timeout": seconds(5),
        "socket_connect_timeout": seconds(2),
        "max_connections": 6,
        "timeout": seconds(5),
        **options,
    }
    client = connect(cluster.url, **options)
    assert isinstance(client, BoundedRedisCluster)
    return client


@pytest.fixture
async def store(redis_cluster: RedisCluster) -> AsyncIterator[Store]:
    """The test's view of the data, through the same Cluster URL."""
    client = client_of(redis_cluster)
    yield Store(client, PREFIX, retry_for=seconds(15))
    await client.aclose()


def run_server(
    cluster: RedisCluster, **settings: Any
) -> AbstractAsyncContextManager[ServerProcess]:
    return presence_server(process_env(cluster.url, PREFIX, **settings))


# ------------------------------------------------------------------------ the URL


def test_the_url_names_the_nodes_and_the_options() -> None:
    url = parse_cluster_url(
        "redis+cluster://user:p%40ss@n1:7000,n2,[::1]:7001/0?health_check_interval=5"
    )
    assert url.startup_nodes == (("n1", 7000), ("n2", 6379), ("::1", 7001))
    assert url.options == {"username": "user", "password": "p@ss", "health_check_interval": 5}
    assert not url.tls
    assert parse_cluster_url("rediss+cluster://n1").tls


@pytest.mark.parametrize(
    "url",
    ["redis+cluster://n1/1", "redis+cluster://n1:port", "redis://n1", "redis+cluster://n1/0/x"],
)
def test_a_url_that_is_no_cluster_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="Cluster URL"):
        parse_cluster_url(url)


# ------------------------------------------------------------------- the client


@pytest.mark.cluster
async def test_writes_pass_cancellations_on(redis_cluster: RedisCluster) -> None:
    await cancellations_pass_on(redis_cluster.url)


@pytest.mark.cluster
async def test_callers_wait_for_a_turn_and_the_budget_is_split_between_masters(
    redis_cluster: RedisCluster,
) -> None:
    # 6 connections over 3 masters: 2 commands in flight, so never more than 2
    # connections to a node and 6 in all.
    client = client_of(redis_cluster, socket_timeout=seconds(20), timeout=0.5)
    queue = f"{PREFIX}{{queue}}"
    await client.initialize()
    assert client.in_flight == 2

    async def both_taken() -> bool:
        return client._turns is not None and client._turns.locked()

    async def push() -> None:
        async with (await redis_cluster.master_of(key_slot(queue))).client() as direct:
            await direct.lpush(queue, "one")

    answer = await callers_wait_for_a_connection(
        client,
        queue,
        both_taken=both_taken,
        refused="no free connection",
        probe=lambda: client.get(f"{PREFIX}other"),
        push=push,
    )
    assert answer is None


# ------------------------------------------------------------------- the server


@pytest.mark.cluster
async def test_two_instances_serve_companies_on_every_master(
    redis_cluster: RedisCluster, store: Store
) -> None:
    """One company on each master; each agent on one instance, its monitor and a
    supervisor's HTTP change on the other: the change reaches the agent's socket
    and the monitor through the company's shard channels."""
    companies = [await redis_cluster.hash_tag_on(shard) for shard in range(3)]
    async with run_server(redis_cluster) as first, run_server(redis_cluster) as second:
        for company in companies:
            agent, _ = await raw_agent(first.agent_url, "a-1", company=company)
            monitor = await raw_monitor(second.monitor_url, company=company)
            ack = await agent.request({"t": "status", "value": "break", "ref": 1})
            assert (ack["t"], ack["event"]["value"]) == ("ack", "break"), ack
            assert (await monitor.next_event())["event"]["id"] == ack["event"]["id"]

            async with httpx.AsyncClient(base_url=second.http_url, timeout=seconds(5)) as http:
                response = await http.post(
                    "/v1/agents/a-1/status",
                    json={"value": "available"},
                    headers={"authorization": f"Bearer {token('sup', 'supervisor', company)}"},
                )
            assert response.status_code == 200, response.text
            pushed = await agent.recv()
            assert (pushed["t"], pushed["state"]["status"]) == ("state", "available"), pushed
            frame = await monitor.next_event()
            assert (frame["event"]["value"], frame["event"]["id"]) == (
                "available",
                pushed["event"]["id"],
            )
            await agent.ws.close()
            await monitor.ws.close()
        for server in (first, second):
            named = [
                c
                for c in await connections(store.redis)
                if c["name"].startswith(f"presence:{instance_id(server).rstrip('/')}")
            ]
            # The pool's budget (32) over 3 masters, plus a pub/sub connection per master.
            assert 0 < len(named) <= 32 + 3, named
    for company in companies:
        await check_company(store, company)
    masters = {(await redis_cluster.master_of(key_slot(c))).name for c in companies}
    assert len(masters) == 3


async def under_load(
    cluster: RedisCluster,
    store: Store,
    company: str,
    fault: Any,
    **settings: Any,
) -> tuple[list[Changer], Watcher, list[Any], int, float]:
    """Agents of ``company`` changing and a monitor watching, through ``fault()``
    and until each agent has had 3 more changes acknowledged; the changers, the
    watcher, the log afterwards, the changes acknowledged before the fault and
    the writes the server retried."""
    # Retrying well past the fault, even on a slow machine: the test is of one
    # that completes, as a short outage does.
    async with run_server(cluster, store_retry=seconds(15), **settings) as server:
        watcher = Watcher(server.monitor_url, company=company)
        watching = asyncio.create_task(watcher.run())
        changers = [Changer(f"a-{n}", company=company) for n in range(AGENTS)]
        stop = asyncio.Event()
        load = [asyncio.create_task(c.run(server.agent_url, stop)) for c in changers]
        try:
            await progress(load, lambda: all(len(c.acked) >= 3 for c in changers), seconds(20))
            before = sum(len(c.acked) for c in changers)
            await fault()
            counts = [len(c.acked) for c in changers]
            await progress(
                load,
                lambda: all(len(c.acked) >= n + 3 for c, n in zip(changers, counts, strict=True)),
                seconds(60),
            )
            stop.set()
            await asyncio.gather(*load)
            retried = sample(await scrape(server), "presence_redis_errors_total", where="script")
            events = await check_company(store, company)  # the log replays to the states
            await asyncio.wait_for(watcher.reached(str(events[-1].id)), seconds(20))
        finally:
            stop.set()
            watching.cancel()
            for task in load:
                task.cancel()
            await asyncio.gather(watching, *load, return_exceptions=True)
    return changers, watcher, events, before, retried or 0


@pytest.mark.cluster
async def test_a_busy_company_s_slot_moves_under_load(
    redis_cluster: RedisCluster, store: Store
) -> None:
    """The operator's ``MIGRATING``/``MIGRATE``/``SETSLOT NODE``, with changes
    going on: none is half-applied (the log replays to the states) or lost, the
    monitor misses none, and the keys all move (a change applied on the target
    before its keys arrived would make ``MIGRATE`` fail, ``BUSYKEY``)."""
    company = await redis_cluster.hash_tag_on(0)
    slot = key_slot(company)

    async def move() -> None:
        # A few keys at a time (the log, each agent's, each request's), so that
        # changes keep arriving while the slot is half moved.
        await redis_cluster.migrate_slot(slot, to_shard=1, batch=5, pause=0.05)

    changers, watcher, events, before, retried = await under_load(
        redis_cluster, store, company, move
    )
    assert (await redis_cluster.master_of(slot)).shard == 1
    assert retried > 0, "no change arrived while the slot was moving"
    lost = check_acknowledged(changers, watcher, events)
    assert lost == [], f"{len(lost)} acknowledged changes lost: {lost[:3]}"
    print(
        f"\nslot moved under load: {summary(changers, watcher, events, before)}; "
        f"writes retried: {retried:.0f}"
    )


@pytest.mark.cluster
@pytest.mark.parametrize("durability", ["local", "replicated"])
async def test_a_master_killed_under_load(
    redis_cluster: RedisCluster, store: Store, durability: str
) -> None:
    """SIGKILL to the master of a busy company's slot: its replica takes over
    (after the cluster's node timeout), and writes go on there. With
    ``replicated`` no acknowledged change is lost; its changes wait for a
    replica to confirm them, so the killed node is started again (it rejoins as
    the new master's replica). With ``local``, what was lost is printed."""
    company = await redis_cluster.hash_tag_on(2)
    slot = key_slot(company)

    async def kill() -> None:
        killed = await redis_cluster.kill_master(slot)
        assert (await redis_cluster.master_of(slot)) is not killed
        if durability == "replicated":
            await redis_cluster.heal()

    changers, watcher, events, before, _ = await under_load(
        redis_cluster, store, company, kill, durability=durability
    )
    lost = check_acknowledged(changers, watcher, events)
    if durability == "replicated":
        assert lost == [], f"{len(lost)} acknowledged changes lost: {lost[:3]}"
    print(
        f"\nmaster killed under load ({durability}): {summary(changers, watcher, events, before)}"
    )

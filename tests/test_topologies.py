"""The Cluster and Sentinel harness (tests/topologies.py), proved with plain redis-py:
keys spread over three masters, sharded pub/sub, a master killed and its replica
taking over, a slot moved under a client, and a sentinel failover, forced or after
a kill. No product code."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.timing import seconds
from tests.topologies import SLOTS, RedisCluster, SentinelGroup, key_slot

pytest_plugins = ["tests.topologies"]


@asynccontextmanager
async def cluster_client(cluster: RedisCluster) -> AsyncIterator[ClusterClient]:
    """A cluster client given the startup nodes, as the product will be."""
    nodes = [
        ClusterNode(host, int(port)) for host, port in (a.split(":") for a in cluster.startup_nodes)
    ]
    client = ClusterClient(startup_nodes=nodes, decode_responses=True, socket_timeout=seconds(5))
    try:
        # Learn the slots now: a pubsub's SSUBSCRIBE does not make it (SlotNotCoveredError).
        await client.initialize()
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def sentinel_master(group: SentinelGroup) -> AsyncIterator[Sentinel]:
    """A ``Sentinel`` over the group's sentinels (``master_for`` gives the master's client)."""
    sentinel = Sentinel(group.sentinel_addresses, socket_timeout=seconds(5), decode_responses=True)
    try:
        yield sentinel
    finally:
        await sentinel.aclose()


# ---------------------------------------------------------------------- cluster


@pytest.mark.cluster
async def test_cluster_spreads_hash_tags_over_three_masters(redis_cluster: RedisCluster) -> None:
    assert redis_cluster.url == "redis+cluster://" + ",".join(redis_cluster.startup_nodes)
    assert len(redis_cluster.startup_nodes) == 6
    tags = [await redis_cluster.hash_tag_on(shard) for shard in range(3)]
    masters = [await redis_cluster.master_of(key_slot(tag)) for tag in tags]
    assert len({master.port for master in masters}) == 3

    async with cluster_client(redis_cluster) as client:
        for tag in tags:
            await client.set(f"{{{tag}}}:name", tag)
        assert [await client.get(f"{{{tag}}}:name") for tag in tags] == tags

    # Each key is on its own master, and only there.
    for tag, master in zip(tags, masters, strict=True):
        async with master.client() as direct:
            assert await direct.dbsize() == 1
            assert await direct.get(f"{{{tag}}}:name") == tag


@pytest.mark.cluster
async def test_cluster_sharded_pubsub_delivers(redis_cluster: RedisCluster) -> None:
    channel = "{company-pubsub}:events"
    async with cluster_client(redis_cluster) as client:
        pubsub = client.pubsub()
        try:
            await pubsub.ssubscribe(channel)
            confirmation = await pubsub.get_sharded_message(timeout=seconds(5))
            assert confirmation is not None and confirmation["type"] == "ssubscribe"
            assert await client.spublish(channel, "hello") == 1
            message = await pubsub.get_sharded_message(timeout=seconds(5))
            assert message is not None
            assert (message["type"], message["channel"], message["data"]) == (
                "smessage",
                channel,
                "hello",
            )
        finally:
            await pubsub.aclose()


@pytest.mark.cluster
async def test_cluster_kill_master_promotes_its_replica(redis_cluster: RedisCluster) -> None:
    tag = await redis_cluster.hash_tag_on(1)
    slot = key_slot(tag)
    key = f"{{{tag}}}:state"
    old = await redis_cluster.master_of(slot)
    async with old.client() as direct:
        await direct.set(key, "before")
        assert await direct.wait(1, round(seconds(5) * 1000)) == 1  # on its replica too

    async with cluster_client(redis_cluster) as client:
        assert await client.get(key) == "before"  # the client knows the old master
        killed = await redis_cluster.kill_master(slot)
        assert killed is old and not old.alive
        new = await redis_cluster.master_of(slot)
        assert new is not old and new.shard == old.shard and new.alive

        assert await client.get(key) == "before"
        await client.set(key, "after")
        assert await client.get(key) == "after"
        node = client.get_node_from_key(key)
        assert node is not None and node.port == new.port


@pytest.mark.cluster
async def test_cluster_migrate_slot_moves_keys_under_a_client(redis_cluster: RedisCluster) -> None:
    tag = await redis_cluster.hash_tag_on(0)
    slot = key_slot(tag)
    keys = [f"{{{tag}}}:{n}" for n in range(250)]  # more than one MIGRATE batch
    async with cluster_client(redis_cluster) as client:
        await client.mset({key: key for key in keys})
        source = await redis_cluster.master_of(slot)

        await redis_cluster.migrate_slot(slot, 2)

        target = await redis_cluster.master_of(slot)
        assert target.shard == 2 and target is not source
        async with target.client() as direct:
            assert await direct.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 250
        async with source.client() as direct:
            assert await direct.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        # The client still has the old owner: it follows MOVED.
        assert await client.get(keys[0]) == keys[0]
        assert await client.mget(keys) == keys
        node = client.get_node_from_key(keys[0])
        assert node is not None and node.port == target.port


@pytest.mark.cluster
async def test_cluster_reset_heals_what_a_test_broke(redis_cluster: RedisCluster) -> None:
    """What the fixture does after each test: killed nodes back as replicas, moved
    slots back home, no data."""
    layout = {shard: await redis_cluster.hash_tag_on(shard) for shard in range(3)}
    moved = key_slot(layout[1])
    await redis_cluster.kill_master(shard=0)
    await redis_cluster.migrate_slot(moved, 2)
    async with cluster_client(redis_cluster) as client:
        await client.set(f"{{{layout[2]}}}:x", "1")

    await redis_cluster.reset()

    assert all(node.alive for node in redis_cluster.nodes)
    assert await redis_cluster.shard_of(moved) == 1
    for shard in range(3):
        low, high = shard * SLOTS // 3, (shard + 1) * SLOTS // 3 - 1
        assert {await redis_cluster.shard_of(slot) for slot in (low, high)} == {shard}
        roles = []
        for node in redis_cluster.shard(shard):
            async with node.client() as direct:
                roles.append((await direct.execute_command("ROLE"))[0])
                assert await direct.dbsize() == 0
        assert sorted(roles) == ["master", "slave"]


# --------------------------------------------------------------------- sentinel


@pytest.mark.sentinel
async def test_sentinel_master_for_writes(sentinel_group: SentinelGroup) -> None:
    hosts = ",".join(f"{host}:{port}" for host, port in sentinel_group.sentinel_addresses)
    assert sentinel_group.url == f"redis+sentinel://{hosts}/{sentinel_group.master_name}"
    async with sentinel_master(sentinel_group) as sentinel:
        assert await sentinel.discover_master(sentinel_group.master_name) == (
            await sentinel_group.master_address()
        )
        master = sentinel.master_for(sentinel_group.master_name)
        await master.set("greeting", "hola")
        assert await master.get("greeting") == "hola"
        await master.aclose()


@pytest.mark.sentinel
async def test_sentinel_failover_moves_the_master(sentinel_group: SentinelGroup) -> None:
    old = await sentinel_group.master()
    async with old.client() as direct:
        await direct.set("state", "before")
        assert await direct.wait(1, round(seconds(5) * 1000)) == 1
    async with sentinel_master(sentinel_group) as sentinel:
        master = sentinel.master_for(sentinel_group.master_name)
        assert await master.get("state") == "before"

        new_address = await sentinel_group.failover()

        assert new_address[1] != old.port
        assert await sentinel.discover_master(sentinel_group.master_name) == new_address
        assert old.alive  # a replica now
        # Its connection to the old master, now a replica, gets READONLY: redis-py
        # 8.1 fails that command (its retries reconnect to the same address,
        # redis/redis-py#3874); the next one asks the sentinels again.
        with contextlib.suppress(RedisConnectionError):
            await master.set("state", "after")
        await master.set("state", "after")
        assert await master.get("state") == "after"
        await master.aclose()


@pytest.mark.sentinel
async def test_sentinel_kill_master_promotes_the_replica(sentinel_group: SentinelGroup) -> None:
    async with sentinel_master(sentinel_group) as sentinel:
        master = sentinel.master_for(sentinel_group.master_name)
        await master.set("state", "before")
        old = await sentinel_group.master()

        killed = await sentinel_group.kill_master()

        assert killed is old and not old.alive
        new_address = await sentinel_group.master_address()
        assert new_address[1] != old.port
        assert await sentinel.discover_master(sentinel_group.master_name) == new_address
        await master.set("state", "after")
        assert await master.get("state") == "after"
        await master.aclose()

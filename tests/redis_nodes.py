"""What a test asks of the Redis behind a client, one node or a cluster alike:
the connections every master holds, one of them cut, a channel heard, the scripts run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis

from server.redis_client import BoundedRedisCluster, RedisClient


async def connections(redis_client: RedisClient, **filters: Any) -> list[dict[str, Any]]:
    """``CLIENT LIST`` of every master, each entry with the ``node`` it is on."""
    if not isinstance(redis_client, BoundedRedisCluster):
        return [{**c, "node": None} for c in await redis_client.client_list(**filters)]
    listed = []
    await redis_client.initialize()  # learns the masters, the first time
    for node in redis_client.get_primaries():
        listed += [
            {**c, "node": node}
            for c in await redis_client.client_list(**filters, target_nodes=node)
        ]
    return listed


async def script_runs(redis_client: RedisClient) -> int:
    """Scripts run so far (``EVAL`` and ``EVALSHA`` calls), on every master."""
    if isinstance(redis_client, BoundedRedisCluster):
        await redis_client.initialize()
        stats = [
            await redis_client.info("commandstats", target_nodes=node)
            for node in redis_client.get_primaries()
        ]
    else:
        stats = [await redis_client.info("commandstats")]
    return sum(
        int(node.get(f"cmdstat_{command}", {}).get("calls", 0))
        for node in stats
        for command in ("eval", "evalsha")
    )


async def cut(redis_client: RedisClient, connection: dict[str, Any]) -> None:
    """Close ``connection`` (an entry of :func:`connections`) from the server's side."""
    if connection["node"] is None:
        await redis_client.client_kill_filter(_id=connection["id"])
    else:
        await redis_client.client_kill_filter(_id=connection["id"], target_nodes=connection["node"])


@asynccontextmanager
async def heard(redis_client: RedisClient, channel: str) -> AsyncIterator[asyncio.Queue[str]]:
    """The messages of sharded ``channel`` while the block runs, on a connection
    to the node that serves it."""
    if isinstance(redis_client, BoundedRedisCluster):
        await redis_client.initialize()
        node = redis_client.get_node_from_key(channel)
        assert node is not None
        client = aioredis.Redis(host=node.host, port=node.port, decode_responses=True)
    else:
        client = aioredis.Redis(connection_pool=redis_client.connection_pool)
    messages: asyncio.Queue[str] = asyncio.Queue()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.ssubscribe(channel)

    async def listen() -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None:
                messages.put_nowait(message["data"])

    listener = asyncio.create_task(listen())
    try:
        yield messages
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        if isinstance(redis_client, BoundedRedisCluster):
            await client.aclose()

"""The instance's pub/sub (server/subscriptions.py) on the tests' Redis: a
subscription is confirmed before anything published is sure to be heard, and a
cut connection comes back with every channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from server.redis_client import BoundedRedisCluster, RedisClient, connect
from server.store import Observer
from server.subscriptions import ClusterMasters, OneNode, Placement, Subscriptions
from tests.redis_nodes import connections, cut
from tests.timing import seconds


class LossCounter(Observer):
    """Counts the pub/sub connections found lost."""

    def __init__(self) -> None:
        self.lost = 0
        self.changed = asyncio.Event()

    def redis_error(self, where: str) -> None:
        if where == "pubsub":
            self.lost += 1
            self.changed.set()

    async def reached(self, count: int) -> None:
        while self.lost < count:
            self.changed.clear()
            await self.changed.wait()


def placement_for(redis_url: str, redis_client: RedisClient, name: str) -> Placement:
    if isinstance(redis_client, BoundedRedisCluster):
        return ClusterMasters(redis_client, client_name=name)
    return OneNode.connect(redis_url, client_name=name)


@pytest.fixture
async def subscriptions(
    redis_url: str, redis_client: RedisClient, key_prefix: str
) -> AsyncIterator[Subscriptions]:
    subs = Subscriptions(placement_for(redis_url, redis_client, key_prefix + "subs"), LossCounter())
    running = asyncio.create_task(subs.run())
    yield subs
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


async def test_once_confirmed_what_is_published_is_heard(
    subscriptions: Subscriptions, redis_client: RedisClient, key_prefix: str
) -> None:
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    channels = [f"{key_prefix}{{company-{n}}}:changes" for n in range(5)]
    for channel in channels:
        subscriptions.subscribe(channel, lambda channel, data: heard.put_nowait((channel, data)))
    for channel in channels:
        assert await subscriptions.confirmed(channel, seconds(5))
    for channel in channels:
        assert await redis_client.spublish(channel, "hello") == 1
    async with asyncio.timeout(seconds(5)):
        got = {await heard.get() for _ in channels}
    assert got == {(channel, "hello") for channel in channels}


async def test_nothing_confirms_a_channel_nobody_listens_to(key_prefix: str) -> None:
    # Never run: no connection, so no confirmation, and the wait gives up.
    subs = Subscriptions(OneNode(connect("redis://127.0.0.1:1", max_connections=1)), Observer())
    subs.subscribe(f"{key_prefix}{{acme}}:changes", lambda channel, data: None)
    assert not await subs.confirmed(f"{key_prefix}{{acme}}:changes", 0.1)
    await subs.placement.aclose()


async def test_a_cut_connection_comes_back_with_every_channel(
    subscriptions: Subscriptions, redis_client: RedisClient, key_prefix: str
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    channels = [f"{key_prefix}{{company-{n}}}:log" for n in range(5)]
    back = asyncio.Event()
    subscriptions.on_resubscribed(back.set)
    losses = subscriptions.observer
    assert isinstance(losses, LossCounter)
    for channel in channels:
        subscriptions.subscribe(channel, lambda channel, data: heard.put_nowait(channel))
        assert await subscriptions.confirmed(channel, seconds(5))

    listeners = [
        connection
        for connection in await connections(redis_client, _type="pubsub")
        if connection["name"] == key_prefix + "subs"
    ]
    assert listeners  # one, or one per master the channels are on
    for connection in listeners:
        await cut(redis_client, connection)
    async with asyncio.timeout(seconds(10)):
        await losses.reached(len(listeners))  # each cut noticed: none confirmed any more
        await back.wait()
    for channel in channels:
        assert await subscriptions.confirmed(channel, seconds(10))
        assert await redis_client.spublish(channel, "again") == 1
    async with asyncio.timeout(seconds(5)):
        assert {await heard.get() for _ in channels} == set(channels)

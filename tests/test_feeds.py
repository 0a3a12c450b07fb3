"""Monitors' feeds follow the log through pub/sub, and read from the stream
whatever pub/sub lost: a cut connection, a message nobody heard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from server.feed import CompanyFeed, EncodedFrame, Feeds
from server.redis_client import RedisClient
from server.store import Observer, Store
from server.subscriptions import OneNode, Subscriptions
from tests.clients import open_agent, open_monitor
from tests.redis_nodes import connections, cut, heard
from tests.servers import RunningServer
from tests.timing import seconds

NOW = 1_732_400_000_000


class Collected:
    """A subscriber that keeps every frame the feed offers it."""

    segment: str | None = None
    queued = 0

    def __init__(self) -> None:
        self.frames: list[EncodedFrame] = []
        self.restarted = False

    def offer(self, frames: EncodedFrame) -> None:
        self.frames.append(frames)

    def restart(self) -> None:
        self.restarted = True

    async def drain(self) -> None:
        pass

    def values(self) -> list[str]:
        return [frames.frame["event"]["value"] for frames in self.frames]


@pytest.fixture
async def deaf_feed(store: Store) -> AsyncIterator[tuple[Feeds, CompanyFeed, Collected]]:
    """Company acme's feed, with agent a-1 connected and one monitor on it, on
    subscriptions that never run: every message on the log channel is lost."""
    feeds = Feeds(store, Subscriptions(OneNode(store.redis), Observer()))
    await store.hello("acme", "a-1", conn="c1", now=NOW)
    feed = await feeds.join("acme")
    monitor = Collected()
    feed.subscribers.add(monitor)
    yield feeds, feed, monitor
    await feeds.close()


async def test_what_no_message_told_is_read_from_the_log_at_the_position_check(
    store: Store, deaf_feed: tuple[Feeds, CompanyFeed, Collected]
) -> None:
    feeds, feed, monitor = deaf_feed

    await store.set_status("acme", "a-1", "available", by_user=True, now=NOW + 1, conn="c1")
    await store.activity("acme", "a-1", "in-call", now=NOW + 2, conn="c1")
    assert monitor.frames == []

    await feeds.check_positions()
    await feed.settled()
    assert monitor.values() == ["available", "in-call"]
    assert feed.cursor == monitor.frames[-1].frame["event"]["id"]
    assert feed.states["a-1"].activity == "in-call"

    # Caught up: the next check reads nothing new, and offers nothing twice.
    await feeds.check_positions()
    await feed.settled()
    assert monitor.values() == ["available", "in-call"]


async def test_a_change_that_does_not_follow_the_cursor_is_read_with_its_gap(
    store: Store, deaf_feed: tuple[Feeds, CompanyFeed, Collected]
) -> None:
    _, feed, monitor = deaf_feed
    async with heard(store.redis, store.keys.log("acme")) as published:
        await store.set_status("acme", "a-1", "available", by_user=True, now=NOW + 1, conn="c1")
        await store.set_status("acme", "a-1", "break", by_user=True, now=NOW + 2, conn="c1")
        async with asyncio.timeout(seconds(5)):
            messages = [await published.get(), await published.get()]

    # Only the second change's message arrives: it follows an entry the feed never saw.
    feed.heard(store.keys.log("acme"), messages[1])
    await feed.settled()
    assert monitor.values() == ["available", "break"]
    # The first one, late: already read with the gap, so not offered again.
    feed.heard(store.keys.log("acme"), messages[0])
    await feed.settled()
    assert monitor.values() == ["available", "break"]


async def test_a_monitor_misses_nothing_when_the_pubsub_connection_is_cut(
    server: RunningServer, redis_client: RedisClient, key_prefix: str
) -> None:
    agent, _ = await open_agent(server)
    monitor = await open_monitor(server)
    await monitor.subscribe()

    # The instance's one pub/sub connection, found by the name it gives it.
    (instance,) = await redis_client.smembers(key_prefix + "instances")  # type: ignore[misc]
    clients = await connections(redis_client, _type="pubsub")
    listeners = [c for c in clients if c["name"] == f"presence:{instance}:pubsub"]
    for listener in listeners:  # one per master
        await cut(redis_client, listener)

    values = ["available", "break", "meal", "available", "training"] * 4
    for ref, value in enumerate(values):
        ack = await agent.request({"t": "status", "value": value, "ref": ref})
        assert ack["t"] == "ack", ack
    await monitor.read_count(len(values))
    assert [event["value"] for event in monitor.events] == values

r"""This instance's pub/sub connections, and who hears each of its channels.

Every channel the instance listens to — the changes channel of each company
it holds agent connections of, the log channel of each company it has
monitors for, its own control channel (liveness probes) — goes through one
connection per Redis master (one in all, without a cluster), apart from the
pool that writes use: a subscription never takes a connection a write is
waiting for, and the number of connections does not grow with the number of
companies followed.

Every channel is a sharded one (``SSUBSCRIBE``; the script ``SPUBLISH``\es):
a company's channels carry its hash tag, so on Redis Cluster a change travels
only within its company's shard, and is heard on the master that owns the
company's slot; on one node they behave as classic pub/sub.

Subscribing and unsubscribing never wait: the wish is recorded at once (a
message for a channel nobody wants any more is dropped) and the commands go
out in the order they were asked for.

Pub/sub is lossy. When a connection is lost, or a cluster moves a slot (its
master unsubscribes the slot's channels) or fails a master over, the channels
find their master again, are subscribed to again, and whoever asked is told
(:meth:`Subscriptions.on_resubscribed`) so that they can read what they
missed from the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ResponseError, SlotNotCoveredError

from server import redis_client
from server.redis_client import BoundedRedisCluster
from server.store import REDIS_ERRORS, Observer

__all__ = ["ClusterMasters", "Handler", "OneNode", "Placement", "Subscriptions"]

log = logging.getLogger("presence.subscriptions")

#: Told each message of a channel: the channel, then the message.
Handler = Callable[[str, str], None]
#: For pub/sub connections: redis-py's own retry reconnects a lost pub/sub
#: connection and subscribes to everything again in one SSUBSCRIBE, silently,
#: which a cluster refuses (several slots) and which would hide the loss from
#: whoever must read the gap. A lost connection is the listener's to handle.
NO_RETRY: Final = Retry(NoBackoff(), 0)
#: Seconds before a lost connection is tried again, first and at most.
FIRST_DELAY, MAX_DELAY = 0.1, 5.0


class Placement(Protocol):
    """Which Redis node serves a channel, and a pub/sub client of each."""

    def node_of(self, channel: str) -> str | None:
        """The node's name; ``None`` while no node is known to serve it."""

    def client(self, node: str) -> aioredis.Redis:
        """A client of ``node`` for one pub/sub connection (made once, kept)."""

    def together(self, channels: Iterable[str]) -> Iterable[list[str]]:
        """``channels`` in groups that one ``SSUBSCRIBE`` may name."""

    async def relearn(self) -> None:
        """Ask Redis again which node serves what."""

    async def aclose(self) -> None:
        """Close the clients made."""


class OneNode:
    """Every channel on the one node (alone, or the master Sentinel names)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    @classmethod
    def connect(cls, url: str, client_name: str) -> OneNode:
        """A pub/sub client of the Redis at ``url`` (not a cluster's): one
        connection, reading with no timeout, without redis-py's retry."""
        client = redis_client.connect(
            url,
            client_name=client_name,
            decode_responses=True,
            socket_connect_timeout=5,
            max_connections=1,
            retry=NO_RETRY,
        )
        assert not isinstance(client, BoundedRedisCluster), "a cluster's: ClusterMasters"
        return cls(client)

    def node_of(self, channel: str) -> str:
        return ""

    def client(self, node: str) -> aioredis.Redis:
        return self._client

    def together(self, channels: Iterable[str]) -> Iterable[list[str]]:
        return [list(channels)]

    async def relearn(self) -> None:
        pass

    async def aclose(self) -> None:
        await self._client.aclose()


class ClusterMasters:
    """A channel on the master of its slot, as the cluster client last saw them."""

    def __init__(self, cluster: BoundedRedisCluster, client_name: str) -> None:
        self.cluster = cluster
        self.client_name = client_name
        self._clients: dict[str, aioredis.Redis] = {}

    def node_of(self, channel: str) -> str | None:
        try:
            node = self.cluster.get_node_from_key(channel)
        except SlotNotCoveredError:  # not learned yet, or nobody serves it now
            return None
        return None if node is None else str(node.name)

    def client(self, node: str) -> aioredis.Redis:
        if node not in self._clients:
            known = self.cluster.get_node(node_name=node)
            assert known is not None  # named by node_of
            options = {
                **known.connection_kwargs,
                "client_name": self.client_name,
                # A pub/sub connection waits for messages as long as it takes.
                "socket_timeout": None,
            }
            options["retry"] = NO_RETRY
            pool = aioredis.BlockingConnectionPool(
                connection_class=known.connection_class, max_connections=1, **options
            )
            self._clients[node] = aioredis.Redis.from_pool(pool)
        return self._clients[node]

    def together(self, channels: Iterable[str]) -> Iterable[list[str]]:
        # A cluster refuses an SSUBSCRIBE whose channels are in different slots.
        slots: dict[int, list[str]] = {}
        for channel in channels:
            slots.setdefault(key_slot(channel.encode()), []).append(channel)
        return slots.values()

    async def relearn(self) -> None:
        await self.cluster.relearn()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


class Subscriptions:
    def __init__(self, placement: Placement, observer: Observer) -> None:
        self.placement = placement
        self.observer = observer
        self._channels: dict[str, Handler] = {}
        #: The node each wanted channel is subscribed on (or being).
        self._home: dict[str, str] = {}
        self._listeners: dict[str, _Listener] = {}
        #: Channels that must find their node again (lost it, or none known).
        self._homeless: set[str] = set()
        self._replace = asyncio.Event()
        #: Channels Redis has confirmed on a live connection, and who waits for one.
        self._confirmed: set[str] = set()
        self._awaiting: dict[str, list[asyncio.Future[None]]] = {}
        self._resubscribed: list[Callable[[], None]] = []
        self._running = False
        #: Set while subscribed to everything asked for on live connections.
        self.connected = asyncio.Event()

    def on_resubscribed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time channels are back after a loss (a lost
        connection, a slot that moved): messages may have been missed."""
        self._resubscribed.append(callback)

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._channels[channel] = handler
        if channel not in self._home and channel not in self._homeless:
            self._place(channel)

    async def confirmed(self, channel: str, within: float) -> bool:
        """Wait until Redis confirms the subscription to ``channel`` (at most
        ``within`` seconds): from then on, nothing published there is missed
        while the connection lives. Whether it was confirmed."""
        if channel in self._confirmed:
            return True
        future = asyncio.get_running_loop().create_future()
        self._awaiting.setdefault(channel, []).append(future)
        try:
            async with asyncio.timeout(within):
                await future
            return True
        except TimeoutError:
            return False
        finally:
            waiting = self._awaiting.get(channel, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._awaiting.pop(channel, None)

    def _confirm(self, channel: str) -> None:
        if channel not in self._channels:
            return
        self._confirmed.add(channel)
        for future in self._awaiting.pop(channel, []):
            if not future.done():
                future.set_result(None)

    def unsubscribe(self, channel: str) -> None:
        if self._channels.pop(channel, None) is None:
            return
        self._confirmed.discard(channel)
        self._homeless.discard(channel)
        node = self._home.pop(channel, None)
        if node is not None:
            self._listeners[node].remove(channel)

    async def run(self) -> None:
        """Listen and hand each message to its handler until cancelled; put
        channels whose node was lost or moved where they now belong."""
        self._running = True
        for listener in self._listeners.values():
            listener.start()
        try:
            while True:
                await self._replace.wait()
                self._replace.clear()
                try:
                    await self.placement.relearn()
                except REDIS_ERRORS as exc:
                    log.warning("could not learn where channels belong (%s)", exc)
                    await asyncio.sleep(FIRST_DELAY)
                homeless, self._homeless = self._homeless, set()
                for channel in homeless:
                    if channel in self._channels:
                        self._place(channel)
                if self._homeless:
                    await asyncio.sleep(FIRST_DELAY)
                    self._replace.set()
                self._update_connected()
                self._tell_resubscribed()
        finally:
            self._running = False
            for listener in self._listeners.values():
                await listener.stop()
            await self.placement.aclose()

    def _place(self, channel: str) -> None:
        node = self.placement.node_of(channel)
        if node is None:
            self._lost(channel)
            return
        self._home[channel] = node
        listener = self._listeners.get(node)
        if listener is None:
            listener = self._listeners[node] = _Listener(self, node)
            if self._running:
                listener.start()
        listener.add(channel)
        self._update_connected()

    def _lost(self, channel: str) -> None:
        """``channel``'s node dropped it (a slot moved) or is unknown: find it again."""
        self._confirmed.discard(channel)
        self._home.pop(channel, None)
        self._homeless.add(channel)
        self._replace.set()

    def _listener_down(self, listener: _Listener) -> None:
        """A connection failed: on a cluster its node may no longer serve its
        channels (a failover), so they are placed again; on one node, or if it
        still serves them, they come back to the same listener."""
        for channel in listener.drop_all():
            self._lost(channel)
        self._update_connected()

    def _listener_up(self, first: bool) -> None:
        self._update_connected()
        if not first:
            self._tell_resubscribed()

    def _tell_resubscribed(self) -> None:
        for callback in self._resubscribed:
            callback()

    def _update_connected(self) -> None:
        if not self._homeless and all(
            listener.subscribed for listener in self._listeners.values() if listener.channels
        ):
            self.connected.set()
        else:
            self.connected.clear()

    def _deliver(self, channel: str, data: str) -> None:
        handler = self._channels.get(channel)
        if handler is None:
            return  # unsubscribed meanwhile
        try:
            handler(channel, data)
        except Exception:
            # One bad message must not stop presence for everyone else.
            log.exception("could not handle a message on %s", channel)


class _Listener:
    """One pub/sub connection to one node, and the channels subscribed on it."""

    def __init__(self, owner: Subscriptions, node: str) -> None:
        self.owner = owner
        self.node = node
        self.channels: set[str] = set()
        #: Our own SUNSUBSCRIBEs not yet answered, per channel: any other
        #: ``sunsubscribe`` is the node's (its slot moved away).
        self._leaving: Counter[str] = Counter()
        #: Commands for the current connection, in the order asked for.
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.subscribed = False
        self._task: asyncio.Task[None] | None = None

    def add(self, channel: str) -> None:
        self.channels.add(channel)
        self._outbox.put_nowait(("ssubscribe", channel))

    def remove(self, channel: str) -> None:
        self.channels.discard(channel)
        self._leaving[channel] += 1
        self._outbox.put_nowait(("sunsubscribe", channel))

    def drop_all(self) -> set[str]:
        """Forget every channel (the connection is gone): they are placed again."""
        dropped, self.channels = self.channels, set()
        # What was asked of the lost connection is moot: the channels are placed
        # again, maybe on another node, and must not come back here with it.
        while not self._outbox.empty():
            self._outbox.get_nowait()
        self._leaving.clear()
        return dropped

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"presence-pubsub {self.node}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay, first = FIRST_DELAY, True
        while True:
            if not self.channels:
                # Nothing to listen to here (its channels live elsewhere now):
                # wait for the next one, without a connection.
                command, channel = await self._outbox.get()
                if command == "sunsubscribe":
                    self._leaving[channel] -= 1
                    continue
                self.channels.add(channel)
            pubsub = self.owner.placement.client(self.node).pubsub()
            # Subscription confirmations are read too: callers may wait for one.
            sender: asyncio.Task[None] | None = None
            try:
                # Everything wished for so far, in one go; later wishes follow
                # through the outbox, in order.
                while not self._outbox.empty():
                    self._outbox.get_nowait()
                self._leaving.clear()
                for channels in self.owner.placement.together(self.channels):
                    await pubsub.ssubscribe(*channels)
                sender = asyncio.create_task(self._send(pubsub))
                self.subscribed = True
                delay = FIRST_DELAY
                self.owner._listener_up(first)
                first = False
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if sender.done():
                        sender.result()  # its Redis error: start over
                    if message is not None:
                        self._route(message)
            except (*REDIS_ERRORS, ResponseError) as exc:
                # ResponseError: MOVED to an SSUBSCRIBE, the slot is elsewhere now.
                self.owner.observer.redis_error("pubsub")
                log.warning(
                    "pub/sub on %s lost (%s); again in %.1fs", self.node or "redis", exc, delay
                )
                self.subscribed = False
                self.owner._listener_down(self)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)
            finally:
                self.subscribed = False
                if sender is not None:
                    sender.cancel()
                    with contextlib.suppress(asyncio.CancelledError, *REDIS_ERRORS, ResponseError):
                        await sender
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _send(self, pubsub: PubSub) -> None:
        while True:
            command, channel = await self._outbox.get()
            await getattr(pubsub, command)(channel)

    def _route(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "smessage":
            if channel in self.channels:
                self.owner._deliver(channel, message["data"])
        elif kind == "ssubscribe":
            if channel in self.channels:
                self.owner._confirm(channel)
        elif kind == "sunsubscribe":
            if self._leaving[channel] > 0:
                self._leaving[channel] -= 1
            elif channel in self.channels:
                # Not ours: the node no longer serves the slot.
                self.channels.discard(channel)
                self.owner._lost(channel)

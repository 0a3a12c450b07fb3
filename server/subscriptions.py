r"""This instance's one pub/sub connection, and who hears each of its channels.

Every channel the instance listens to — the changes channel of each company
it holds agent connections of, the log channel of each company it has
monitors for, its own control channel (liveness probes) — shares one
connection, apart from the pool that writes use: a subscription never takes a
connection a write is waiting for, and the number of connections does not
grow with the number of companies followed.

Every channel is a sharded one (``SSUBSCRIBE``; the script ``SPUBLISH``\es):
a company's channels carry its hash tag, so on Redis Cluster a change travels
only within its company's shard; on one node they behave as classic pub/sub.

Subscribing and unsubscribing never wait: the wish is recorded at once (a
message for a channel nobody wants any more is dropped) and the commands go
out in the order they were asked for.

Pub/sub is lossy. When the connection is lost the instance subscribes again
to everything on a new one, and tells whoever asked (:meth:`on_resubscribed`)
so that they can read what they missed from the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from server.store import REDIS_ERRORS, Observer

__all__ = ["Handler", "Subscriptions"]

log = logging.getLogger("presence.subscriptions")

#: Told each message of a channel: the channel, then the message.
Handler = Callable[[str, str], None]


class Subscriptions:
    def __init__(self, redis: aioredis.Redis, observer: Observer) -> None:
        #: A client of its own: the pub/sub connection is never the write pool's.
        self.redis = redis
        self.observer = observer
        self._channels: dict[str, Handler] = {}
        self._resubscribed: list[Callable[[], None]] = []
        #: Commands for the current connection, in the order asked for.
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        #: Set while subscribed to everything asked for on a live connection.
        self.connected = asyncio.Event()

    def on_resubscribed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time the subscriptions are back after a lost connection."""
        self._resubscribed.append(callback)

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._channels[channel] = handler
        self._outbox.put_nowait(("ssubscribe", channel))

    def unsubscribe(self, channel: str) -> None:
        if self._channels.pop(channel, None) is not None:
            self._outbox.put_nowait(("sunsubscribe", channel))

    async def run(self) -> None:
        """Listen and hand each message to its handler until cancelled;
        subscribe again to everything after Redis errors. Something must be
        subscribed to before it starts (the hub's channels always are)."""
        assert self._channels, "redis-py reads nothing before a subscription"
        delay, first = 0.1, True
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            sender: asyncio.Task[None] | None = None
            try:
                # Everything wished for so far, in one go; later wishes follow
                # through the outbox, in order.
                while not self._outbox.empty():
                    self._outbox.get_nowait()
                await pubsub.ssubscribe(*self._channels)
                sender = asyncio.create_task(self._send(pubsub))
                self.connected.set()
                delay = 0.1
                if not first:
                    for callback in self._resubscribed:
                        callback()
                first = False
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if sender.done():
                        sender.result()  # its Redis error: start over
                    if message is not None:
                        self._route(message)
            except REDIS_ERRORS as exc:
                self.observer.redis_error("pubsub")
                log.warning("pub/sub lost (%s); subscribing again in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                self.connected.clear()
                if sender is not None:
                    sender.cancel()
                    with contextlib.suppress(asyncio.CancelledError, *REDIS_ERRORS):
                        await sender
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _send(self, pubsub: PubSub) -> None:
        while True:
            command, name = await self._outbox.get()
            await getattr(pubsub, command)(name)

    def _route(self, message: dict[str, Any]) -> None:
        if message["type"] != "smessage":
            return
        handler = self._channels.get(message["channel"])
        if handler is None:
            return  # unsubscribed meanwhile
        try:
            handler(message["channel"], message["data"])
        except Exception:
            # One bad message must not stop presence for everyone else.
            log.exception("could not handle a message on %s", message["channel"])

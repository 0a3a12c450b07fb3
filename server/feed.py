"""Live monitors' source: this instance's view of a company's log (spec §5).

One :class:`CompanyFeed` per company with monitors on this instance tails the
company's stream (``XREAD BLOCK``) and fans each entry out to them. The stream,
not pub/sub, drives it: it is ordered and lossless, whoever wrote the entry, so
a monitor on any instance sees every event of every instance in log order.

A feed starts from a consistent view, without locking anything::

    cursor = the log's last id;  states = every agent's stored state
    then apply the entries after cursor whose id is newer than the state's version

Stored states may be ahead of ``cursor`` (changes landing meanwhile); the
version test skips what they already include. From then on the view is exactly
"as of ``cursor``", and a monitor that subscribes gets that view and every later
entry: the copy and the registration happen with no ``await`` between them, so
nothing can fall in between.

Each entry carries the agent's state after it (see ``server/store.py``), so a
monitor that resumes from a cursor is served the missed range straight from the
stream, states included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from presence_protocol.codec import encode
from server.state import AgentState, Event
from server.store import ORIGIN, SEGMENT_EVENTS, Store, id_key

__all__ = ["CompanyFeed", "Feeds", "Subscriber", "event_frame"]

log = logging.getLogger("presence.feed")

#: How long one XREAD waits for an entry before checking the epoch again.
BLOCK_MS: Final = 2000
BATCH: Final = 1000


class Subscriber(Protocol):
    segment: str | None

    @property
    def queued(self) -> int:
        """Frames waiting to be sent (for the monitor queue depth metric)."""

    def offer(self, frames: EncodedFrame) -> None:
        """Take one event frame; must not block (queue it, or give up on the monitor)."""

    def restart(self) -> None:
        """The log was lost or recreated: close so the monitor resubscribes afresh."""

    async def drain(self) -> None:
        """The instance is shutting down: close with 1001 (resume elsewhere)."""


def sees(segment: str | None, event: Event, state: AgentState) -> bool:
    """Whether a monitor of ``segment`` is sent ``event``. Connection events go to
    every monitor: they are where an agent joins or leaves a segment."""
    return segment is None or segment in state.segments or event.value in SEGMENT_EVENTS


def event_frame(event: Event, state: AgentState, epoch: str) -> dict[str, Any]:
    return {
        "t": "event",
        "event": event.to_wire(),
        "state": state.to_wire(),
        "cursor": {"epoch": epoch, "id": event.id},
    }


class EncodedFrame:
    """One event frame, encoded at most once per subprotocol however many
    monitors receive it; ``key`` is its entry id as :func:`id_key` orders it."""

    __slots__ = ("_encoded", "frame", "key")

    def __init__(self, frame: dict[str, Any], entry_id: str) -> None:
        self.frame = frame
        self.key = id_key(entry_id)
        self._encoded: dict[str, str | bytes] = {}

    def encoded(self, subprotocol: str) -> str | bytes:
        data = self._encoded.get(subprotocol)
        if data is None:
            data = self._encoded[subprotocol] = encode(self.frame, subprotocol)
        return data


class CompanyFeed:
    def __init__(self, store: Store, company: str) -> None:
        self.store = store
        self.company = company
        self.states: dict[str, AgentState] = {}
        self.cursor = ORIGIN
        self.epoch: str | None = None
        self.subscribers: set[Subscriber] = set()
        #: Monitors waiting for the feed to be ready.
        self.waiting = 0
        self.ready = asyncio.Event()

    @property
    def epoch_text(self) -> str:
        return self.epoch or ""

    def snapshot(self, segment: str | None) -> list[dict[str, Any]]:
        return [
            state.to_wire()
            for agent, state in sorted(self.states.items())
            if segment is None or segment in state.segments
        ]

    async def run(self) -> None:
        """Follow the log until cancelled; start over whenever its epoch changes."""
        delay = 0.1
        while True:
            try:
                await self._start()
                delay = 0.1
                await self._follow()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.store.observer.redis_error("feed")
                # Resume from the cursor: the stream still holds what we missed.
                log.warning("feed %s: store unavailable (%s); retrying", self.company, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _start(self) -> None:
        if self.ready.is_set():
            return
        self.epoch, self.cursor = await self.store.head(self.company)
        self.states = await self.store.states(self.company)
        while batch := await self.store.entries(self.company, self.cursor, count=BATCH):
            for event, state in batch:
                known = self.states.get(event.agent)
                if known is None or id_key(str(known.version or ORIGIN)) < id_key(str(event.id)):
                    self.states[event.agent] = state
            self.cursor = str(batch[-1][0].id)
        self.ready.set()

    async def _follow(self) -> None:
        while True:
            epoch, batch = await self.store.tail(
                self.company, self.cursor, block_ms=BLOCK_MS, count=BATCH
            )
            if epoch != self.epoch and self.epoch is not None:
                log.warning("feed %s: the log's epoch changed; starting over", self.company)
                self.ready.clear()
                for subscriber in list(self.subscribers):
                    subscriber.restart()
                return
            self.epoch = epoch
            for event, state in batch:
                self._publish(event, state)

    def _publish(self, event: Event, state: AgentState) -> None:
        self.states[event.agent] = state
        self.cursor = str(event.id)
        frames = EncodedFrame(event_frame(event, state, self.epoch_text), self.cursor)
        for subscriber in list(self.subscribers):
            if sees(subscriber.segment, event, state):
                subscriber.offer(frames)


class Feeds:
    """This instance's feeds: started by a company's first monitor, stopped
    with its last."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._feeds: dict[str, tuple[CompanyFeed, asyncio.Task[None]]] = {}

    async def join(self, company: str) -> CompanyFeed:
        """The company's feed, once ready; the caller then subscribes to it."""
        if company not in self._feeds:
            feed = CompanyFeed(self.store, company)
            task = asyncio.create_task(feed.run(), name=f"feed-{company}")
            self._feeds[company] = (feed, task)
        feed, _ = self._feeds[company]
        # Counted, not subscribed: the feed lives through the wait, but offers
        # nothing to a monitor that has not had its snapshot yet.
        feed.waiting += 1
        try:
            await feed.ready.wait()
        finally:
            feed.waiting -= 1
            if not feed.subscribers and not feed.waiting and not feed.ready.is_set():
                self._stop(company)
        return feed

    def leave(self, company: str, subscriber: Subscriber) -> None:
        entry = self._feeds.get(company)
        if entry is None:
            return
        feed, _ = entry
        feed.subscribers.discard(subscriber)
        if not feed.subscribers and not feed.waiting:
            self._stop(company)

    def _stop(self, company: str) -> None:
        _, task = self._feeds.pop(company)
        task.cancel()

    def subscribers(self) -> list[Subscriber]:
        return [subscriber for feed, _ in self._feeds.values() for subscriber in feed.subscribers]

    async def close(self) -> None:
        for _, task in self._feeds.values():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._feeds.clear()

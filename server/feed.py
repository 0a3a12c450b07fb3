"""Live monitors' source: this instance's view of a company's log (spec §5).

One :class:`CompanyFeed` per company with monitors on this instance keeps the
company's agents as of a position in its log (``cursor``) and fans each new
entry out to them, in log order, whoever wrote it.

It follows the log without a connection of its own. The write script
publishes every change on the company's log channel with the id of the entry
before it (one message per script run); the feed takes a change that follows
its cursor as it is, and reads the gap from the stream (``XRANGE`` after its
cursor) whenever one does not — pub/sub is lossy, the stream is the record.
:class:`Feeds` also checks every feed's position against the log now and then,
and after the pub/sub connection comes back, which catches a loss nothing else
would show (the last message of a quiet company). An instance following
thousands of companies holds one pub/sub connection, and a company with no
changes costs nothing but those checks.

A feed starts from a consistent view, without locking anything::

    cursor = the log's last id;  states = every agent's stored state
    then apply the entries after cursor whose id is newer than the state's version

Stored states may be ahead of ``cursor`` (changes landing meanwhile); the
version test skips what they already include. From then on the view is exactly
"as of ``cursor``", and a monitor that subscribes gets that view and every later
entry: the copy and the registration happen with no ``await`` between them, so
nothing can fall in between.

Each entry carries the agent's state after it (see ``server/keys.py``), so a
monitor that resumes from a cursor is served the missed range straight from the
stream, states included.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, Protocol

from presence_protocol.codec import encode
from server.state import AgentState, Event
from server.store import ORIGIN, REDIS_ERRORS, SEGMENT_EVENTS, Store, id_key, parse_log_message
from server.subscriptions import Subscriptions

__all__ = ["CompanyFeed", "Feeds", "Subscriber", "event_frame"]

log = logging.getLogger("presence.feed")

#: Entries read at once, when loading or reading a gap.
BATCH: Final = 1000
#: Seconds between two checks of every feed's position against its log: the
#: longest a lost message can delay a quiet company's monitors.
CHECK_SECONDS: Final = 5.0
#: Companies whose position one round trip reads. The replies of each are
#: parsed in one go, in the event loop: at 500 (2,000 companies in 4 round
#: trips) each held the loop for ~40 ms, and a burst of changes that met one
#: waited behind it; at 100 a reply takes a few milliseconds.
CHECK_BATCH: Final = 100


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
        #: Loading the view, or reading a gap: messages wait in ``_pending``.
        self._reading: asyncio.Task[None] | None = None
        self._pending: list[str] = []

    @property
    def epoch_text(self) -> str:
        return self.epoch or ""

    @property
    def busy(self) -> bool:
        """Whether it is loading or reading a gap (its position is moving)."""
        return self._reading is not None

    def snapshot(self, segment: str | None) -> list[dict[str, Any]]:
        return [
            state.to_wire()
            for agent, state in sorted(self.states.items())
            if segment is None or segment in state.segments
        ]

    def heard(self, channel: str, data: str) -> None:
        """A message of the company's log channel: the changes of one script run."""
        if self._reading is not None:
            self._pending.append(data)
            return
        for follows, entries in parse_log_message(data):
            if self.epoch is not None and follows == self.cursor:
                for event, state in entries:
                    self._publish(event, state)
            elif self.epoch is None or id_key(str(entries[-1][0].id)) > id_key(self.cursor):
                self.catch_up()  # missed something: the stream has it, and the rest
                return
            # else: already had it (read with a gap)

    def catch_up(self) -> None:
        """Bring the view up to the log's end (loading it first if need be), in
        the background; messages meanwhile wait."""
        if self._reading is None:
            self._reading = asyncio.create_task(self._read(), name=f"feed-{self.company}")

    async def settled(self) -> None:
        """Until no load or gap read is under way."""
        while (reading := self._reading) is not None:
            await asyncio.shield(reading)

    def stop(self) -> asyncio.Task[None] | None:
        """Stop reading; the cancelled read, if one was under way."""
        reading = self._reading
        if reading is not None:
            reading.cancel()
        return reading

    async def _read(self) -> None:
        delay = 0.1
        try:
            while True:
                try:
                    if self.ready.is_set():
                        await self._read_gap()
                    else:
                        await self._load()
                    break
                except REDIS_ERRORS as exc:
                    self.store.observer.redis_error("feed")
                    # From the cursor again: the stream still holds what we missed.
                    log.warning("feed %s: store unavailable (%s); retrying", self.company, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            self._reading = None
        pending, self._pending = self._pending, []
        for data in pending:
            self.heard("", data)

    async def _load(self) -> None:
        self.epoch, self.cursor = await self.store.head(self.company)
        self.states = await self.store.states(self.company)
        while batch := await self.store.entries(self.company, self.cursor, count=BATCH):
            for event, state in batch:
                known = self.states.get(event.agent)
                if known is None or id_key(str(known.version or ORIGIN)) < id_key(str(event.id)):
                    self.states[event.agent] = state
            self.cursor = str(batch[-1][0].id)
        self.ready.set()

    async def _read_gap(self) -> None:
        while True:
            epoch, batch = await self.store.read_after(self.company, self.cursor, count=BATCH)
            if epoch != self.epoch and self.epoch is not None:
                log.warning("feed %s: the log's epoch changed; starting over", self.company)
                self.ready.clear()
                for subscriber in list(self.subscribers):
                    subscriber.restart()
                await self._load()
                return
            self.epoch = epoch
            for event, state in batch:
                self._publish(event, state)
            if len(batch) < BATCH:
                return

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

    def __init__(self, store: Store, subscriptions: Subscriptions) -> None:
        self.store = store
        self.subscriptions = subscriptions
        self._feeds: dict[str, CompanyFeed] = {}
        subscriptions.on_resubscribed(self._check_soon)
        self._checks: set[asyncio.Task[None]] = set()

    async def join(self, company: str) -> CompanyFeed:
        """The company's feed, once ready; the caller then subscribes to it."""
        feed = self._feeds.get(company)
        if feed is None:
            feed = self._feeds[company] = CompanyFeed(self.store, company)
            # Listening before loading: what lands meanwhile waits in the feed.
            self.subscriptions.subscribe(self.store.keys.log(company), feed.heard)
            feed.catch_up()
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
        feed = self._feeds.get(company)
        if feed is None:
            return
        feed.subscribers.discard(subscriber)
        if not feed.subscribers and not feed.waiting:
            self._stop(company)

    def _stop(self, company: str) -> asyncio.Task[None] | None:
        feed = self._feeds.pop(company)
        self.subscriptions.unsubscribe(self.store.keys.log(company))
        return feed.stop()

    def subscribers(self) -> list[Subscriber]:
        return [subscriber for feed in self._feeds.values() for subscriber in feed.subscribers]

    async def check(self, every: float = CHECK_SECONDS) -> None:
        """Check every feed's position now and then, until cancelled."""
        while True:
            await asyncio.sleep(every)
            await self._check_once()

    async def check_positions(self) -> None:
        """Catch up every feed that is behind the log, or on another epoch."""
        feeds = [feed for feed in self._feeds.values() if feed.ready.is_set() and not feed.busy]
        for start in range(0, len(feeds), CHECK_BATCH):
            chunk = feeds[start : start + CHECK_BATCH]
            heads = await self.store.heads([feed.company for feed in chunk])
            for feed, (epoch, last) in zip(chunk, heads, strict=True):
                # A change heard since the read may have moved the cursor past
                # `last`: catching up then reads nothing, and costs one read.
                if epoch != feed.epoch or last != feed.cursor:
                    feed.catch_up()

    def _check_soon(self) -> None:
        task = asyncio.create_task(self._check_once())
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _check_once(self) -> None:
        try:
            await self.check_positions()
        except REDIS_ERRORS as exc:
            self.store.observer.redis_error("feed")
            log.warning("feeds: position check skipped (%s)", exc)

    async def close(self) -> None:
        stopped = [self._stop(company) for company in list(self._feeds)]
        for task in self._checks:
            task.cancel()
        # Awaited, so that nothing of a feed runs on past the app's lifespan.
        waited = [task for task in [*stopped, *self._checks] if task is not None]
        await asyncio.gather(*waited, return_exceptions=True)

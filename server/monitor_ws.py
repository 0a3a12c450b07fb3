"""``/v1/monitor``: a supervisor's live view of a company's presence (spec §5).

::

    → {"t": "hello", "token": …}                         (supervisor or admin)
    ← {"t": "welcome", "company": "acme", "role": "supervisor"}
    → {"t": "subscribe", "segment"?: "sales", "cursor"?: {"epoch", "id"}, "ref"?: 1}
    ← {"t": "subscribed", "ref": 1, "recovered": false, "agents": [state…], "cursor": {…}}
    ← {"t": "event", "event": {…}, "state": {…}, "cursor": {"epoch": …, "id": …}}  …

Every frame goes through one bounded queue, written by one task, so the
``subscribed`` frame, replayed events and live events leave in order. Cursor
ids only grow: anything at or before the last one queued is dropped. A monitor
whose queue passes ``monitor_queue`` is closed with 4100: it resumes from its
cursor, and nobody else waits for it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Final

from starlette.websockets import WebSocket

from presence_protocol import IDENTIFIER, CloseCode, ErrorCode, is_stream_id
from presence_protocol.codec import FrameError, decode, encode
from server.connection import Connection, ServerClosed, admitted, valid_ref
from server.errors import StoreUnavailable
from server.feed import CompanyFeed, EncodedFrame, event_frame, sees
from server.runtime import Runtime
from server.store import ORIGIN, id_key

__all__ = ["monitor_endpoint"]

MONITOR_ROLES: Final = frozenset({"supervisor", "admin"})
#: How long a subscribe waits for the company's feed to load before
#: answering store-unavailable.
FEED_TIMEOUT: Final = 10.0
#: At most this many frames per write (a few tens of KiB).
WRITE_BATCH: Final = 128


class MonitorConnection(Connection):
    def __init__(self, websocket: WebSocket, runtime: Runtime, subprotocol: str) -> None:
        super().__init__(websocket, runtime, subprotocol)
        self.company = ""
        self.segment: str | None = None
        self.subscribed = False
        self._queue: deque[str | bytes] = deque()
        self._wake = asyncio.Event()
        #: The id (as id_key) of the last event queued: nothing at or before it is sent again.
        self._last_key = id_key(ORIGIN)
        #: While the missed events of a resume are being read: live ones wait here.
        self._held: list[EncodedFrame] | None = None
        self._giving_up = False

    # What the feed calls (feed.Subscriber).

    def offer(self, frames: EncodedFrame) -> None:
        if frames.key <= self._last_key:
            return
        if self._held is not None:
            self._held.append(frames)
        else:
            self._queue_event(frames.key, frames.encoded(self.subprotocol))

    def restart(self) -> None:
        self._give_up(CloseCode.SERVICE_RESTART, "the log was recreated; subscribe again")

    async def drain(self) -> None:
        self._giving_up = True
        await self.close_or_drop(CloseCode.GOING_AWAY, "server-shutdown")

    @property
    def queued(self) -> int:
        return len(self._queue)

    # The queue.

    def _queue_event(self, key: tuple[int, int], data: str | bytes) -> None:
        if len(self._queue) >= self.settings.monitor_queue:
            self._give_up(CloseCode.TOO_SLOW, "too-slow")
            return
        self._last_key = key
        self._put(data)

    def _put(self, data: str | bytes) -> None:
        self._queue.append(data)
        self._wake.set()

    def _give_up(self, code: int, reason: str) -> None:
        if not self._giving_up:
            self._giving_up = True
            self._queue.clear()
            self.spawn(self.close_or_drop(code, reason))

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and not self._giving_up:
                # Whatever queued meanwhile (a feed batch) leaves in one write.
                count = min(len(self._queue), WRITE_BATCH)
                await self.send_many([self._queue.popleft() for _ in range(count)])

    # The connection's life.

    async def run(self) -> None:
        feeds = self.runtime.feeds
        connections = self.runtime.metrics.connections.labels("monitor")
        connections.inc()
        try:
            identity, _ = await self.read_hello(MONITOR_ROLES)
            self.company = identity.company
            await self.send({"t": "welcome", "company": identity.company, "role": identity.role})
            self.spawn(self._write())
            while not isinstance(frame := await self.receive(), dict):
                await self.handle(frame)
        except ServerClosed as closed:
            await self.close(closed.code, closed.reason)
        finally:
            connections.dec()
            feeds.leave(self.company, self)
            self.cancel_tasks()

    async def handle(self, payload: str | bytes) -> None:
        try:
            message = decode(payload)
        except FrameError as exc:
            await self.error(None, ErrorCode.BAD_REQUEST, str(exc))
            return
        ref = message.get("ref")
        if not valid_ref(ref):
            await self.error(None, ErrorCode.BAD_REQUEST, "ref must be a 64-bit integer")
        elif message["t"] == "ping":
            await self.send({"t": "pong", "ref": ref})
        elif message["t"] == "subscribe":
            await self.subscribe(message, ref)
        else:
            await self.error(ref, ErrorCode.BAD_REQUEST, f"unexpected frame {message['t']!r}")

    async def subscribe(self, message: dict[str, Any], ref: Any) -> None:
        segment, cursor = message.get("segment"), message.get("cursor")
        if self.subscribed:
            await self.error(ref, ErrorCode.BAD_REQUEST, "already subscribed")
            return
        if segment is not None and not (isinstance(segment, str) and IDENTIFIER.fullmatch(segment)):
            await self.error(ref, ErrorCode.BAD_REQUEST, "segment must be a segment id")
            return
        if cursor is not None and not (
            isinstance(cursor, dict)
            and isinstance(cursor.get("epoch"), str)
            and isinstance(cursor.get("id"), str)
            and is_stream_id(cursor["id"])
        ):
            await self.error(ref, ErrorCode.BAD_REQUEST, "cursor must be {epoch, id}")
            return
        try:
            async with asyncio.timeout(FEED_TIMEOUT):
                feed = await self.runtime.feeds.join(self.company)
            if cursor is not None and await self._resumable(feed, cursor):
                await self._resume(feed, ref, segment, cursor)
            else:
                self._start_from_snapshot(feed, ref, segment)
        except (TimeoutError, StoreUnavailable, OSError):
            await self.error(ref, ErrorCode.STORE_UNAVAILABLE, "the store is unavailable; retry")
            return
        self.subscribed = True

    async def _resumable(self, feed: CompanyFeed, cursor: dict[str, str]) -> bool:
        return (
            feed.epoch is not None
            and cursor["epoch"] == feed.epoch
            and await self.runtime.store.recoverable_after(self.company, cursor["id"])
        )

    def _start_from_snapshot(self, feed: CompanyFeed, ref: Any, segment: str | None) -> None:
        # No await from here to the registration: the snapshot and the live
        # events meet exactly at feed.cursor.
        self.segment = segment
        self._held = None
        self._last_key = id_key(feed.cursor)
        self._put(
            self._subscribed(ref, False, feed.snapshot(segment), feed.epoch_text, feed.cursor)
        )
        feed.subscribers.add(self)

    async def _resume(
        self, feed: CompanyFeed, ref: Any, segment: str | None, cursor: dict[str, str]
    ) -> None:
        self.segment = segment
        self._last_key = id_key(cursor["id"])
        self._held = []
        high = feed.cursor
        feed.subscribers.add(self)  # live events from here on wait in _held
        limit = self.settings.monitor_queue
        missed = await self.runtime.store.entries(
            self.company, cursor["id"], until=high, count=limit
        )
        if len(missed) >= limit:
            # Too much to replay through the queue: a fresh snapshot is cheaper.
            self._start_from_snapshot(feed, ref, segment)
            return
        self._put(self._subscribed(ref, True, None, feed.epoch_text, cursor["id"]))
        epoch = feed.epoch_text
        for event, state in missed:
            if sees(segment, event, state):
                self._queue_event(
                    id_key(str(event.id)),
                    encode(event_frame(event, state, epoch), self.subprotocol),
                )
        held, self._held = self._held, None
        for frames in held:
            self.offer(frames)

    def _subscribed(
        self,
        ref: Any,
        recovered: bool,
        agents: list[dict[str, Any]] | None,
        epoch: str,
        entry_id: str,
    ) -> str | bytes:
        return encode(
            {
                "t": "subscribed",
                "ref": ref,
                "recovered": recovered,
                "agents": agents,
                "cursor": {"epoch": epoch, "id": entry_id},
            },
            self.subprotocol,
        )


async def monitor_endpoint(websocket: WebSocket) -> None:
    async with admitted(websocket) as subprotocol:
        if subprotocol is not None:
            await MonitorConnection(websocket, websocket.app.state.runtime, subprotocol).run()

"""A supervisor's live monitor: ``/v1/monitor`` kept as a view that stays current.

::

    async with LiveMonitor("ws://presence:8000/v1/monitor", token, segment="sales") as monitor:
        async for change in monitor.events():
            match change:
                case Resnapshot(agents=agents):
                    redraw(agents)
                case MonitorEvent(state=state):
                    update(state)

The view is a fold in the shape of Phoenix's ``syncState``/``syncDiff``:
:func:`apply_snapshot` turns the snapshot of a ``subscribed`` frame into a dict
agent → state, and :func:`apply_event` folds each ``event`` frame into it. Both
are pure, so an application that keeps its own view can use them without a
:class:`LiveMonitor`.

A monitor is connected, reconnecting, or closed. Any close but a terminal one
(4500–4999) starts reconnecting, among them a lost socket, 4100 ``too-slow`` and
1001 (server shutdown): after each backoff delay it sends ``hello``, then
``subscribe`` with the last cursor seen, so that the server sends only the
events missed (``recovered: true``) or, when it can't, a new snapshot
(``recovered: false``), which replaces the view and reaches iterators as a
:class:`Resnapshot`. ``close()``, a terminal close code or a spent backoff close
it for good.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Self

from websockets.asyncio.client import ClientConnection

from client_sdk._session import OutOfSync, ReconnectingSession
from client_sdk._wire import TokenSource, send
from client_sdk.backoff import exponential_backoff
from client_sdk.errors import ProtocolError
from presence_protocol import IDENTIFIER, MSGPACK, is_stream_id, is_terminal, stream_id_key
from presence_protocol.codec import FrameError
from presence_protocol.codec import decode as decode_frame

__all__ = [
    "Cursor",
    "LiveMonitor",
    "MonitorEvent",
    "Resnapshot",
    "apply_event",
    "apply_snapshot",
]

logger = logging.getLogger("client_sdk")

#: A view of the agents: each agent's state (spec §2) under its id.
View = dict[str, dict[str, Any]]

#: The monitor sends one request per connection, ``subscribe``.
_SUBSCRIBE_REF: Final = 1


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a company's log (spec §5): the stream's epoch and an entry id.

    Store ``dataclasses.asdict(cursor)`` and build ``Cursor(**stored)`` to resume
    a monitor where an earlier one stopped.
    """

    epoch: str
    id: str

    def __post_init__(self) -> None:
        # Checked here so a bad stored cursor fails where it is built, not at a reconnect.
        if not isinstance(self.epoch, str) or not is_stream_id(self.id):
            raise ValueError(f"not a cursor: epoch {self.epoch!r}, id {self.id!r}")

    def follows(self, other: Cursor) -> bool:
        """Whether this cursor is a later entry of the same stream than ``other``.

        Entry ids compare as numbers ``(ms, seq)``: ``5-10`` follows ``5-9``, which
        string order gets wrong. Cursors of different epochs are positions in
        different streams: comparing them raises :exc:`ValueError`.
        """
        if self.epoch != other.epoch:
            raise ValueError(f"cursors of epochs {self.epoch!r} and {other.epoch!r} don't compare")
        return stream_id_key(self.id) > stream_id_key(other.id)

    def to_wire(self) -> dict[str, str]:
        """The cursor as frames carry it."""
        return {"epoch": self.epoch, "id": self.id}


@dataclass(frozen=True, slots=True)
class MonitorEvent:
    """One event of the log (spec §3), the agent's state after it, and its cursor."""

    event: dict[str, Any]
    state: dict[str, Any]
    cursor: Cursor


@dataclass(frozen=True, slots=True)
class Resnapshot:
    """The whole view, replaced: redraw from ``agents``.

    An iterator starts with one (once the monitor holds a snapshot), and gets
    another whenever a resubscribe could not recover the missed events and the
    server sent a new snapshot.
    """

    agents: Mapping[str, dict[str, Any]]
    #: The position of the snapshot: the events that follow come after it.
    cursor: Cursor


# The pure fold.


def apply_snapshot(agents: Iterable[dict[str, Any]]) -> View:
    """The view of a snapshot (a ``subscribed`` frame's ``agents``): each state under its
    agent's id. Raises :exc:`ValueError` for a state without an agent id."""
    return {_agent_of(state): state for state in agents}


def apply_event(
    view: Mapping[str, dict[str, Any]],
    change: MonitorEvent | Mapping[str, Any] | tuple[Any, dict[str, Any]],
    *,
    segment: str | None = None,
) -> View:
    """The view after one event, as a new dict; ``view`` is left as it was.

    ``change`` is a :class:`MonitorEvent`, an ``event`` frame, or an ``(event,
    state)`` pair: the state after the event replaces the agent's entry. With
    ``segment`` (the view of one segment's subscription), an agent whose new
    state is not in that segment leaves the view, or stays out of it. Raises
    :exc:`ValueError` for a change without a state or a state without an agent id.
    """
    if isinstance(change, MonitorEvent):
        state: object = change.state
    elif isinstance(change, tuple):
        state = change[1]
    else:
        state = change.get("state")
    if not isinstance(state, dict):
        raise ValueError("a change needs the agent's state after the event")
    agent = _agent_of(state)
    folded = dict(view)
    segments = state.get("segments")
    if segment is None or (isinstance(segments, list) and segment in segments):
        folded[agent] = state
    else:
        folded.pop(agent, None)
    return folded


def _agent_of(state: object) -> str:
    agent = state.get("agent") if isinstance(state, dict) else None
    if not isinstance(agent, str):
        raise ValueError(f"an agent state needs an agent id: {state!r}")
    return agent


# The monitor.


class LiveMonitor(ReconnectingSession[tuple[View | None, Cursor]]):
    """A company's (or one segment's) agents, kept current across reconnects.

    ``token`` (role supervisor or admin) is a string, or a callable (sync or
    async) called before each connect. ``cursor`` resumes from a position saved
    earlier: if the server can still recover from it, the first subscribe sends
    no snapshot, and :attr:`agents` then holds only the agents that change.
    ``backoff`` makes the delays before each reconnect attempt; a finite series
    gives up when spent.
    """

    _kind = "monitor"
    # No max_size: a snapshot grows with the company, and a cap would turn a large
    # one into a reconnect loop (1009) rather than protect against the server we watch.
    _max_size = None

    def __init__(
        self,
        url: str,
        token: TokenSource,
        *,
        segment: str | None = None,
        subprotocol: str = MSGPACK,
        backoff: Callable[[], Iterable[float]] = exponential_backoff,
        request_timeout: float = 10.0,
        cursor: Cursor | None = None,
    ) -> None:
        super().__init__(
            url, token, subprotocol=subprotocol, backoff=backoff, request_timeout=request_timeout
        )
        if segment is not None and not IDENTIFIER.fullmatch(segment):
            raise ValueError(f"{segment!r} is not a segment id")
        self._segment = segment

        self._view: View = {}
        #: The last cursor folded: the snapshot's, or the last event's.
        self._cursor = cursor
        #: The view came from a snapshot, so it holds every agent, not only those that changed.
        self._complete = False
        #: Weak: an iterator its user dropped stops queueing once collected.
        self._iterators: weakref.WeakSet[_Changes] = weakref.WeakSet()

    # Properties; connected, closed and close_code come with the session.

    @property
    def agents(self) -> Mapping[str, dict[str, Any]]:
        """The view: each agent's state (spec §2) under its id, as of :attr:`cursor`."""
        return self._view

    @property
    def cursor(self) -> Cursor | None:
        """The last cursor folded into the view; ``None`` before the first subscribe."""
        return self._cursor

    @property
    def segment(self) -> str | None:
        """The segment watched; ``None`` for the whole company."""
        return self._segment

    # Opening and closing.

    async def connect(self) -> None:
        """Open the connection, say ``hello``, subscribe; start reading and reconnecting.

        Raises :exc:`SessionClosed` on a terminal close before ``subscribed``
        (4501 for a bad token, 4503 for a role that may not monitor),
        :exc:`RequestError` when the server refuses the subscription,
        :exc:`ConnectionLost` on another close, and, as websockets does,
        :exc:`OSError`, :exc:`~websockets.exceptions.InvalidHandshake` or
        :exc:`TimeoutError` when the socket can't be opened. It doesn't retry:
        automatic reconnecting starts once connected.
        """
        await self._start()

    async def close(self) -> None:
        """Close the connection and stop for good; iterators end. Idempotent."""
        await self._stop()

    # Changes.

    def events(self) -> AsyncIterator[MonitorEvent | Resnapshot]:
        """An iterator of the view's changes from now on; it ends once the monitor
        is closed for good.

        First a :class:`Resnapshot` of the view as it is (unless it holds only
        what changed since a ``cursor`` given to the constructor), then a
        :class:`MonitorEvent` for each event folded into it, in log order and
        never twice, and a :class:`Resnapshot` whenever a resubscribe replaced
        it. A segment's monitor skips the events of agents that stay outside
        the segment; an agent that leaves it comes with a last event, whose
        state no longer lists the segment.

        Changes queue up from the call on, not from the first ``anext`` as with
        a generator, so none is missed while the caller awaits something else.
        Drop the iterator (break out of the loop) to stop queueing.
        """
        changes = _Changes(self._iterators)
        if self._closed:
            changes.end()
        elif self._complete and self._cursor is not None:
            changes.put(Resnapshot(self._view, self._cursor))
        return changes

    # The session's hooks.

    async def _handshake(self, ws: ClientConnection, token: str) -> tuple[View | None, Cursor]:
        """Say hello, subscribe: the snapshot (``None`` when recovered) and its cursor."""
        await send(ws, {"t": "hello", "token": token})
        welcome = await self._receive(ws, "welcome", ref=_SUBSCRIBE_REF)
        logger.info("monitoring %s as %s", welcome.get("company"), welcome.get("role"))
        subscribe: dict[str, Any] = {"t": "subscribe", "ref": _SUBSCRIBE_REF}
        if self._segment is not None:
            subscribe["segment"] = self._segment
        if self._cursor is not None:
            subscribe["cursor"] = self._cursor.to_wire()
        await send(ws, subscribe)
        subscribed = await self._receive(ws, "subscribed", ref=_SUBSCRIBE_REF)
        snapshot, cursor = _parse_subscribed(subscribed)
        if snapshot is None and self._cursor is None:
            raise ProtocolError("recovered, but no cursor was given to recover from")
        return snapshot, cursor

    def _adopt(self, subscribed: tuple[View | None, Cursor], *, reconnected: bool) -> None:
        snapshot, cursor = subscribed
        if snapshot is not None:
            self._view, self._cursor, self._complete = snapshot, cursor, True
            self._push(Resnapshot(snapshot, cursor))
        # Recovered: the missed events follow, each moving the cursor on from ours.
        # Keeping ours rather than the answer's stays right whichever the server sends.
        logger.info(
            "subscribed at %s (%s)", self._cursor, "recovered" if snapshot is None else "snapshot"
        )

    def _ended(self, code: int | None, reason: str) -> None:
        for changes in list(self._iterators):
            changes.end()

    @staticmethod
    def _should_reconnect(code: int | None) -> bool:
        # Unlike a console, a monitor never says bye, so a close 1000 from the server
        # answers nothing of ours: only a terminal code stops it.
        return code is None or not is_terminal(code)

    # Frames.

    def _dispatch(self, data: str | bytes) -> None:
        try:
            frame = decode_frame(data)
        except FrameError as exc:
            # It may have been an event: going on would leave a gap.
            raise OutOfSync(f"undecodable frame: {exc}") from None
        kind = frame["t"]
        if kind == "event":
            self._fold(frame)
        elif kind == "error":
            logger.warning("server error %s: %s", frame.get("code"), frame.get("message"))
        else:
            logger.debug("ignored a %r frame", kind)

    def _fold(self, frame: dict[str, Any]) -> None:
        try:
            change = _parse_event(frame)
        except ValueError as exc:
            raise OutOfSync(f"malformed event frame: {exc}") from None
        last = self._cursor
        if last is None:
            raise OutOfSync("an event before any cursor")
        if change.cursor.epoch != last.epoch:
            # The stream was recreated under us; resubscribing brings a new snapshot.
            raise OutOfSync(f"an event of epoch {change.cursor.epoch!r}, not {last.epoch!r}")
        if not change.cursor.follows(last):
            logger.debug("dropped event %s: already folded (cursor %s)", change.cursor.id, last.id)
            return
        before, self._view = self._view, apply_event(self._view, change, segment=self._segment)
        self._cursor = change.cursor
        # A segment's monitor also gets the connection events of agents outside it
        # (that is how one joins or leaves it): of no interest while it stays out.
        agent = change.state["agent"]
        if agent in before or agent in self._view:
            self._push(change)

    def _push(self, change: MonitorEvent | Resnapshot) -> None:
        for changes in list(self._iterators):
            changes.put(change)


class _Changes:
    """What :meth:`LiveMonitor.events` returns: it queues changes until it ends."""

    def __init__(self, registry: weakref.WeakSet[_Changes]) -> None:
        self._queue: asyncio.Queue[MonitorEvent | Resnapshot | None] = asyncio.Queue()
        self._registry = registry
        registry.add(self)

    def put(self, change: MonitorEvent | Resnapshot) -> None:
        self._queue.put_nowait(change)

    def end(self) -> None:
        self._registry.discard(self)
        self._queue.put_nowait(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> MonitorEvent | Resnapshot:
        change = await self._queue.get()
        if change is None:
            self._queue.put_nowait(None)  # ended: so is every later anext
            raise StopAsyncIteration
        return change


def _parse_subscribed(frame: dict[str, Any]) -> tuple[View | None, Cursor]:
    try:
        cursor = _cursor(frame.get("cursor"))
        if frame.get("recovered") is True:
            return None, cursor
        agents = frame.get("agents")
        if frame.get("recovered") is not False or not isinstance(agents, list):
            raise ValueError("needs recovered: true, or recovered: false and the agents")
        return apply_snapshot(agents), cursor
    except ValueError as exc:
        raise ProtocolError(f"malformed subscribed frame: {exc}") from None


def _parse_event(frame: dict[str, Any]) -> MonitorEvent:
    event, state = frame.get("event"), frame.get("state")
    if not isinstance(event, dict) or not isinstance(state, dict):
        raise ValueError("needs an event and a state")
    _agent_of(state)
    return MonitorEvent(event=event, state=state, cursor=_cursor(frame.get("cursor")))


def _cursor(value: object) -> Cursor:
    epoch, entry = (
        (value.get("epoch"), value.get("id")) if isinstance(value, dict) else (None, None)
    )
    if not isinstance(epoch, str) or not isinstance(entry, str):
        raise ValueError(f"not a cursor: {value!r}")
    return Cursor(epoch=epoch, id=entry)

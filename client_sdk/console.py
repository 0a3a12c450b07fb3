"""An agent's console: one WebSocket to ``/v1/agent`` that survives network trouble.

::

    async with AgentConsole("ws://presence:8000/v1/agent", token) as console:
        ack = await console.set_status("available")
        async for state, event in console.states():
            ...

A console is connected, reconnecting, or closed. A drop that
:func:`~client_sdk.backoff.should_reconnect` allows starts reconnecting: after
each backoff delay, ``hello`` with the session it already holds, so that the
server resumes it (``reconnected`` in the log) rather than starting another.
Requests made meanwhile wait for the connection, within ``request_timeout``;
requests in flight when it dropped raise :exc:`~client_sdk.errors.ConnectionLost`.
``close()``, a terminal close code or a spent backoff close it for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from client_sdk._session import ReconnectingSession
from client_sdk._wire import TokenSource, request_error, send
from client_sdk.backoff import exponential_backoff
from client_sdk.errors import ConnectionLost, ProtocolError, SessionClosed
from presence_protocol import MSGPACK, STATUS_VALUE, ErrorCode
from presence_protocol.codec import FrameError
from presence_protocol.codec import decode as decode_frame

__all__ = ["Ack", "AgentConsole", "Welcome"]

logger = logging.getLogger("client_sdk")

#: A state push: the agent's state, and the event that made it (``None`` after a reconnect).
StateChange = tuple[dict[str, Any], dict[str, Any] | None]
StateCallback = Callable[[dict[str, Any], dict[str, Any] | None], object]


@dataclass(frozen=True, slots=True)
class Welcome:
    """The server's answer to ``hello``; the fields mirror the ``welcome`` frame."""

    session: str
    #: False when the server started a new session (the first connect, or one that expired).
    resumed: bool
    state: dict[str, Any]
    #: The company's custom statuses, as ``{"value": …, "label": …}`` maps.
    statuses: list[dict[str, Any]]
    #: ``{"interval": seconds, "timeout": seconds}`` of the server's WebSocket pings.
    heartbeat: dict[str, float]


@dataclass(frozen=True, slots=True)
class Ack:
    """The server's answer to a change: its event (``None`` if nothing changed) and the state."""

    event: dict[str, Any] | None
    state: dict[str, Any]


class AgentConsole(ReconnectingSession[Welcome]):
    """An agent's presence session, kept alive across reconnects.

    ``token`` is a string, or a callable (sync or async) called before each
    connect, so a long-lived console can present a fresh token. ``status`` is
    asked for only when the server starts a new session. ``backoff`` makes the
    delays before each reconnect attempt; a finite series gives up when spent.
    """

    _kind = "console"

    def __init__(
        self,
        url: str,
        token: TokenSource,
        *,
        status: str | None = None,
        subprotocol: str = MSGPACK,
        backoff: Callable[[], Iterable[float]] = exponential_backoff,
        request_timeout: float = 10.0,
        client: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            url, token, subprotocol=subprotocol, backoff=backoff, request_timeout=request_timeout
        )
        if status is not None and not STATUS_VALUE.fullmatch(status):
            raise ValueError(f"{status!r} is not a status value")
        self._status = status
        self._client = client

        self._session: str | None = None
        self._state: dict[str, Any] | None = None
        #: Set while connected, and for good once closed, so that requests wake to either.
        self._ready = asyncio.Event()
        self._refs = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._callbacks: list[StateCallback] = []
        self._queues: set[asyncio.Queue[StateChange | None]] = set()

    # Properties; connected, closed and close_code come with the session.

    @property
    def session(self) -> str | None:
        """The session id, kept across reconnects; ``None`` before the first welcome."""
        return self._session

    @property
    def state(self) -> dict[str, Any] | None:
        """The agent's last known state, from the latest welcome, ack or push."""
        return self._state

    # Opening and closing.

    async def connect(self) -> Welcome:
        """Open the connection and the session; start reading and reconnecting.

        Raises :exc:`SessionClosed` on a terminal close during ``hello`` (4501 for
        a bad token), :exc:`ConnectionLost` on another close, and, as websockets
        does, :exc:`OSError`, :exc:`~websockets.exceptions.InvalidHandshake` or
        :exc:`TimeoutError` when the socket can't be opened. It doesn't retry:
        automatic reconnecting starts once connected.
        """
        if self._closing:
            # Unlike a request made once closed, connect() doesn't repeat why it closed.
            raise SessionClosed(self._close_code, "the console was closed")
        return await self._start()

    async def close(self) -> None:
        """Say ``bye`` (the session ends), wait for the server's close, stop for good.

        Closing while reconnecting leaves no one to say ``bye`` to; the server
        ends the session once ``session_ttl`` passes without a resume.
        """
        await self._stop()

    # Requests.

    async def set_status(self, value: str) -> Ack:
        """Declare the agent's status: ``available`` or one of the company's."""
        return _ack(await self._request({"t": "status", "value": value}))

    async def report(self, value: str) -> Ack:
        """Report an activity: ``in-call``, ``end-call``, ``dismiss``, ``meeting``,
        ``meeting-end``."""
        return _ack(await self._request({"t": "activity", "value": value}))

    async def ping(self) -> float:
        """Seconds until the server's ``pong``, including any wait for a reconnect."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._request({"t": "ping"})
        return loop.time() - started

    # State pushes.

    def on_state(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(state, event)`` whenever someone else changes the agent.

        After a reconnect it is called with the welcome's state and ``None``,
        since what changed while offline is unknown. It runs in the reader task,
        so it must not block. Returns a function that unregisters it.
        """
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    async def states(self) -> AsyncIterator[StateChange]:
        """Yield ``(state, event)`` as :meth:`on_state` would; end once closed.

        Pushes queue up while the loop body runs, so none is missed; stop iterating
        (break, or aclose()) to stop queueing.
        """
        if self._closed:
            return
        queue: asyncio.Queue[StateChange | None] = asyncio.Queue()
        self._queues.add(queue)
        try:
            while (change := await queue.get()) is not None:
                yield change
        finally:
            self._queues.discard(queue)

    # The session's hooks.

    async def _handshake(self, ws: ClientConnection, token: str) -> Welcome:
        hello: dict[str, Any] = {"t": "hello", "token": token}
        if self._session is not None:
            hello["session"] = self._session
        elif self._status is not None:
            hello["status"] = self._status
        if self._client is not None:
            hello["client"] = self._client
        await send(ws, hello)
        return _parse_welcome(await self._receive(ws, "welcome"))

    def _adopt(self, welcome: Welcome, *, reconnected: bool) -> None:
        if self._session is not None and not welcome.resumed:
            logger.warning(
                "session %s was not resumed; new session %s", self._session, welcome.session
            )
        self._session = welcome.session
        self._state = welcome.state
        self._ready.set()
        logger.info("connected: session %s (resumed: %s)", welcome.session, welcome.resumed)
        if reconnected:
            self._push(welcome.state, None)

    def _lost(self, code: int | None) -> None:
        self._ready.clear()
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(ConnectionLost(f"connection lost (close code {code})"))

    def _ended(self, code: int | None, reason: str) -> None:
        self._ready.set()
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(SessionClosed(code, reason))
        for queue in self._queues:
            queue.put_nowait(None)

    async def _hang_up(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await send(ws, {"t": "bye"})
        try:
            async with asyncio.timeout(self._request_timeout):
                await ws.wait_closed()
        except TimeoutError:
            logger.warning("no close from the server after bye; closing the connection")
            await ws.close()

    # Frames.

    async def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` and return its answer, within ``request_timeout``.

        ``store-unavailable`` means the server's store is down and the change was
        not applied: it is sent again, after a backoff delay, until it goes through
        or the time is up — the console's code sees a slow answer, not an error.
        """
        async with asyncio.timeout(self._request_timeout):
            for delay in itertools.chain(self._backoff(), itertools.repeat(None)):
                frame = await self._ask(message)
                if frame["t"] != "error" or frame.get("code") != ErrorCode.STORE_UNAVAILABLE:
                    break
                if delay is None:
                    break  # the backoff gave up: so does the request
                await asyncio.sleep(delay)
        if frame["t"] == "error":
            raise request_error(frame.get("code"), frame.get("message"))
        return frame

    async def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        ws = await self._connection()
        ref = next(self._refs)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ref] = answer
        try:
            # A socket closing under us is the reader's to notice; it fails the answer.
            with contextlib.suppress(ConnectionClosed):
                await send(ws, {**message, "ref": ref})
            return await answer
        finally:
            del self._pending[ref]

    async def _connection(self) -> ClientConnection:
        """The open connection, once there is one; SessionClosed once closed."""
        while True:
            if self._closing:
                raise SessionClosed(
                    self._close_code, self._close_reason or "the console was closed"
                )
            ws = self._ws
            if ws is not None:
                if ws.state is State.OPEN and not ws.transport.is_closing():
                    return ws
                # Going down: a frame now would be dropped unseen. The reader is about
                # to notice, and sets _ready again once reconnected or closed for good.
                self._ready.clear()
            await self._ready.wait()

    def _dispatch(self, data: str | bytes) -> None:
        try:
            frame = decode_frame(data)
        except FrameError as exc:
            logger.warning("ignored a frame from the server: %s", exc)
            return
        kind, ref = frame["t"], frame.get("ref")
        if kind == "state":
            state, event = frame.get("state"), frame.get("event")
            if isinstance(state, dict):
                self._push(state, event if isinstance(event, dict) else None)
            else:
                logger.warning("ignored a state push without a state")
        elif kind in ("ack", "error", "pong"):
            if isinstance(frame.get("state"), dict):
                self._state = frame["state"]
            answer = self._pending.get(ref) if isinstance(ref, int) else None
            if answer is not None and not answer.done():
                answer.set_result(frame)
            elif kind == "error":
                logger.warning("server error %s: %s", frame.get("code"), frame.get("message"))
        else:
            logger.debug("ignored a %r frame", kind)

    def _push(self, state: dict[str, Any], event: dict[str, Any] | None) -> None:
        self._state = state
        for callback in list(self._callbacks):
            try:
                callback(state, event)
            except Exception:
                # One faulty subscriber must not stop the reader, and with it the session.
                logger.exception("a state callback failed")
        for queue in self._queues:
            queue.put_nowait((state, event))


def _parse_welcome(frame: dict[str, Any]) -> Welcome:
    session, state = frame.get("session"), frame.get("state")
    if not isinstance(session, str) or not isinstance(state, dict):
        raise ProtocolError("a welcome needs a session and a state")
    return Welcome(
        session=session,
        resumed=frame.get("resumed") is True,
        state=state,
        statuses=list(frame.get("statuses") or []),
        heartbeat=dict(frame.get("heartbeat") or {}),
    )


def _ack(frame: dict[str, Any]) -> Ack:
    state, event = frame.get("state"), frame.get("event")
    if not isinstance(state, dict) or not (event is None or isinstance(event, dict)):
        raise ProtocolError(f"an ack needs a state and an event or null: {frame!r}")
    return Ack(event=event, state=state)

"""What :class:`~client_sdk.console.AgentConsole` and :class:`~client_sdk.monitor.LiveMonitor`
share: one WebSocket, reopened after each drop that the policy allows, until closed for good.

Private. A session is connected, reconnecting, or closed. :class:`ReconnectingSession`
runs that life; a subclass fills in what differs, in four hooks:

- ``_handshake(ws, token)``: say ``hello`` on a new socket and wait until it is of
  use (a console's ``welcome``; a monitor's ``welcome``, then ``subscribed``);
- ``_adopt(opened, reconnected=…)``: take in what the handshake brought;
- ``_dispatch(data)``: one frame from the server, while connected;
- ``_ended(code, reason)``: closed for good: fail what waits, end iterators;

and, where the defaults don't fit, ``_lost(code)`` (a drop: the console fails the
requests in flight), ``_hang_up(ws)`` (``close()``: the console says ``bye``) and
``_should_reconnect(code)`` (the close codes that reopen).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, Self, TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from client_sdk._wire import ClosesOnExit, TokenSource, request_error, resolve_token
from client_sdk.backoff import should_reconnect
from client_sdk.errors import ConnectionLost, ProtocolError, SessionClosed
from presence_protocol import SUBPROTOCOLS
from presence_protocol.codec import FrameError
from presence_protocol.codec import decode as decode_frame

__all__ = ["OutOfSync", "ReconnectingSession"]

logger = logging.getLogger("client_sdk")

#: What a handshake brings: a console's Welcome, a monitor's snapshot and cursor.
Opened = TypeVar("Opened")


class OutOfSync(Exception):
    """Raised by ``_dispatch`` when no frame past this one can be trusted: the session
    drops the connection and opens another, as after a lost socket."""


class ReconnectingSession(ClosesOnExit, Generic[Opened]):
    """One WebSocket to ``url``, kept open across drops: the life a console and a
    monitor share. See the module's docstring for the hooks."""

    #: What the user holds, in messages and the reader task's name: "console", "monitor".
    _kind: ClassVar[str]
    #: The largest frame accepted from the server: websockets' default, 1 MiB.
    _max_size: ClassVar[int | None] = 2**20

    def __init__(
        self,
        url: str,
        token: TokenSource,
        *,
        subprotocol: str,
        backoff: Callable[[], Iterable[float]],
        request_timeout: float,
    ) -> None:
        if subprotocol not in SUBPROTOCOLS:
            raise ValueError(f"subprotocol must be one of {SUBPROTOCOLS}")
        if request_timeout <= 0:
            raise ValueError("request_timeout must be positive")
        self._url = url
        self._token = token
        self._subprotocol = Subprotocol(subprotocol)
        self._backoff = backoff
        self._request_timeout = request_timeout

        #: The connection past its handshake; None while connecting, reconnecting and once closed.
        self._ws: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        #: close() was called or the end came: no more reconnects (nor a console's requests).
        self._closing = False
        #: Ended for good; set once, with the close code, by _finish().
        self._closed = False
        self._close_code: int | None = None
        self._close_reason = ""

    # Properties.

    @property
    def connected(self) -> bool:
        """Whether a connection is open right now, past its handshake: welcomed (a
        console's), subscribed (a monitor's)."""
        return self._ws is not None

    @property
    def closed(self) -> bool:
        """Whether it ended for good; it won't reconnect."""
        return self._closed

    @property
    def close_code(self) -> int | None:
        """The close code that ended it, once :attr:`closed`."""
        return self._close_code

    # Opening and closing: each subclass's connect() and close() say what they do.

    async def connect(self) -> object:
        raise NotImplementedError  # in each subclass: it calls _start()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def _start(self) -> Opened:
        """Open the connection, then start the reader: what connect() does."""
        if self._closing:
            raise SessionClosed(
                self._close_code, self._close_reason or f"the {self._kind} was closed"
            )
        if self._runner is not None:
            raise RuntimeError(f"the {self._kind} is already connected")
        ws, opened = await self._open()
        self._connected(ws, opened, reconnected=False)
        self._runner = asyncio.create_task(self._run(ws), name=f"presence-{self._kind}")
        return opened

    async def _stop(self) -> None:
        """Hang up and stop for good, once the reader has: what close() does. Idempotent."""
        if not self._closing:
            self._closing = True
            if self._ws is not None:
                await self._hang_up(self._ws)
            elif self._runner is not None:
                # Reconnecting: there is no one to hang up on.
                self._finish(None, "closed while reconnecting")
                self._runner.cancel()
        if self._runner is not None:
            # wait() rather than await: a cancelled runner is the expected outcome here.
            await asyncio.wait([self._runner])
        self._finish(None, "closed by the client")

    # The connection's life.

    async def _open(self) -> tuple[ClientConnection, Opened]:
        token = await resolve_token(self._token)
        async with asyncio.timeout(self._request_timeout):
            ws = await ws_connect(
                self._url,
                subprotocols=[self._subprotocol],
                open_timeout=None,
                max_size=self._max_size,
            )
            try:
                return ws, await self._handshake(ws, token)
            except BaseException:
                # Without a handshake the socket is of no use: drop it, no close handshake.
                ws.transport.abort()
                raise

    def _connected(self, ws: ClientConnection, opened: Opened, *, reconnected: bool) -> None:
        self._ws = ws
        self._adopt(opened, reconnected=reconnected)

    async def _run(self, ws: ClientConnection) -> None:
        """Read until the connection ends, then reconnect or finish."""
        code: int | None = None
        reason = "the reader stopped"
        try:
            while True:
                code, reason = await self._read(ws)
                if self._closing or not self._should_reconnect(code):
                    return
                self._lose(code, reason)
                code, reason = None, "stopped while reconnecting"
                ws, opened = await self._reconnect()
                self._connected(ws, opened, reconnected=True)
        except SessionClosed as exc:
            code, reason = exc.code, exc.reason
        finally:
            self._finish(code, reason)

    async def _read(self, ws: ClientConnection) -> tuple[int | None, str]:
        """Dispatch frames until the connection ends; return its close code and reason,
        which decide what's next."""
        try:
            while True:
                self._dispatch(await ws.recv())
        except ConnectionClosed:
            return ws.close_code, ws.close_reason or ""
        except OutOfSync as exc:
            # No frame past this one can be trusted: drop the connection, open another.
            ws.transport.abort()
            return None, str(exc)

    def _lose(self, code: int | None, reason: str) -> None:
        logger.warning("connection lost (close code %s: %s); reconnecting", code, reason)
        self._ws = None
        self._lost(code)

    async def _reconnect(self) -> tuple[ClientConnection, Opened]:
        """Open a new connection after each backoff delay; raise SessionClosed to stop."""
        for attempt, delay in enumerate(self._backoff(), start=1):
            await asyncio.sleep(delay)
            try:
                return await self._open()
            except SessionClosed:
                raise
            except Exception as exc:  # any other failure is transient: try again later
                logger.warning("reconnect attempt %d failed: %r", attempt, exc)
        raise SessionClosed(None, "gave up reconnecting")

    def _finish(self, code: int | None, reason: str) -> None:
        if self._closed:
            return
        self._closing = self._closed = True
        self._close_code, self._close_reason = code, reason
        self._ws = None
        self._ended(code, reason)
        logger.info("%s closed (close code %s): %s", self._kind, code, reason)

    async def _receive(
        self, ws: ClientConnection, kind: str, *, ref: int | None = None
    ) -> dict[str, Any]:
        """Wait, during the handshake, for the frame of type ``kind``. An ``error`` for
        ``ref`` raises RequestError; a close, SessionClosed or ConnectionLost."""
        try:
            while True:
                try:
                    frame = decode_frame(await ws.recv())
                except FrameError as exc:
                    raise ProtocolError(f"undecodable answer awaiting {kind}: {exc}") from None
                if frame["t"] == kind:
                    return frame
                if frame["t"] == "error":
                    if ref is not None and frame.get("ref") == ref:
                        raise request_error(frame.get("code"), frame.get("message"))
                    # The server explains a refused hello, then closes: the close code decides.
                    logger.info("hello refused: %s: %s", frame.get("code"), frame.get("message"))
                else:
                    logger.debug("ignored a %r frame awaiting %s", frame["t"], kind)
        except ConnectionClosed:
            code, reason = ws.close_code, ws.close_reason or ""
            if self._should_reconnect(code):
                raise ConnectionLost(f"closed awaiting {kind} ({code}): {reason}") from None
            raise SessionClosed(code, reason) from None

    # The hooks.

    async def _handshake(self, ws: ClientConnection, token: str) -> Opened:
        """Say ``hello`` with ``token`` on a new socket; return once it is of use."""
        raise NotImplementedError

    def _adopt(self, opened: Opened, *, reconnected: bool) -> None:
        """Take in what the handshake brought; the connection is already :attr:`_ws`."""
        raise NotImplementedError

    def _dispatch(self, data: str | bytes) -> None:
        """Handle one frame from the server; raise OutOfSync to reopen the connection."""
        raise NotImplementedError

    def _ended(self, code: int | None, reason: str) -> None:
        """Closed for good, with ``code`` and ``reason``: fail what waits, end iterators."""
        raise NotImplementedError

    def _lost(self, code: int | None) -> None:
        """The connection dropped with ``code``; reconnecting starts next."""

    async def _hang_up(self, ws: ClientConnection) -> None:
        """End the connection for close(); the reader then finishes."""
        await ws.close()

    @staticmethod
    def _should_reconnect(code: int | None) -> bool:
        """Whether a connection that ended with ``code`` is reopened."""
        return should_reconnect(code)

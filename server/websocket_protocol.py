"""uvicorn's websockets-sansio protocol, telling the app *why* a socket ended,
and reading a socket on while a few of its messages wait for the app.

Through plain ASGI a heartbeat timeout and a vanished peer look alike (both
arrive as ``websocket.disconnect`` with code 1005), but the log must say
``heartbeat-timeout`` or ``transport-closed``. This subclass reports the first
as 1011 with the reason ``keepalive ping timeout`` and the second as 1006
(RFC 6455's "abnormal closure"), before uvicorn's own report; the app reads
only the first ``websocket.disconnect`` it gets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final, cast

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request

from presence_protocol import CloseCode

__all__ = [
    "ABORT_EXTENSION",
    "HEARTBEAT_TIMEOUT",
    "SEND_MANY_EXTENSION",
    "PresenceWebSocketProtocol",
]

HEARTBEAT_TIMEOUT: Final = (CloseCode.INTERNAL_ERROR, "keepalive ping timeout")


#: Messages of a socket that may wait for the app before the socket stops being read.
RECEIVE_BACKLOG: Final = 16

#: The scope extension through which the app may drop a socket at once.
ABORT_EXTENSION: Final = "presence.abort"
#: The scope extension through which the app may send several frames in one write.
SEND_MANY_EXTENSION: Final = "presence.send_many"


class _BackloggedReading:
    """A socket's transport whose reading pauses only for a backlog.

    uvicorn pauses a socket's reading after each message it queues and resumes
    it as the app takes the message: two epoll changes, and a ``KeyError``
    raised and caught in ``selectors``, per message received. In a burst of
    2,000 status changes that was a sixth of the server's CPU (py-spy). Here
    uvicorn's pause does nothing; the protocol pauses once
    :data:`RECEIVE_BACKLOG` messages wait (:meth:`hold`), and uvicorn's resume,
    when the app has taken them all, resumes.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.paused = False

    def pause_reading(self) -> None:
        """uvicorn's, after each message: see :meth:`hold`."""

    def hold(self) -> None:
        if not self.paused:
            self.paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self.paused:
            self.paused = False
            self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


#: uvicorn logs a line at INFO for every WebSocket it accepts (thousands a minute when an
#: instance restarts). Its protocol's lines go here instead, a child of uvicorn's logger that
#: :func:`server.app.uvicorn_config` sets to WARNING unless the log level is debug; its errors
#: still show.
CONNECTIONS_LOG: Final = logging.getLogger("uvicorn.error.websockets")


class PresenceWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Both log each socket at INFO: uvicorn ("[accepted]") and websockets ("connection open").
        self.logger = self.conn.logger = CONNECTIONS_LOG

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = cast(asyncio.Transport, _BackloggedReading(self.transport))

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.queue.qsize() >= RECEIVE_BACKLOG:
            cast(_BackloggedReading, self.transport).hold()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # A peer that stopped reading can't be sent a close frame (its window is
        # full): the app needs a way to drop it, which ASGI doesn't offer.
        if self.handshake_initiated and hasattr(self, "scope"):
            self.scope["extensions"][ABORT_EXTENSION] = {"abort": self.transport.abort}
            self.scope["extensions"][SEND_MANY_EXTENSION] = {"send": self.send_many}

    async def send_many(self, payloads: Sequence[str | bytes]) -> None:
        """Frame ``payloads`` (text for ``str``) and write them with one syscall.

        ASGI writes each message on its own, and a monitor's fan-out is most of
        the server's frames: one ``send()`` per frame was a quarter of its CPU
        under churn. Flow control and closing behave as for ``websocket.send``.
        """
        await self.writable.wait()
        if self.disconnected or self.close_sent:
            raise ClientDisconnected()
        try:
            for payload in payloads:
                if isinstance(payload, str):
                    self.conn.send_text(payload.encode())
                else:
                    self.conn.send_binary(payload)
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))

    def keepalive_timeout(self) -> None:
        if not (self.close_sent or self.transport.is_closing()):
            code, reason = HEARTBEAT_TIMEOUT
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        super().keepalive_timeout()

    def connection_lost(self, exc: Exception | None) -> None:
        no_close_frame = self.conn.close_rcvd is None and not self.close_sent
        if self.handshake_complete and not self.disconnected and no_close_frame:
            self.queue.put_nowait({"type": "websocket.disconnect", "code": CloseCode.ABNORMAL})
        super().connection_lost(exc)

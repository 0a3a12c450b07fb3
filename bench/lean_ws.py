"""A lean WebSocket client for the load generator: just what the bench needs.

The bench shares the 2 cores with the server it measures, so every
microsecond its clients spend per frame is taken from the server. The
``websockets`` client costs tens of microseconds per received frame; this one
is an ``asyncio.Protocol`` that parses the server's frames in place and hands
each payload to a callback. It speaks only the bench's part of RFC 6455: the
handshake, masked binary frames out, unfragmented frames in, answering pings.
No deflate (the server never offers it). Scenarios that stand for users use
``websockets`` or the SDK instead.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

__all__ = ["LeanSocket", "lean_connect"]

OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA


def _frame(opcode: int, payload: bytes) -> bytes:
    """A masked, final client frame (RFC 6455 §5.2)."""
    size = len(payload)
    mask = os.urandom(4)
    # XOR as one big integer: the bench's payloads are small, and this is C speed.
    keystream = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(
        size, "big"
    )
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return header + mask + masked


class LeanSocket(asyncio.Protocol):
    def __init__(self, on_message: Callable[[bytes], None]) -> None:
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(_frame(OP_BINARY, payload))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(OP_CLOSE, struct.pack("!H", 1000)))
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self.handshake.done():
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self._buffer[: self._buffer.find(b"\r\n")])
            del self._buffer[: end + 4]
            if b" 101 " not in status:
                self.handshake.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self.handshake.set_result(None)
        self._parse()

    def _parse(self) -> None:
        buffer = self._buffer
        offset = 0
        while len(buffer) - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            size = second & 0x7F
            start = offset + 2
            if size == 126:
                if len(buffer) - offset < 4:
                    break
                (size,) = struct.unpack_from("!H", buffer, start)
                start += 2
            elif size == 127:
                if len(buffer) - offset < 10:
                    break
                (size,) = struct.unpack_from("!Q", buffer, start)
                start += 8
            if len(buffer) < start + size:
                break
            payload = bytes(buffer[start : start + size])
            offset = start + size
            opcode = first & 0x0F
            if opcode == OP_PING:
                assert self.transport is not None
                self.transport.write(_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.close()
            elif opcode != OP_PONG:
                self.on_message(payload)
        del buffer[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)


async def lean_connect(
    url: str, subprotocol: str, on_message: Callable[[bytes], None]
) -> LeanSocket:
    """Open ``url`` (ws://host:port/path) offering ``subprotocol``."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    _, socket = await loop.create_connection(lambda: LeanSocket(on_message), host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
    )
    assert socket.transport is not None
    socket.transport.write(request.encode())
    await socket.handshake
    return socket

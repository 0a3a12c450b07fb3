"""What both WebSockets share (spec §4–§5): the subprotocol, ``hello`` within
``hello_timeout`` with a token of the right role, one map per frame, size
limits, and closing without tripping over a socket that is already gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any, Final

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from presence_protocol import MSGPACK, SUBPROTOCOLS, CloseCode, ErrorCode
from presence_protocol.codec import FrameError, decode
from presence_protocol.codec import encode as encode_frame
from server.auth import Identity, TokenError
from server.runtime import Runtime
from server.websocket_protocol import ABORT_EXTENSION, SEND_MANY_EXTENSION

__all__ = [
    "REF_MAX",
    "REF_MIN",
    "Connection",
    "ServerClosed",
    "accept",
    "admitted",
    "valid_ref",
]

#: A ref is echoed back, so it must fit both codecs' integers.
#: Seconds a console refused for want of room is asked to wait before trying again.
RETRY_AFTER: Final = 5
REF_MIN: Final = -(2**63)
REF_MAX: Final = 2**64 - 1


def valid_ref(ref: object) -> bool:
    return ref is None or (
        isinstance(ref, int) and not isinstance(ref, bool) and REF_MIN <= ref <= REF_MAX
    )


class ServerClosed(Exception):
    """Raised inside a connection when the server ends it; ``record`` is the
    disconnect reason to log, if the connection holds a session."""

    def __init__(self, code: int, reason: str, record: str | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.record = code, reason, record


@contextlib.asynccontextmanager
async def admitted(websocket: WebSocket) -> AsyncIterator[str | None]:
    """The socket accepted (as :func:`accept`), and counted among the instance's
    sockets until the block ends; ``None`` when refused. Past ``max_connections``,
    refused at the handshake with HTTP 503 and ``Retry-After``: the sessions held
    are untouched, and the console backs off and tries again, here or elsewhere."""
    runtime: Runtime = websocket.app.state.runtime
    limit = runtime.settings.max_connections
    if limit and runtime.sockets >= limit:
        refusal = {
            "code": ErrorCode.STORE_UNAVAILABLE.value,
            "message": f"this instance holds its maximum of {limit} sockets; try again later",
        }
        headers = {"Retry-After": str(RETRY_AFTER)}
        await websocket.send_denial_response(JSONResponse({"error": refusal}, 503, headers))
        yield None
        return
    # Counted from here, not once accepted: a storm of handshakes awaits in accept().
    runtime.sockets += 1
    try:
        yield await accept(websocket)
    finally:
        runtime.sockets -= 1


async def accept(websocket: WebSocket) -> str | None:
    """Accept the socket with the first subprotocol offered that the server speaks
    (msgpack when none is); ``None`` when its Origin is not allowed or the
    instance is draining (an HTTP 403 either way)."""
    runtime: Runtime = websocket.app.state.runtime
    allowed = runtime.settings.allowed_origins
    if allowed and websocket.headers.get("origin") not in allowed:
        await websocket.close(CloseCode.FORBIDDEN)  # before accept: an HTTP 403
        return None
    if runtime.draining:
        # Shutting down: the client retries, and the balancer sends it elsewhere.
        await websocket.close(CloseCode.GOING_AWAY)
        return None
    offered = websocket.scope.get("subprotocols") or []
    chosen = next((name for name in offered if name in SUBPROTOCOLS), None)
    await websocket.accept(subprotocol=chosen)
    return chosen or MSGPACK


class Connection:
    """One accepted socket of either kind."""

    def __init__(self, websocket: WebSocket, runtime: Runtime, subprotocol: str) -> None:
        self.websocket = websocket
        self.runtime = runtime
        self.settings = runtime.settings
        self.subprotocol = subprotocol
        self._tasks: set[asyncio.Task[None]] = set()
        self._send_many = websocket.scope["extensions"][SEND_MANY_EXTENSION]["send"]

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` beside the connection; cancelled when it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    # Sending.

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_encoded(encode_frame(message, self.subprotocol))

    async def send_encoded(self, data: str | bytes) -> None:
        await self.send_many((data,))

    async def send_many(self, frames: Sequence[str | bytes]) -> None:
        """Send ``frames`` (text for ``str``) in one write, straight to the
        protocol: Starlette's per-message wrappers cost as much as the framing."""
        # A socket closing under us is not an error: its end is handled by receive.
        with contextlib.suppress(OSError):
            await self._send_many(frames)

    async def close(self, code: int, reason: str = "") -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await self.websocket.close(code, reason[:120])

    async def close_or_drop(self, code: int, reason: str) -> None:
        """Close; drop the socket if even the close frame can't leave within
        ``close_grace`` (a peer that stopped reading)."""
        try:
            async with asyncio.timeout(self.runtime.settings.close_grace):
                await self.close(code, reason)
        except TimeoutError:
            extension = self.websocket.scope.get("extensions", {}).get(ABORT_EXTENSION)
            if extension is not None:
                extension["abort"]()

    async def error(self, ref: Any, code: ErrorCode, message: str) -> None:
        await self.send({"t": "error", "ref": ref, "code": code.value, "message": message})

    # Receiving.

    async def receive(self) -> dict[str, Any] | str | bytes:
        """The next frame's payload, or the ``websocket.disconnect`` message."""
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            return dict(message)
        payload: str | bytes | None = message.get("text")
        if payload is None:
            payload = message.get("bytes") or b""
        if len(payload) > self.settings.max_message_size:
            raise ServerClosed(CloseCode.MESSAGE_TOO_BIG, "frame too large", "protocol-error")
        return payload

    def check_hello(self, hello: dict[str, Any]) -> None:
        """Check (and normalise) the fields of ``hello`` other than the token;
        raise :class:`ServerClosed` for a malformed one."""

    async def read_hello(self, roles: frozenset[str]) -> tuple[Identity, dict[str, Any]]:
        """The ``hello`` frame and the identity of its token, which must have one of
        ``roles``; raises :class:`ServerClosed` with the spec's close code otherwise."""
        try:
            async with asyncio.timeout(self.settings.hello_timeout):
                first = await self.receive()
        except TimeoutError:
            raise ServerClosed(CloseCode.PROTOCOL_ERROR, "no hello in time") from None
        if isinstance(first, dict):
            raise ServerClosed(CloseCode.NORMAL, "gone before hello")
        try:
            hello = decode(first)
        except FrameError as exc:
            raise ServerClosed(CloseCode.PROTOCOL_ERROR, str(exc)) from None
        if hello["t"] != "hello":
            raise ServerClosed(CloseCode.PROTOCOL_ERROR, "the first frame must be hello")
        self.check_hello(hello)
        scheme, _, header_token = self.websocket.headers.get("authorization", "").partition(" ")
        token = hello.get("token") or (header_token.strip() if scheme.lower() == "bearer" else None)
        try:
            identity = await self.runtime.tokens.verify_fresh(token)
        except TokenError as exc:
            raise ServerClosed(CloseCode.UNAUTHORIZED, str(exc)) from None
        if identity.role not in roles:
            allowed = ", ".join(sorted(roles))
            raise ServerClosed(CloseCode.FORBIDDEN, f"this socket is for {allowed} tokens")
        return identity, hello

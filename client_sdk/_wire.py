"""Helpers the SDK's clients share: tokens, sending a frame, reading an error,
``async with``.

Private: the public names live in :mod:`client_sdk.console`,
:mod:`client_sdk.monitor` and :mod:`client_sdk.acd`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from websockets.asyncio.client import ClientConnection

from client_sdk.errors import RequestError
from presence_protocol import MSGPACK, ErrorCode
from presence_protocol.codec import encode as encode_frame

__all__ = ["ClosesOnExit", "TokenSource", "request_error", "resolve_token", "send"]

#: A token, or a callable (sync or async) that returns a fresh one each time it is called.
TokenSource = str | Callable[[], str | Awaitable[str]]


async def resolve_token(token: TokenSource) -> str:
    """The token to present now: ``token`` itself, or what calling it returns."""
    if isinstance(token, str):
        return token
    fresh = token()
    return await fresh if inspect.isawaitable(fresh) else fresh


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    """Send one frame in the connection's subprotocol."""
    # Without a subprotocol agreed, the spec's server speaks msgpack.
    await ws.send(encode_frame(message, ws.subprotocol or MSGPACK))


def request_error(code: object, message: object, status: int | None = None) -> RequestError:
    """A :exc:`RequestError` from the ``code`` and ``message`` of an error frame or body."""
    text = str(message or "")
    try:
        known = ErrorCode(str(code))
    except ValueError:
        # A newer server's code: keep it readable in the message.
        known, text = ErrorCode.INTERNAL, f"{code}: {text}"
    return RequestError(known, text, status)


class ClosesOnExit:
    """``async with client``: the client itself, closed on the way out."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

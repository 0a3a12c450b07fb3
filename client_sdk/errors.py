"""Exceptions of the client SDK.

::

    PresenceError
    ├── RequestError      the server refused a request; ``code`` is the spec's error code
    ├── ConnectionLost    the connection dropped while a request was in flight
    ├── SessionClosed     the console (or monitor) is closed for good: a terminal close
    │                     code, or ours
    └── ProtocolError     the server sent something the contract does not allow

A request can also raise the built-in :exc:`TimeoutError` when no answer came
within ``request_timeout``; like :exc:`ConnectionLost`, whether it applied is
then unknown.
"""

from __future__ import annotations

from presence_protocol import ErrorCode

__all__ = ["ConnectionLost", "PresenceError", "ProtocolError", "RequestError", "SessionClosed"]


class PresenceError(Exception):
    """The root of the SDK's exceptions."""


class RequestError(PresenceError):
    """Raised when the server refuses a request: an ``error`` frame on a WebSocket,
    an HTTP error status from the HTTP API.

    Nothing was recorded. ``code`` says why: ``invalid-transition`` and
    ``unknown-status`` won't succeed as they are, while ``rate-limited`` and
    ``store-unavailable`` may on a later try. ``status`` is the HTTP status
    (404, 409, …) of an HTTP answer, ``None`` for a WebSocket one.
    """

    def __init__(self, code: ErrorCode, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class ConnectionLost(PresenceError):
    """Raised when the connection dropped before a request's answer arrived.

    The server may or may not have applied the request. The console reconnects
    on its own, and ``console.state`` tells what the server holds once it has;
    for an HTTP request (:class:`~client_sdk.acd.AcdClient`), reading the agent
    tells.
    """


class SessionClosed(PresenceError):
    """Raised when the session is over for this console (or live monitor), which
    won't reconnect: a terminal close code ended it (during ``connect()`` too), or
    it was closed.

    ``code`` is that close code (1000 after ``close()``, 4501 for a bad token,
    4503 for a monitor's wrong role, 4509 when replaced, 4510 when kicked, …) or
    ``None`` when no close frame ended it: it was closed while reconnecting, or
    gave up.
    """

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(
            f"session closed ({code}): {reason}" if reason else f"session closed ({code})"
        )
        self.code = code
        self.reason = reason


class ProtocolError(PresenceError):
    """Raised when the server answers with a frame the contract doesn't allow,
    such as a ``welcome`` without a session or an ``ack`` without a state."""

"""Client SDK of the agent-presence server: an agent's console over ``/v1/agent``.

See ``docs/sdk.md``; the wire format is :mod:`client_sdk.protocol`.
"""

from client_sdk.backoff import exponential_backoff, should_reconnect
from client_sdk.console import Ack, AgentConsole, Welcome
from client_sdk.errors import (
    ConnectionLost,
    PresenceError,
    ProtocolError,
    RequestError,
    SessionClosed,
)
from client_sdk.protocol import CloseCode, ErrorCode

__all__ = [
    "Ack",
    "AgentConsole",
    "CloseCode",
    "ConnectionLost",
    "ErrorCode",
    "PresenceError",
    "ProtocolError",
    "RequestError",
    "SessionClosed",
    "Welcome",
    "exponential_backoff",
    "should_reconnect",
]

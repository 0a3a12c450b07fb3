"""Client SDK of the agent-presence server: an agent's console over ``/v1/agent``,
a supervisor's live monitor over ``/v1/monitor``, the ACD's HTTP API.

See ``docs/sdk.md``; the wire format is :mod:`client_sdk.protocol`.
"""

from client_sdk.acd import AcdClient, Change
from client_sdk.backoff import exponential_backoff, should_reconnect
from client_sdk.console import Ack, AgentConsole, Welcome
from client_sdk.errors import (
    ConnectionLost,
    PresenceError,
    ProtocolError,
    RequestError,
    SessionClosed,
)
from client_sdk.monitor import (
    Cursor,
    LiveMonitor,
    MonitorEvent,
    Resnapshot,
    apply_event,
    apply_snapshot,
)
from presence_protocol import CloseCode, ErrorCode

__all__ = [
    "AcdClient",
    "Ack",
    "AgentConsole",
    "Change",
    "CloseCode",
    "ConnectionLost",
    "Cursor",
    "ErrorCode",
    "LiveMonitor",
    "MonitorEvent",
    "PresenceError",
    "ProtocolError",
    "RequestError",
    "Resnapshot",
    "SessionClosed",
    "Welcome",
    "apply_event",
    "apply_snapshot",
    "exponential_backoff",
    "should_reconnect",
]

"""The words of the presence protocol, version 1 (spec §1–§5), and nothing else.

Values, close codes, error codes and identifier patterns, as plain constants.
This module imports only the standard library and nothing of the project, so
that every side can share it without pulling in the other: the server, the
Python SDK, and the browser client's copy (kept equal to this one by a test).
"""

from __future__ import annotations

import enum
import re
from typing import Final

__all__ = [
    "ACD_VALUES",
    "ACTIVITY_VALUES",
    "DEFAULT_STATUSES",
    "IDENTIFIER",
    "JSON",
    "MSGPACK",
    "STATUS_VALUE",
    "STREAM_ID",
    "SUBPROTOCOLS",
    "SYSTEM_VALUES",
    "CloseCode",
    "ErrorCode",
    "is_stream_id",
    "is_terminal",
    "stream_id_key",
]

MSGPACK: Final = "presence.v1.msgpack"
JSON: Final = "presence.v1.json"
#: In the server's order of preference when a client offers none it knows.
SUBPROTOCOLS: Final = (MSGPACK, JSON)

#: Company, agent and segment identifiers.
IDENTIFIER: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: A status value: lowercase words joined by single hyphens, at most 32 characters.
STATUS_VALUE: Final = re.compile(r"(?=.{1,32}\Z)[a-z0-9]+(?:-[a-z0-9]+)*")
#: A Redis stream entry id, the ``id`` of events and cursors: milliseconds, a
#: hyphen, a sequence number. ASCII digits only; :func:`is_stream_id` also
#: checks that each part fits the 64 bits Redis allows.
STREAM_ID: Final = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_STREAM_ID_PART_MAX: Final = 2**64 - 1

#: The seed's custom statuses, every company's until it configures its own.
DEFAULT_STATUSES: Final = ("busy", "break", "bath", "meal", "gathering", "training")
#: Activities a console or a call platform reports.
ACTIVITY_VALUES: Final = frozenset({"in-call", "end-call", "dismiss", "meeting", "meeting-end"})
#: What the ACD does to an agent.
ACD_VALUES: Final = frozenset({"occupying", "releasing", "timeout"})
#: Values the system owns: never a company's custom status.
SYSTEM_VALUES: Final = (
    frozenset({"connected", "reconnected", "disconnected", "available"})
    | ACTIVITY_VALUES
    | ACD_VALUES
)


def stream_id_key(entry_id: str) -> tuple[int, int]:
    """A stream id as Redis orders it, (milliseconds, sequence): never compare
    ids as strings. Raises ``ValueError`` for anything but a stream id."""
    match = STREAM_ID.fullmatch(entry_id)
    if match is None:
        raise ValueError(f"not a stream id: {entry_id!r}")
    ms, seq = int(match[1]), int(match[2])
    if ms > _STREAM_ID_PART_MAX or seq > _STREAM_ID_PART_MAX:
        raise ValueError(f"stream id out of range: {entry_id!r}")
    return ms, seq


def is_stream_id(value: object) -> bool:
    """Whether ``value`` is a stream id Redis would accept."""
    if not isinstance(value, str):
        return False
    try:
        stream_id_key(value)
    except ValueError:
        return False
    return True


class CloseCode(enum.IntEnum):
    """WebSocket close codes, the RFC's and the protocol's.

    1000–1999 are RFC 6455's; 4000–4499 ask the client to reconnect on its own;
    4500–4999 are terminal: reconnecting would only fail again or undo what a
    person decided (a replacement, a kick).
    """

    NORMAL = 1000
    #: The server is going away (draining): reconnect, to another instance.
    GOING_AWAY = 1001
    #: Never sent: what a socket that ended without a close frame reports.
    ABNORMAL = 1006
    MESSAGE_TOO_BIG = 1009
    #: A server error; also how a missed heartbeat ends a socket.
    INTERNAL_ERROR = 1011
    #: A monitor's log was recreated: subscribe again for a new snapshot.
    SERVICE_RESTART = 1012
    #: The store is unavailable, or the session changed hands mid-hello: retry.
    TRY_AGAIN_LATER = 1013
    TOO_SLOW = 4100
    RATE_LIMITED = 4129
    PROTOCOL_ERROR = 4500
    UNAUTHORIZED = 4501
    FORBIDDEN = 4503
    REPLACED = 4509
    KICKED = 4510
    TOKEN_EXPIRED = 4511


def is_terminal(code: int) -> bool:
    """Whether a close code forbids reconnecting automatically."""
    return 4500 <= code <= 4999


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` frame and of an HTTP error body."""

    BAD_REQUEST = "bad-request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not-found"
    UNKNOWN_STATUS = "unknown-status"
    INVALID_TRANSITION = "invalid-transition"
    ACD_MODE = "acd-mode"
    NO_AGENT_AVAILABLE = "no-agent-available"
    RATE_LIMITED = "rate-limited"
    STORE_UNAVAILABLE = "store-unavailable"
    INTERNAL = "internal"

"""The presence wire protocol, version 1: framing, codes and vocabulary.

Shared by the server and the SDK so the two cannot drift. Every frame is one
map with a ``t`` (type) key, carried as a binary msgpack frame under the
``presence.v1.msgpack`` subprotocol or as a JSON text frame under
``presence.v1.json``::

    {"t": "status", "value": "break", "ref": 7}

:func:`decode` accepts exactly one map whose ``t`` is a string and raises
:class:`FrameError` for anything else; checking the fields of each message type
is the receiver's job, since it alone knows what it expects.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any, Final

import msgpack

__all__ = [
    "ACD_VALUES",
    "ACTIVITY_VALUES",
    "DEFAULT_STATUSES",
    "IDENTIFIER",
    "JSON",
    "MSGPACK",
    "STATUS_VALUE",
    "SUBPROTOCOLS",
    "SYSTEM_VALUES",
    "CloseCode",
    "ErrorCode",
    "FrameError",
    "decode",
    "encode",
    "is_terminal",
]

MSGPACK: Final = "presence.v1.msgpack"
JSON: Final = "presence.v1.json"
#: In the server's order of preference when a client offers none it knows.
SUBPROTOCOLS: Final = (MSGPACK, JSON)

#: Company, agent and segment identifiers.
IDENTIFIER: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: A status value: lowercase words joined by single hyphens, at most 32 characters.
STATUS_VALUE: Final = re.compile(r"(?=.{1,32}\Z)[a-z0-9]+(?:-[a-z0-9]+)*")

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


class CloseCode(enum.IntEnum):
    """WebSocket close codes.

    1000–1999 are the RFC's; 4000–4499 ask the client to reconnect on its own;
    4500–4999 are terminal: reconnecting would only fail again or undo what a
    person decided (a replacement, a kick).
    """

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
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


class FrameError(ValueError):
    """Raised when a frame is not one map with a string ``t``."""


def encode(message: dict[str, Any], subprotocol: str) -> bytes | str:
    """Serialize one message: bytes for msgpack, str for JSON."""
    if subprotocol == JSON:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    packed: bytes = msgpack.packb(message, use_bin_type=True)
    return packed


def decode(data: bytes | str) -> dict[str, Any]:
    """Parse one frame of either subprotocol into a message map.

    The frame's own kind decides the codec (text is JSON, binary is msgpack), so
    a peer that mixes them up still gets a precise error rather than garbage.
    """
    try:
        if isinstance(data, str):
            message = json.loads(data)
        else:
            # strict_map_key keeps keys to str/bytes; raw=False rejects invalid UTF-8.
            message = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise FrameError(f"undecodable frame: {exc}") from None
    except RecursionError:
        raise FrameError("undecodable frame: nested too deeply") from None
    if not isinstance(message, dict):
        raise FrameError(f"a frame must be a map, not {type(message).__name__}")
    kind = message.get("t")
    if not isinstance(kind, str):
        raise FrameError("a frame needs a string 't'")
    return message

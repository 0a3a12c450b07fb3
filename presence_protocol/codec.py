"""Frames of the presence protocol: one map with a ``t`` (type) key, carried as
a binary msgpack frame under ``presence.v1.msgpack`` or as a JSON text frame
under ``presence.v1.json``::

    {"t": "status", "value": "break", "ref": 7}

:func:`decode` accepts exactly one map whose ``t`` is a string and raises
:class:`FrameError` for anything else; checking the fields of each message type
is the receiver's job, since it alone knows what it expects.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

from presence_protocol.vocabulary import JSON

__all__ = ["FrameError", "decode", "encode"]


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

"""The presence wire protocol as the SDK publishes it: framing, codes and vocabulary.

The definitions live in :mod:`presence_protocol`, which the server shares; this
module keeps them where the SDK's users have always imported them from.
"""

from presence_protocol import (
    ACD_VALUES,
    ACTIVITY_VALUES,
    DEFAULT_STATUSES,
    IDENTIFIER,
    JSON,
    MSGPACK,
    STATUS_VALUE,
    STREAM_ID,
    SUBPROTOCOLS,
    SYSTEM_VALUES,
    CloseCode,
    ErrorCode,
    is_stream_id,
    is_terminal,
    stream_id_key,
)
from presence_protocol.codec import FrameError, decode, encode

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
    "FrameError",
    "decode",
    "encode",
    "is_stream_id",
    "is_terminal",
    "stream_id_key",
]

"""The presence wire protocol, version 1, shared by the server and the client SDK
so the two cannot drift. It imports nothing of the project.

``import presence_protocol`` gives the vocabulary (values, codes, patterns:
:mod:`presence_protocol.vocabulary`, standard library only);
:mod:`presence_protocol.codec` turns messages into frames and back (msgpack or
JSON).
"""

from presence_protocol.vocabulary import (
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

"""How the server logs: one handler on the root logger, for ours and uvicorn's alike.

At the default level an instance says what an operator needs (start, readiness,
drains, Redis trouble, instances found dead), never a line per socket or request
(see :data:`server.websocket_protocol.CONNECTIONS_LOG` and uvicorn's access log,
both kept for ``debug``). ``--log-format json`` writes one JSON object per line,
for a log pipeline to parse rather than a person to read::

    {"ts": "2026-12-02T10:41:07.123Z", "level": "info", "logger": "presence",
     "message": "instance 3f9c… ready (key prefix 'presence:')"}

``exception`` is added when the record carries one.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Final

__all__ = ["FORMATS", "JsonLines", "configure"]

#: What ``--log-format`` accepts.
FORMATS: Final = ("text", "json")
_TEXT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """A record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        entry = {
            "ts": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, log_format: str = "text") -> None:
    """Send every logger's records, uvicorn's included, to stderr in ``log_format``.

    uvicorn is then run with ``log_config=None`` (server/app.py), so that it adds no
    handlers of its own and its lines look like ours.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())

"""A lean HTTP/1.1 keep-alive client for the ACD load: one request at a time
per connection, JSON bodies, ``Content-Length`` responses (what Starlette
sends). ``httpx`` spent more CPU per request than the server did to answer it,
so the claims measured the bench, not the server; user-facing scenarios still
use ``httpx`` (through the SDK's ``AcdClient``) or ``websockets``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

__all__ = ["LeanHttp"]


class LeanHttp:
    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> LeanHttp:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """The status and the decoded JSON body."""
        assert self._reader is not None and self._writer is not None
        payload = json.dumps(body).encode()
        self._writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self._head}"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            ).encode()
            + payload
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.decode("latin-1").partition("\r\n")
        length = 0
        for line in header_block.split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        data = await self._reader.readexactly(length)
        return int(status_line.split(" ", 2)[1]), json.loads(data) if data else None

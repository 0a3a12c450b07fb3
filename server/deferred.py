"""Disconnections that happen while Redis is unreachable.

Consoles keep dropping during a Redis outage; their ``disconnected`` events
can't be written then. They wait here, in the order they happened, and are
written when Redis answers again, each with the time it really happened
(``ts``; its stream id says when it was written). The connection stays listed
as held by this instance until then: if this instance dies first, another one
records ``server-lost`` for it instead, so the session is never left online.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from server.errors import Refused, StaleConnection, StoreUnavailable
from server.instances import Liveness
from server.store import Store

__all__ = ["Deferred", "Disconnection"]

log = logging.getLogger("presence.deferred")


@dataclass(frozen=True, slots=True)
class Disconnection:
    company: str
    agent: str
    conn: str
    reason: str
    ts: int
    end_session: bool
    session_ttl: int


class Deferred:
    def __init__(self, store: Store, liveness: Liveness) -> None:
        self.store = store
        self.liveness = liveness
        self._queue: deque[Disconnection] = deque()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, disconnection: Disconnection) -> None:
        log.warning(
            "store unavailable: %s of %s/%s will be recorded when it is back",
            disconnection.reason,
            disconnection.company,
            disconnection.agent,
        )
        self._queue.append(disconnection)
        self._wake.set()

    async def run(self) -> None:
        """Write what waits, oldest first, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if not await self._write(self._queue[0]):
                    await asyncio.sleep(1.0)  # still down; the store retried already
                    continue
                self._queue.popleft()

    async def _write(self, item: Disconnection) -> bool:
        try:
            await self.store.disconnect(
                item.company,
                item.agent,
                reason=item.reason,
                now=item.ts,
                conn=item.conn,
                end_session=item.end_session,
                session_ttl=item.session_ttl,
            )
        except (StaleConnection, Refused):
            pass  # the session moved on meanwhile (resumed elsewhere, cleaned up)
        except StoreUnavailable:
            return False
        await self.liveness.release(item.conn)
        return True

"""The server's Redis client: redis-py's, with writes that can be cancelled.

redis-py bounds each write with ``asyncio.wait_for`` when the connection has a
``socket_timeout``. On Python 3.11 ``wait_for`` swallows a cancellation that
arrives just as the wrapped write completes (CPython gh-86296, fixed in 3.12
by rebuilding ``wait_for`` on ``asyncio.timeout``). A write completes at once,
so under load most cancellations of a task talking to Redis were lost: tasks
went on as if never cancelled, and shutdown waited on them forever (found by
the churn bench; with redis-py's own connections, 22 of the 30 cancelled loops
in ``tests/test_redis_client.py`` kept running). Our
connections write under ``asyncio.timeout`` instead, which hands the
cancellation on. A write that would block is rare anyway (commands are small);
the read timeout is what notices a stalled Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["CancellableWrites", "connect"]


class CancellableWrites(AbstractConnection):
    """Mixed into the connection class the URL calls for (TCP, TLS or Unix)."""

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        if not self.is_connected:
            await self.connect()  # type: ignore[no-untyped-call]
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        if isinstance(command, str):
            command = command.encode()
        chunks = [command] if isinstance(command, bytes) else command
        writer = self._writer
        assert writer is not None  # connected above
        try:
            async with asyncio.timeout(self.socket_timeout):
                writer.writelines(chunks)
                await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            # Part of the command may have left: the connection can't be reused.
            await self.disconnect(nowait=True)
            raise


def connect(url: str, **options: Any) -> aioredis.Redis:
    """A client for ``url`` on a bounded pool that makes callers wait for a
    free connection (``max_connections``, waiting up to ``timeout``);
    ``options`` go to the pool."""
    base = parse_url(url).get("connection_class", aioredis.Connection)
    connection_class = type(f"Cancellable{base.__name__}", (CancellableWrites, base), {})
    pool = aioredis.BlockingConnectionPool.from_url(
        url, connection_class=connection_class, **options
    )
    return aioredis.Redis.from_pool(pool)

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

``redis+sentinel://`` URLs (:func:`parse_sentinel_url`) give a client of the
master a set of sentinels names (:class:`BlockingSentinelConnectionPool`): each
connection asks them as it opens, and the pool asks them again while in use and
leaves a master they no longer name. A connection still on a demoted master gets
``READONLY``, which redis-py turns into a ``ConnectionError`` and a
disconnection: the next one opens on the new master. The sentinels' own
connections write under ``asyncio.timeout`` too: a master connection asks them
in its caller's task.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlencode

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, SSLConnection, parse_url
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "BlockingSentinelConnectionPool",
    "CancellableWrites",
    "SentinelURL",
    "cancellable",
    "connect",
    "parse_sentinel_url",
]

#: The schemes of a Sentinel URL, and the plain scheme each one's master takes.
SENTINEL_SCHEMES: Final = {"redis+sentinel": "redis", "rediss+sentinel": "rediss"}
#: A sentinel's port when the URL names none.
SENTINEL_PORT: Final = 26379
#: Seconds a sentinel has to accept a connection, and to answer. A sentinel
#: answers from memory; one that takes longer is skipped for the next (every new
#: connection to the master asks them, in turn, until one names it).
SENTINEL_TIMEOUT: Final = 1.0
#: Seconds between two questions to the sentinels, while connections are taken:
#: how late at most the pool learns of a failover that left the old master up.
FOLLOW_EVERY: Final = 0.25
#: Query options that are for the sentinels, not the master.
SENTINEL_OPTIONS: Final = ("sentinel_username", "sentinel_password")


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


def cancellable(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """``base`` with :class:`CancellableWrites` mixed in."""
    return type(f"Cancellable{base.__name__}", (CancellableWrites, base), {})


def connect(url: str, **options: Any) -> aioredis.Redis:
    """A client for ``url`` on a bounded pool that makes callers wait for a
    free connection (``max_connections``, waiting up to ``timeout``);
    ``options`` go to the pool. ``url`` is ``redis://``, ``rediss://``,
    ``unix://``, or a Sentinel URL (:func:`parse_sentinel_url`)."""
    if url.partition("://")[0].lower() in SENTINEL_SCHEMES:
        return _connect_sentinel(parse_sentinel_url(url), **options)
    base = parse_url(url).get("connection_class", aioredis.Connection)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, connection_class=cancellable(base), **options
    )
    return aioredis.Redis.from_pool(pool)


# Sentinel.


@dataclass(frozen=True, slots=True)
class SentinelURL:
    """What a Sentinel URL says: where the sentinels are, the master's name, and
    the options of the master's connections and of the sentinels'."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    #: For the master's connections, as ``parse_url`` gives them (db,
    #: credentials, the URL's query options).
    options: dict[str, Any]
    #: For the sentinels' connections: their credentials, the ``ssl_*`` options.
    sentinel_options: dict[str, Any]
    #: TLS to the master and to the sentinels (``rediss+sentinel://``).
    tls: bool = False


_URL = re.compile(r"(?P<netloc>[^/?#]*)(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?:#.*)?", re.S)
_HOST = re.compile(
    r"\[(?P<v6>[^\]]+)\](?::(?P<v6port>\d+))?|(?P<host>[^:\[\]]+)(?::(?P<port>\d+))?"
)


def parse_sentinel_url(url: str) -> SentinelURL:
    """``redis+sentinel://[user:password@]host[:port][,host[:port]...]/<master>[/<db>][?options]``.

    The convention of Celery/kombu's ``sentinel://`` and of redis-sentinel-url,
    redis-vl and Prefect (redis-py has no URL for Sentinel): every sentinel of the
    group (port 26379 unless given; IPv6 as ``[::1]:26379``), then the name the
    sentinels monitor the master under (``sentinel monitor <name> ...``), then
    the database. ``user:password`` (percent-encoded) and the query options
    (redis-py's URL options: ``?ssl_ca_certs=...``) are the master's; the
    sentinels' own credentials, if they have any, are the ``sentinel_username``
    and ``sentinel_password`` options. ``rediss+sentinel://`` speaks TLS to the
    master and to the sentinels, with the same ``ssl_*`` options."""
    scheme, _, remainder = url.partition("://")
    plain = SENTINEL_SCHEMES.get(scheme.lower())
    parts = _URL.fullmatch(remainder)
    if plain is None or parts is None:
        raise ValueError(f"not a Sentinel URL: {_redacted(url)}")
    userinfo, at, hosts = parts["netloc"].rpartition("@")
    sentinels = []
    for address in hosts.split(","):
        host = _HOST.fullmatch(address.strip())
        if host is None:
            raise ValueError(f"Sentinel URL: bad sentinel address {address!r}")
        port = host["v6port"] or host["port"]
        sentinels.append((host["v6"] or host["host"], int(port) if port else SENTINEL_PORT))
    path = [unquote(segment) for segment in parts["path"].split("/")[1:]]
    if len(path) == 2 and not path[1]:
        path.pop()  # /<master name>/
    if not path or not path[0] or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"Sentinel URL: the path must be /<master name>[/<db>]: {_redacted(url)}")
    query = parse_qsl(parts["query"] or "", keep_blank_values=True)
    sentinel_options: dict[str, Any] = {
        name.removeprefix("sentinel_"): value for name, value in query if name in SENTINEL_OPTIONS
    }
    own = urlencode([(name, value) for name, value in query if name not in SENTINEL_OPTIONS])
    db = path[1] if len(path) == 2 else ""
    # redis-py parses the rest as it parses any URL of the master.
    options: dict[str, Any] = dict(parse_url(f"{plain}://{userinfo}{at}placeholder/{db}?{own}"))
    for name in ("host", "port", "connection_class"):
        options.pop(name, None)
    tls = plain == "rediss"
    if tls:
        sentinel_options.update((k, v) for k, v in options.items() if k.startswith("ssl_"))
    return SentinelURL(tuple(sentinels), path[0], options, sentinel_options, tls)


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    _, at, rest = rest.rpartition("@")
    return f"{scheme}{sep}{'***@' if at else ''}{rest}"


class BlockingSentinelConnectionPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """redis-py's pool of master connections (each asks the sentinels where the
    master is as it opens), bounded as ``BlockingConnectionPool`` bounds one, and
    following the master as the sentinels move it.

    Bounded: ``SentinelConnectionPool`` derives from the plain pool, which raises
    ``MaxConnectionsError`` past ``max_connections``. Put before
    ``BlockingConnectionPool`` here, it keeps its own parts (the master's
    address, dropping idle connections when that changes, the pool each
    connection asks) and takes the blocking pool's ``get_connection`` and
    ``release``: callers wait up to ``timeout`` for a free connection, then get
    ``ConnectionError``, which the write path retries like any other.

    Following: redis-py asks the sentinels only as a connection opens, and open
    connections stay on the old master until it drops them or answers
    ``READONLY``. A failover the sentinels decide while the old master still runs
    leaves it a master, taking writes that its demotion will discard, until they
    reconfigure it (8 s or more later). So the pool also asks the sentinels
    every ``FOLLOW_EVERY`` seconds while in use (beside the callers, never in
    their way; when they cannot be asked it carries on: the master may be fine),
    drops its idle connections to a master they no longer name and closes each
    busy one as it comes back.
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._asked = 0.0
        self._asking: asyncio.Task[None] | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        if self._asking is None and time.monotonic() - self._asked >= FOLLOW_EVERY:
            self._asked = time.monotonic()
            self._asking = asyncio.create_task(self._ask_sentinels())
        connection: AbstractConnection = await super().get_connection(  # type: ignore[no-untyped-call]
            *args, **kwargs
        )
        return connection

    async def _ask_sentinels(self) -> None:
        try:
            await self.get_master_address()  # type: ignore[no-untyped-call]
        except (RedisError, OSError):
            pass
        finally:
            self._asking = None

    async def release(self, connection: AbstractConnection) -> None:
        address = self.master_address
        where = (getattr(connection, "host", None), getattr(connection, "port", None))
        if address is not None and where != address:
            await connection.disconnect()
        await super().release(connection)

    async def aclose(self) -> None:
        if self._asking is not None:
            self._asking.cancel()
        # The client owns its pool, and the pool its sentinels' clients.
        await super().aclose()
        await self.sentinel_manager.aclose()


def _connect_sentinel(url: SentinelURL, **options: Any) -> aioredis.Redis:
    tcp = SSLConnection if url.tls else aioredis.Connection
    # The sentinels are asked as a master connection opens, in the caller's task:
    # their connections pass cancellations on too. A pool's connections don't
    # retry (redis-py's clients do, 10 times with backoff): a sentinel that fails
    # is skipped at once for the next.
    sentinel = Sentinel([])  # type: ignore[no-untyped-call]
    sentinel.sentinels = [
        aioredis.Redis.from_pool(
            aioredis.ConnectionPool(
                connection_class=cancellable(tcp),
                host=host,
                port=port,
                socket_timeout=SENTINEL_TIMEOUT,
                socket_connect_timeout=SENTINEL_TIMEOUT,
                decode_responses=True,
                **url.sentinel_options,
            )
        )
        for host, port in url.sentinels
    ]
    base = SentinelManagedSSLConnection if url.tls else SentinelManagedConnection
    client: aioredis.Redis = sentinel.master_for(
        url.master,
        connection_pool_class=BlockingSentinelConnectionPool,
        connection_class=cancellable(base),
        # As redis-py's from_url: the URL's options over the caller's.
        **{**options, **url.options},
    )
    return client

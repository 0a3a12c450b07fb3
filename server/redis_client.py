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

``redis+cluster://`` URLs (:func:`parse_cluster_url`) give redis-py's
``RedisCluster`` (:class:`BoundedRedisCluster`), whose node pools raise
``MaxConnectionsError`` past their size instead of waiting: ours bounds the
commands in flight instead, so callers wait for a turn as with one node, and
splits the instance's connection budget between the masters.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, TypeAlias
from urllib.parse import parse_qsl, unquote, urlencode

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, PipelineCommand
from redis.asyncio.cluster import RedisCluster as _RedisCluster
from redis.asyncio.connection import AbstractConnection, SSLConnection, parse_url
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, NoScriptError, RedisError, SlotNotCoveredError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "BlockingSentinelConnectionPool",
    "BoundedRedisCluster",
    "CancellableWrites",
    "ClusterURL",
    "RedisClient",
    "SentinelURL",
    "cancellable",
    "connect",
    "parse_cluster_url",
    "parse_sentinel_url",
]

#: The schemes of a Sentinel URL, and the plain scheme each one's master takes.
SENTINEL_SCHEMES: Final = {"redis+sentinel": "redis", "rediss+sentinel": "rediss"}
#: What :func:`connect` gives: one node's client (alone, or Sentinel's master), or a cluster's.
RedisClient: TypeAlias = "aioredis.Redis | BoundedRedisCluster"

#: The schemes of a Cluster URL, and the plain scheme of its nodes.
CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
#: A node's port when a Cluster URL names none.
REDIS_PORT: Final = 6379
#: Commands in flight to a cluster never fewer than this, however many masters.
MIN_IN_FLIGHT: Final = 2
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


def connect(url: str, **options: Any) -> RedisClient:
    """A client for ``url`` on a bounded pool that makes callers wait for a
    free connection (``max_connections``, waiting up to ``timeout``);
    ``options`` go to the pool. ``url`` is ``redis://``, ``rediss://``,
    ``unix://``, a Sentinel URL (:func:`parse_sentinel_url`) or a Cluster URL
    (:func:`parse_cluster_url`; then the client is a :class:`BoundedRedisCluster`
    and ``max_connections`` is the instance's budget over all masters)."""
    scheme = url.partition("://")[0].lower()
    if scheme in SENTINEL_SCHEMES:
        return _connect_sentinel(parse_sentinel_url(url), **options)
    if scheme in CLUSTER_SCHEMES:
        return BoundedRedisCluster.from_cluster_url(parse_cluster_url(url), **options)
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
    plain, credentials, sentinels, parts = _hosts_url(
        url, SENTINEL_SCHEMES, "Sentinel", "sentinel", SENTINEL_PORT
    )
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
    options: dict[str, Any] = dict(parse_url(f"{plain}://{credentials}placeholder/{db}?{own}"))
    for name in ("host", "port", "connection_class"):
        options.pop(name, None)
    tls = plain == "rediss"
    if tls:
        sentinel_options.update((k, v) for k, v in options.items() if k.startswith("ssl_"))
    return SentinelURL(sentinels, path[0], options, sentinel_options, tls)


def _hosts_url(
    url: str, schemes: dict[str, str], kind: str, host_kind: str, default_port: int
) -> tuple[str, str, tuple[tuple[str, int], ...], re.Match[str]]:
    """What URLs naming several hosts share (``scheme://[userinfo@]h[:p],h[:p]/...``):
    the plain scheme, the credentials (``userinfo@``, or nothing), the hosts and
    ports, and the URL's parts."""
    scheme, _, remainder = url.partition("://")
    plain = schemes.get(scheme.lower())
    parts = _URL.fullmatch(remainder)
    if plain is None or parts is None:
        raise ValueError(f"not a {kind} URL: {_redacted(url)}")
    userinfo, at, hosts = parts["netloc"].rpartition("@")
    addresses = []
    for address in hosts.split(","):
        host = _HOST.fullmatch(address.strip())
        if host is None:
            raise ValueError(f"{kind} URL: bad {host_kind} address {address!r}")
        port = host["v6port"] or host["port"]
        addresses.append((host["v6"] or host["host"], int(port) if port else default_port))
    return plain, userinfo + at, tuple(addresses), parts


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


# Cluster.


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """What a Cluster URL says: some nodes to learn the cluster from, and the
    options of every node's connections."""

    startup_nodes: tuple[tuple[str, int], ...]
    #: As ``parse_url`` gives them: credentials, the URL's query options.
    options: dict[str, Any]
    tls: bool = False


def parse_cluster_url(url: str) -> ClusterURL:
    """``redis+cluster://[user:password@]host[:port][,host[:port]...][/0][?options]``.

    redis-py's ``RedisCluster.from_url`` takes one node's URL; a deployment
    lists a few, so that the instance starts while any one of them is down (the
    form of Sentinel URLs here, and of Lettuce's and ioredis' cluster
    settings). Port 6379 unless given; IPv6 as ``[::1]:7000``. A cluster has
    only database 0. ``rediss+cluster://`` speaks TLS. The query options are
    redis-py's URL options."""
    plain, credentials, nodes, parts = _hosts_url(
        url, CLUSTER_SCHEMES, "Cluster", "node", REDIS_PORT
    )
    if parts["path"].strip("/") not in ("", "0"):
        raise ValueError(f"Cluster URL: a cluster has only database 0: {_redacted(url)}")
    options: dict[str, Any] = dict(
        parse_url(f"{plain}://{credentials}placeholder/0?{parts['query'] or ''}")
    )
    for name in ("host", "port", "db", "connection_class"):
        options.pop(name, None)
    return ClusterURL(nodes, options, plain == "rediss")


#: Set while a task holds a turn, so that what it calls within (redis-py sends
#: a pipeline's redirected commands one by one) does not ask for another.
_holding_turn: ContextVar[bool] = ContextVar("holding_turn", default=False)


class BoundedRedisCluster(_RedisCluster):
    """redis-py's cluster client, with callers waiting for a turn rather than
    failing when connections run out, and with cancellable writes.

    Each node's pool of ``RedisCluster`` raises ``MaxConnectionsError`` once
    ``max_connections`` are busy; a burst of consoles would get
    ``store-unavailable``. Here a command or pipeline waits (up to ``timeout``,
    then ``ConnectionError``, which writes retry) for one of ``in_flight``
    turns. A command uses at most one connection of each node, so no node ever
    has more than ``in_flight`` connections, and the instance at most
    ``in_flight`` × masters: ``in_flight`` is the budget
    (``--redis-connections``) divided between the masters as first seen (never
    below :data:`MIN_IN_FLIGHT`).
    """

    def __init__(self, *args: Any, budget: int, timeout: float | None, **kwargs: Any) -> None:
        kwargs["max_connections"] = budget
        super().__init__(*args, **kwargs)
        # redis-py takes no connection class for a cluster; its nodes read it
        # from these options, shared with the nodes manager, as they are made.
        base = self.connection_kwargs["connection_class"]
        self.connection_kwargs["connection_class"] = cancellable(base)
        for node in self.startup_nodes:
            node.connection_class = self.connection_kwargs["connection_class"]
        self.budget = budget
        self.turn_timeout = timeout
        self._turns: asyncio.Semaphore | None = None
        self._relearning: asyncio.Future[None] | None = None

    @classmethod
    def from_cluster_url(cls, url: ClusterURL, **options: Any) -> BoundedRedisCluster:
        options = {**options, **url.options}
        budget = options.pop("max_connections", 50)
        timeout = options.pop("timeout", None)
        if url.tls:
            options["ssl"] = True
        return cls(
            startup_nodes=[ClusterNode(host, port) for host, port in url.startup_nodes],
            budget=budget,
            timeout=timeout,
            **options,
        )

    @property
    def in_flight(self) -> int:
        """Commands in flight at most (known once the cluster has been seen)."""
        masters = len(self.get_primaries()) or 1
        return max(MIN_IN_FLIGHT, self.budget // masters)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if _holding_turn.get():
            yield
            return
        if self._turns is None:
            await self.initialize()
            if self._turns is None:  # no other caller made them meanwhile
                self._turns = asyncio.Semaphore(self.in_flight)
        try:
            async with asyncio.timeout(self.turn_timeout):
                await self._turns.acquire()
        except TimeoutError:
            raise RedisConnectionError("no free connection to the cluster") from None
        token = _holding_turn.set(True)
        try:
            yield
        finally:
            _holding_turn.reset(token)
            self._turns.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.turn():
            return await super().execute_command(*args, **kwargs)

    def master_of(self, key: str) -> str:
        """The name of the master serving ``key``'s slot, as last seen (the slot
        itself while none is known)."""
        try:
            node = self.get_node_from_key(key)
        except SlotNotCoveredError:
            node = None
        return f"slot {self.keyslot(key)}" if node is None else str(node.name)

    async def run_scripts_in_place(
        self,
        script: AsyncScript,
        runs: Sequence[tuple[list[str], list[str]]],
        *,
        replicas: int,
        wait_ms: int,
    ) -> tuple[list[Any], int]:
        """Run ``script`` once per ``(keys, args)`` of ``runs`` (each run's keys
        in one slot; every slot on one master), and with ``replicas`` a ``WAIT``
        for them, down one connection in one round trip: each run's reply (an
        exception for a run that failed) and how many replicas confirmed.

        It follows no redirection. A run answered ``ASK`` or ``TRYAGAIN`` (its
        slot is moving) or ``MOVED`` (it moved; the map is learned again) gets
        that error, for its caller to retry; so the script never runs in a slot
        under migration. There a script's keys may be split between two
        masters, and one that touched keys it did not declare (the write script
        derives them from the company prefixes it declares) would be half
        applied. A declared prefix is no key, so the source answers ``ASK``
        before running it, and the target ``MOVED`` until the migration ends."""
        async with self.turn():
            node = self.get_node_from_key(runs[0][0][0])
            if node is None:
                await self.relearn()
                raise SlotNotCoveredError(f"no master serves {runs[0][0][0]!r}'s slot yet")
            commands = [
                PipelineCommand(n, "EVALSHA", script.sha, len(keys), *keys, *args)
                for n, (keys, args) in enumerate(runs)
            ]
            if replicas:
                commands.append(PipelineCommand(len(runs), "WAIT", replicas, wait_ms))
            try:
                await node.execute_pipeline(commands)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                await self.relearn()
                raise
            replies = [command.result for command in commands[: len(runs)]]
            if any(isinstance(reply, NoScriptError) for reply in replies):
                # A new or restarted master: load it there, then run them again
                # (a run that did apply answers the same: its changes' ids).
                await self.execute_command("SCRIPT", "LOAD", script.script, target_nodes=node)
                return await self.run_scripts_in_place(
                    script, runs, replicas=replicas, wait_ms=wait_ms
                )
            if any(isinstance(reply, MovedError) for reply in replies):
                await self.relearn()
            confirmed = commands[-1].result if replicas else 0
            if isinstance(confirmed, Exception):
                raise confirmed
            return replies, int(confirmed)

    async def aclose(self) -> None:
        # redis-py's closes nothing while it means to learn the cluster again
        # (before its first command, or after a connection error), though it
        # may have connections open by then: theirs would be left to the
        # garbage collector, unclosed. redis-py calls this itself too, to start
        # afresh (a cluster that answers CLUSTERDOWN): nothing here may stop
        # what callers are waiting on (a relearning in flight finishes).
        await super().aclose()
        await self.nodes_manager.aclose()
        await self.nodes_manager.aclose("startup_nodes")

    async def relearn(self) -> None:
        """Ask the cluster for its slots again (once, whoever else asks meanwhile)."""
        if self._relearning is None:
            self._relearning = asyncio.ensure_future(self._relearn())
        await asyncio.shield(self._relearning)

    async def _relearn(self) -> None:
        try:
            await self.nodes_manager.initialize()
        finally:
            self._relearning = None

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # redis-py's error
        return _BoundedPipeline(self, transaction)  # type: ignore[abstract]  # as redis-py's


class _BoundedPipeline(ClusterPipeline):
    """A pipeline takes one turn: one connection, at most, of each node."""

    __slots__ = ()

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        client = self.cluster_client
        assert isinstance(client, BoundedRedisCluster)
        async with client.turn():
            result: list[Any] = await super().execute(raise_on_error, allow_redirections)
            return result

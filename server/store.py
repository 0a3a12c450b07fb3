"""The Redis store: the only module that runs Redis commands on presence data.

Key names come from :class:`~server.keys.Keys` (its docstring is the map).
Writes go through ``lua/apply.lua`` only, so each change is atomic: precondition,
state, log, indexes and publication together.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final, Literal, cast

from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterError,
    ReadOnlyError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from presence_protocol import DEFAULT_STATUSES, ErrorCode
from server.coalesce import Coalescer
from server.errors import NotReplicated, Refused, StaleConnection, StoreUnavailable
from server.keys import Keys
from server.redis_client import BoundedRedisCluster, RedisClient
from server.state import DEFAULT_LABELS, AgentState, CompanyConfig, Event

__all__ = [
    "ORIGIN",
    "REDIS_ERRORS",
    "Observer",
    "Outcome",
    "Store",
    "entry_from_fields",
    "id_key",
    "new_session_id",
    "parse_changes",
    "parse_log_message",
]

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Events that set the agent's segments (from the console's token).
SEGMENT_EVENTS: Final = frozenset({"connected", "reconnected"})
#: The id before every entry: a cursor into an empty stream.
ORIGIN: Final = "0-0"
#: At most this many changes per script run: Redis runs nothing else meanwhile,
#: and at tens of microseconds a change this keeps a run to a few milliseconds.
WRITE_BATCH: Final = 64
#: Script runs in flight at once per shard (every company, on one Redis node).
WRITES_IN_FLIGHT: Final = 4
#: What Redis being unreachable or slow raises, or a cluster failing over or
#: moving a slot (down, ``MOVED``/``ASK`` past redis-py's own redirections,
#: a slot nobody serves yet): retried, or waited out.
REDIS_ERRORS: Final = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterError,
    AskError,
    TryAgainError,
    SlotNotCoveredError,
)
#: What a write retries through: those, and (a failover under way) a master
#: demoted to a replica that refuses writes with READONLY.
RETRIED: Final = (*REDIS_ERRORS, ReadOnlyError)
#: How long one write waits for a replica's confirmation (durability
#: ``replicated``); the write is retried until ``store_retry`` runs out.
REPLICATION_WAIT_MS: Final = 1000
#: Seconds a write's result outlives the last moment its writer may retry it
#: (``store_retry`` after the first attempt): that attempt may still wait out the
#: Redis client's socket timeout (10 s, server/app.py), or sit in a stalled
#: Redis's input, and must find the result when it runs.
RETRY_IN_FLIGHT: Final = 30
#: The write script, in the order its parts run as one script: the keys, the
#: rules (pure: what a change does), then the writes that carry them out.
WRITE_SCRIPT: Final = ("keys.lua", "rules.lua", "apply.lua")


#: A log's epoch and last entry id, read together: a script rather than
#: MULTI, which redis-py's cluster client runs in a thread of its own,
#: blocking the event loop for the round trip.
HEAD_SCRIPT: Final = """
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
return {redis.call('GET', KEYS[1]), last[1] and last[1][1] or false}
"""


class Unchecked(enum.Enum):
    """An argument's default when "not given" differs from ``None``."""

    UNCHECKED = enum.auto()


def id_key(entry_id: str) -> tuple[int, int]:
    """Stream ids compare as (milliseconds, sequence), never as strings."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def now_ms() -> int:
    """The time stamped on what this instance records."""
    return time.time_ns() // 1_000_000


def new_session_id(now_ms: int | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, sortable by creation."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    number = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(number >> shift) & 31] for shift in range(125, -1, -5))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one applied change did: its events, each with the state after it."""

    company: str
    agent: str
    changes: list[tuple[Event, AgentState]]
    session: str | None = None
    resumed: bool = False
    #: The connection that asked for the change (``None``: the ACD, a
    #: supervisor, the server itself).
    origin: str | None = None
    #: The connection whose hold on the session this change ended, if any.
    ended_conn: str | None = None

    @classmethod
    def from_result(cls, company: str, result: dict[str, Any]) -> Outcome:
        """The outcome a script run returned, or another instance published."""
        return cls(
            company=company,
            agent=result["agent"],
            changes=parse_changes(result),
            session=result.get("session"),
            resumed=bool(result.get("resumed")),
            origin=result.get("origin") or None,
            ended_conn=result.get("ended_conn") or None,
        )

    @property
    def state(self) -> AgentState | None:
        return self.changes[-1][1] if self.changes else None


class Observer:
    """What the store, and the hub and feeds reading Redis through it, report as
    they work. This one ignores it all (tests, tools); ``server/metrics.py``
    counts it — a base class here, so this module needs no Prometheus."""

    def script_run(self, op: str, seconds: float) -> None:
        """A write ended, successful or not, after ``seconds`` with its retries."""

    def applied(self, outcome: Outcome) -> None:
        """A write appended ``outcome.changes`` (none when it changed nothing)."""

    def redis_error(self, where: str) -> None:
        """A Redis connection or timeout error was caught (and retried) at ``where``."""

    def pubsub_lag(self, seconds: float) -> None:
        """Another instance's change arrived over pub/sub ``seconds`` after its append."""


def _opt_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def state_from_fields(fields: dict[str, Any], version: str | None = None) -> AgentState:
    """An :class:`AgentState` from the agent hash (or the script's snapshot of
    it); ``version`` overrides the one in ``fields``."""
    segments = fields.get("segments") or ""
    return AgentState(
        agent=fields["agent"],
        session=fields.get("session") or None,
        connection=fields.get("connection") or "offline",
        status=fields.get("status") or None,
        activity=fields.get("activity") or "idle",
        segments=tuple(segments.split(",")) if segments else (),
        since={
            "connection": _opt_int(fields.get("since_connection")),
            "status": _opt_int(fields.get("since_status")),
            "activity": _opt_int(fields.get("since_activity")),
        },
        idle_since=_opt_int(fields.get("idle_since")),
        version=version or fields.get("version") or None,
    )


def event_from_fields(entry_id: str, fields: dict[str, Any]) -> Event:
    """An :class:`Event` from a stream entry (or the script's copy of one)."""
    segments = fields.get("segments") if fields["value"] in SEGMENT_EVENTS else None
    return Event(
        id=entry_id,
        ts=int(fields["ts"]),
        agent=fields["agent"],
        session=fields.get("session") or None,
        type=fields["type"],
        value=fields["value"],
        reason=fields.get("reason") or None,
        segments=None if segments is None else tuple(s for s in segments.split(",") if s),
    )


def entry_from_fields(entry_id: str, fields: dict[str, Any]) -> tuple[Event, AgentState]:
    """A stream entry: the event and the agent's state after it."""
    return event_from_fields(entry_id, fields), state_from_fields(fields, entry_id)


def parse_log_message(data: str) -> list[tuple[str, list[tuple[Event, AgentState]]]]:
    """A message of a company's log channel: for each change, in log order, the
    id of the entry before its first, and its entries."""
    return [(item["follows"], parse_changes(item["result"])) for item in json.loads(data)]


def parse_changes(payload: dict[str, Any]) -> list[tuple[Event, AgentState]]:
    """The ``changes`` of a script result or a published message."""
    # cjson encodes an empty Lua table as {}: no changes.
    return [
        (
            event_from_fields(change["event"]["id"], change["event"]),
            state_from_fields(change["state"]),
        )
        for change in payload.get("changes") or ()
    ]


@dataclass(slots=True)
class Store:
    """Presence data in Redis, for any number of server instances."""

    redis: RedisClient
    prefix: str = "presence:"
    #: This server instance's id, published with its changes.
    instance: str = ""
    #: Seconds a write keeps retrying through Redis errors before StoreUnavailable.
    retry_for: float = 5.0
    #: Told of writes and Redis errors, for the metrics.
    observer: Observer = field(default_factory=Observer, repr=False)
    #: Replicas that must confirm a write before it is acknowledged (``WAIT``):
    #: 0 with durability ``local``, 1 with ``replicated``.
    replicas: int = 0
    #: Called with every applied change before the write returns: the hub's
    #: :meth:`~server.hub.Hub.dispatch`, once the app has one.
    on_applied: Callable[[Outcome], None] = field(default=lambda outcome: None, repr=False)
    #: Every key and channel name under ``prefix``.
    keys: Keys = field(init=False)
    _apply: Any = field(init=False, repr=False)
    _head: Any = field(init=False, repr=False)
    _writes: Coalescer[tuple[str, list[str]], str] = field(init=False, repr=False)
    #: Companies this process has put in the registry.
    _registered: set[str] = field(init=False, repr=False, default_factory=set)
    _kept: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.keys = Keys(self.prefix)
        # How long a write's result is kept for its retries (the request key's EX).
        self._kept = str(math.ceil(self.retry_for) + RETRY_IN_FLIGHT)
        lua = resources.files("server").joinpath("lua")
        source = "\n".join(lua.joinpath(part).read_text() for part in WRITE_SCRIPT)
        # register_script loads by SHA and retries with the source on NOSCRIPT,
        # which is what a restarted (or failed over) Redis answers.
        self._apply = self.redis.register_script(source)
        self._head = self.redis.register_script(HEAD_SCRIPT)
        self._writes = Coalescer(self._apply_batch, WRITE_BATCH, WRITES_IN_FLIGHT)

    # Writes.

    async def _run(
        self, op: str, company: str, agent: str, now: int, conn: str, args: dict[str, Any]
    ) -> Outcome:
        # cjson turns JSON null into a sentinel rather than nil: leave absent keys out.
        encoded_args = json.dumps({k: v for k, v in args.items() if v is not None})
        # One id for every attempt: the script answers a repeat with the first
        # result, so retrying after a lost reply never applies a change twice.
        request = os.urandom(8).hex()
        script_args = [op, agent, str(now), conn, encoded_args, self.instance, request, self._kept]
        started = time.monotonic()
        deadline = started + self.retry_for
        delay = 0.05
        while True:
            try:
                raw = await self._writes.submit(
                    self.shard(company), (self.keys.company(company), script_args)
                )
                break
            except (*RETRIED, NotReplicated) as exc:
                self.observer.redis_error("script")
                if time.monotonic() + delay > deadline:
                    # Timed too: a write that gave up is the latency that matters most.
                    self.observer.script_run(op, time.monotonic() - started)
                    raise StoreUnavailable(str(exc)) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        self.observer.script_run(op, time.monotonic() - started)
        result = json.loads(raw)
        if "error" in result:
            if result["error"] == "stale-connection":
                raise StaleConnection(result["message"])
            raise Refused(ErrorCode(result["error"]), result["message"])
        outcome = Outcome.from_result(company, result)
        self.observer.applied(outcome)
        # Here, once, rather than at every write site: no caller can forget to
        # tell this instance's sockets, and none is told before the log has it.
        self.on_applied(outcome)
        return outcome

    def shard(self, company: str) -> str:
        """Which changes may go to Redis with ``company``'s. One Redis node runs
        any companies' changes in one script run: thousands of tenants changing
        at once cost tens of round trips, not thousands. On a cluster, the
        changes of a master's companies go together, a script run per slot."""
        if isinstance(self.redis, BoundedRedisCluster):
            return self.redis.master_of(self.keys.company(company))
        return ""

    async def _apply_batch(
        self, shard: str, batch: Sequence[tuple[str, list[str]]]
    ) -> list[str | Exception]:
        if isinstance(self.redis, BoundedRedisCluster):
            replies, confirmed = await self._apply_per_slot(self.redis, batch)
        else:
            keys = [company_prefix for company_prefix, _ in batch]
            arguments = [value for _, script_args in batch for value in script_args]
            if not self.replicas:
                return cast(list[str | Exception], await self._apply(keys=keys, args=arguments))
            # WAIT counts the replicas that have every write of its own
            # connection: the script and WAIT go down one connection, in one
            # round trip. A retried change's script writes too (its request
            # key's expiry), so WAIT then confirms the first attempt's writes
            # as well.
            async with self.redis.pipeline(transaction=False) as pipe:
                await self._apply(keys=keys, args=arguments, client=pipe)
                pipe.wait(self.replicas, REPLICATION_WAIT_MS)
                replies, confirmed = await pipe.execute()
        if confirmed < self.replicas:
            raise NotReplicated(f"{confirmed} of {self.replicas} replicas confirmed in time")
        return replies

    async def _apply_per_slot(
        self, cluster: BoundedRedisCluster, batch: Sequence[tuple[str, list[str]]]
    ) -> tuple[list[str | Exception], int]:
        """A cluster's batch (one master's): a script run per slot, all in one
        round trip; each change's result, and the replicas that confirmed."""
        slots: dict[int, list[int]] = {}
        for n, (company_prefix, _) in enumerate(batch):
            slots.setdefault(key_slot(company_prefix.encode()), []).append(n)
        runs = [
            (
                [batch[n][0] for n in members],
                [value for n in members for value in batch[n][1]],
            )
            for members in slots.values()
        ]
        replies, confirmed = await cluster.run_scripts_in_place(
            self._apply, runs, replicas=self.replicas, wait_ms=REPLICATION_WAIT_MS
        )
        results: list[str | Exception] = [""] * len(batch)
        for members, reply in zip(slots.values(), replies, strict=True):
            for position, n in enumerate(members):
                results[n] = reply if isinstance(reply, Exception) else reply[position]
        return results, confirmed

    async def hello(
        self,
        company: str,
        agent: str,
        *,
        conn: str,
        now: int,
        session: str | None = None,
        segments: tuple[str, ...] = (),
        status: str | None = None,
        lost_conn: str | None = None,
        restore: bool = False,
        expected_holder: str | Literal[Unchecked.UNCHECKED] | None = Unchecked.UNCHECKED,
    ) -> Outcome:
        """Resume ``session`` if it is this agent's and resumable, else start a new one.

        ``lost_conn``: a connection known to have died with its instance; if it
        still holds the agent's session, that ends as ``server-lost``.
        ``restore``: the store lost its data; put ``session`` back as it was, with
        ``status``, for the connection that still holds it.
        ``expected_holder``: the connection the caller saw holding the session
        (``None``: none held it); if another holds it now, :class:`StaleConnection`
        and nothing is applied. Not checked unless given.
        """
        checked = expected_holder is not Unchecked.UNCHECKED
        await self._register(company, again=restore)
        args = {
            "session": session,
            "new_session": session if restore and session else new_session_id(now),
            "segments": list(segments),
            "status": status,
            "lost_conn": lost_conn,
            "restored": restore or None,
            "check_holder": checked or None,
            "expect_holder": (expected_holder or "") if checked else None,
        }
        return await self._run("hello", company, agent, now, conn, args)

    async def disconnect(
        self,
        company: str,
        agent: str,
        *,
        reason: str,
        now: int,
        conn: str = "",
        end_session: bool = False,
        session_ttl: int = 120,
    ) -> Outcome:
        args = {"reason": reason, "end_session": end_session, "session_ttl": session_ttl}
        return await self._run("disconnect", company, agent, now, conn, args)

    async def set_status(
        self, company: str, agent: str, value: str, *, by_user: bool, now: int, conn: str = ""
    ) -> Outcome:
        args = {"value": value, "by_user": by_user}
        return await self._run("status", company, agent, now, conn, args)

    async def activity(
        self, company: str, agent: str, value: str, *, now: int, conn: str = ""
    ) -> Outcome:
        return await self._run("activity", company, agent, now, conn, {"value": value})

    async def acd(
        self, company: str, agent: str, value: str, *, now: int, reason: str | None = None
    ) -> Outcome:
        return await self._run("acd", company, agent, now, "", {"value": value, "reason": reason})

    async def claim(
        self, company: str, *, now: int, segment: str | None = None, exclude: tuple[str, ...] = ()
    ) -> Outcome:
        """Occupy the routable agent idle the longest (of ``segment``), except ``exclude``."""
        args = {"segment": segment, "exclude": list(exclude)}
        return await self._run("claim", company, "", now, "", args)

    async def trim(self, company: str, before_ms: int) -> None:
        """Drop the log's entries older than ``before_ms``, and their index entries.

        The id of the last entry dropped is kept (``P{C}:trimmed``) before any is:
        a cursor at or past it lost nothing, one before it may have (Redis 7.0's
        own ``max-deleted-entry-id`` does not count trimming).
        """
        keys = self.keys
        doomed = await self.redis.xrevrange(
            keys.events(company), max=f"({before_ms}-0", min="-", count=1
        )
        if not doomed:
            return
        last_dropped = cast(str, doomed[0][0])
        marked = await self.redis.get(keys.trimmed(company))
        if marked is None or id_key(cast(str, marked)) < id_key(last_dropped):
            await self.redis.set(keys.trimmed(company), last_dropped)
        agents = cast(set[str], await self.redis.smembers(keys.agents(company)))
        async with self.redis.pipeline(transaction=False) as pipe:
            # Exact, not "~": retention runs rarely, and what it keeps is then
            # exactly what it says.
            pipe.xtrim(keys.events(company), minid=str(before_ms), approximate=False)
            for agent in agents:
                pipe.xtrim(keys.agent_log(company, agent), minid=str(before_ms), approximate=False)
            await pipe.execute()

    async def companies(self) -> list[str]:
        """Every company with a log: the registry's, not a SCAN of the keyspace
        (on Redis Cluster that would visit every node, and cost as much as the
        whole keyspace)."""
        return [company async for company in self.redis.sscan_iter(self.keys.companies())]

    async def _register(self, company: str, *, again: bool = False) -> None:
        """Put ``company`` in the registry, once per process (``again``: the
        store lost its data, registry included): a company's log starts with an
        agent's hello, so registering there covers every log."""
        if again or company not in self._registered:
            await self.redis.sadd(self.keys.companies(), company)
            self._registered.add(company)

    # Reads.

    async def head(self, company: str) -> tuple[str | None, str]:
        """The log's epoch (``None`` before its first event) and its last entry id."""
        epoch, last = await self._head(keys=[self.keys.epoch(company), self.keys.events(company)])
        return epoch, last or ORIGIN

    async def recoverable_after(self, company: str, entry_id: str) -> bool:
        """Whether every entry after ``entry_id`` is still in the log (none trimmed)."""
        trimmed = await self.redis.get(self.keys.trimmed(company))
        return trimmed is None or id_key(entry_id) >= id_key(cast(str, trimmed))

    async def entries(
        self, company: str, after: str, *, until: str = "+", count: int = 1000
    ) -> list[tuple[Event, AgentState]]:
        """Entries after ``after`` (exclusive) up to ``until`` (inclusive), oldest first."""
        raw = cast(
            list[tuple[str, dict[str, str]]],
            await self.redis.xrange(
                self.keys.events(company), min="(" + after, max=until, count=count
            ),
        )
        return [entry_from_fields(entry_id, fields) for entry_id, fields in raw]

    async def read_after(
        self, company: str, after: str, *, count: int = 1000
    ) -> tuple[str | None, list[tuple[Event, AgentState]]]:
        """The log's epoch and up to ``count`` entries after ``after``, in one
        round trip: the epoch says whether ``after`` is still a position in it."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xrange(self.keys.events(company), min="(" + after, count=count)
            pipe.get(self.keys.epoch(company))
            raw, epoch = await pipe.execute()
        return epoch, [entry_from_fields(entry_id, fields) for entry_id, fields in raw]

    async def heads(self, companies: Sequence[str]) -> list[tuple[str | None, str]]:
        """:meth:`head` of each company, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for company in companies:
                pipe.get(self.keys.epoch(company))
                pipe.xrevrange(self.keys.events(company), count=1)
            replies = await pipe.execute()
        return [
            (epoch, last[0][0] if last else ORIGIN)
            for epoch, last in zip(replies[::2], replies[1::2], strict=True)
        ]

    async def log(
        self,
        company: str,
        *,
        agent: str | None = None,
        after: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        session: str | None = None,
        limit: int = 1000,
    ) -> tuple[list[Event], str | None]:
        """One page of the log, oldest first, and the id to continue ``after`` (or None).

        ``start_ms``/``end_ms`` select by the time an entry entered the log (its
        id), ``end_ms`` exclusive. One agent's events come from its own index,
        so their cost does not grow with the company's other agents.
        """
        low = "(" + after if after else ("-" if start_ms is None else str(start_ms))
        high = "+" if end_ms is None else str(end_ms - 1)
        found: list[Event] = []
        while len(found) < limit:
            chunk = limit - len(found) + 1
            if agent is None:
                raw = await self.redis.xrange(
                    self.keys.events(company), min=low, max=high, count=chunk
                )
                page = [event_from_fields(i, f) for i, f in cast(list[Any], raw)]
            else:
                page = await self._agent_page(company, agent, low, high, chunk)
            if not page:
                return found, None
            for event in page:
                if session is None or event.session == session:
                    if len(found) == limit:
                        return found, found[-1].id
                    found.append(event)
            low = "(" + str(page[-1].id)
            if len(page) < chunk:
                return found, None
        return found, found[-1].id if found else None

    async def _agent_page(
        self, company: str, agent: str, low: str, high: str, count: int
    ) -> list[Event]:
        index = self.keys.agent_log(company, agent)
        ids = [
            i
            for i, _ in cast(
                list[Any], await self.redis.xrange(index, min=low, max=high, count=count)
            )
        ]
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xrange(self.keys.events(company), min=entry_id, max=entry_id)
            rows = await pipe.execute()
        # An id whose entry was trimmed from the log first has nothing to show.
        return [event_from_fields(*row[0]) for row in rows if row]

    # The client decodes responses (decode_responses=True); redis-py's types
    # cannot know that, hence the casts to str below.

    async def _hash(self, key: str) -> dict[str, str]:
        return cast(dict[str, str], await self.redis.hgetall(key))

    async def holder(self, company: str, agent: str) -> str | None:
        """The connection holding the agent's session, if any."""
        return cast(str | None, await self.redis.hget(self.keys.agent(company, agent), "conn"))

    async def state(self, company: str, agent: str) -> AgentState | None:
        fields = await self._hash(self.keys.agent(company, agent))
        return state_from_fields(fields) if fields else None

    async def states(self, company: str) -> dict[str, AgentState]:
        members = await self.redis.smembers(self.keys.agents(company))
        agents = sorted(cast(set[str], members))
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent in agents:
                pipe.hgetall(self.keys.agent(company, agent))
            rows = await pipe.execute()
        return {
            agent: state_from_fields(row) for agent, row in zip(agents, rows, strict=True) if row
        }

    async def events(self, company: str, after: str = "-", count: int | None = None) -> list[Event]:
        start = after if after == "-" else "(" + after
        entries = cast(
            list[tuple[str, dict[str, str]]],
            await self.redis.xrange(self.keys.events(company), min=start, count=count),
        )
        return [event_from_fields(entry_id, fields) for entry_id, fields in entries]

    async def session_resumable(self, company: str, session: str) -> bool:
        return bool(await self.redis.exists(self.keys.session(company, session)))

    async def status_list(self, company: str) -> list[dict[str, str]]:
        """The company's custom statuses with their labels, as consoles show them."""
        stored = await self.redis.hget(self.keys.config(company), "statuses")
        if stored is None:
            return [{"value": value, "label": DEFAULT_LABELS[value]} for value in DEFAULT_STATUSES]
        statuses: list[dict[str, str]] = json.loads(stored)
        return statuses

    async def config(self, company: str) -> CompanyConfig:
        fields = await self._hash(self.keys.config(company))
        statuses = (
            tuple(status["value"] for status in json.loads(fields["statuses"]))
            if "statuses" in fields
            else DEFAULT_STATUSES
        )
        return CompanyConfig(
            acd_mode="broadcast" if fields.get("acd_mode") == "broadcast" else "circular",
            statuses=statuses,
            initial_status=fields.get("initial_status", "busy"),
            timeout_status=fields.get("timeout_status") or None,
        )

    async def put_config(self, company: str, config: CompanyConfig) -> None:
        """Store ``config``, its statuses labelled as the seed labels the defaults."""
        await self.put_config_document(
            company,
            acd_mode=config.acd_mode,
            statuses=[{"value": s, "label": DEFAULT_LABELS.get(s, s)} for s in config.statuses],
            initial_status=config.initial_status,
            timeout_status=config.timeout_status,
        )

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except REDIS_ERRORS:
            return False

    # For the HTTP API (server/http_api.py): the routable index read directly,
    # and the config document with the labels admins give.

    async def idle_states(
        self, company: str, *, segment: str | None = None, limit: int | None = None
    ) -> list[AgentState]:
        """Routable agents (of ``segment``), longest idle first, ties by agent id.

        Read from the routable index, so the cost follows the agents returned,
        not the company's size. An agent that changed between the two reads is
        returned as it is now: callers re-check ``routable``.
        """
        key = self.keys.idle(company, segment)
        # Equal scores are ordered by member, bytewise: agent ids are ASCII.
        agents = cast(
            list[str], await self.redis.zrange(key, 0, -1 if limit is None else limit - 1)
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent in agents:
                pipe.hgetall(self.keys.agent(company, agent))
            rows = await pipe.execute()
        return [state_from_fields(row) for row in rows if row]

    async def put_config_document(
        self,
        company: str,
        *,
        acd_mode: str,
        statuses: list[dict[str, str]],
        initial_status: str,
        timeout_status: str | None,
    ) -> None:
        """Store a company's settings with its statuses' labels (validated by the caller).

        The same hash fields ``lua/apply.lua`` reads.
        """
        mapping = {
            "acd_mode": acd_mode,
            "statuses": json.dumps(
                [{"value": s["value"], "label": s["label"]} for s in statuses], ensure_ascii=False
            ),
            "initial_status": initial_status,
            "timeout_status": timeout_status or "",
        }
        flat = [part for pair in mapping.items() for part in pair]
        await self.redis.hset(self.keys.config(company), items=flat)

"""soak: a day of traffic, compressed: a mixed load on one server for 30 minutes
(``--quick``: 3; ``PRESENCE_SOAK_MINUTES`` sets any length), sampled every 30 s.

One company (``bench``) on one server, at the server's default settings (rate
limits and log level included):

- 2,000 agent consoles (lean sockets, bench/lean_ws.py): 1,800 churning, and
  200 in segment ``acd`` that only the ACD touches;
- 20 monitors subscribed to the whole company, each checking that entry ids
  only grow as they arrive; at the end each one's count and running CRC of the
  ids it got must equal those of the log after its subscription's cursor (so:
  every event, in order, no gap, no duplicate);
- status and activity churn at 500 changes/s in all, open loop (each change
  sent when due, its ack latency counted from then), over the 1,800: each
  agent cycles ``break``, ``meeting``, ``meeting-end``, ``available``, so every
  change is allowed and records an event;
- ACD claims at 20/s (``POST /v1/acd/claim`` in segment ``acd``), each agent
  released (``POST /v1/agents/{a}/acd releasing``) after a 0.5–3 s call;
- reconnects: 1% of the consoles a minute (one every 3 s) drop, half with a
  close frame and half by a TCP reset, and come back 1–5 s later with their
  session (``hello`` with ``session``: the welcome must say ``resumed``).

Each sample reads the server's RSS, open fds and threads from /proc, its
asyncio task count (the server runs under a two-line wrapper whose SIGUSR1
handler writes ``len(asyncio.all_tasks())`` and ``sys.getallocatedblocks()``
(the Python objects alive, however fragmented the heap) to a file; nothing else differs
from ``python -m server``), Redis's ``used_memory``, the log's ``XLEN``, the
``request:*`` keys (SCAN), and the errors the load saw. Slopes and deltas are
judged after a warm-up (the first sixth of the run). At the end the log must
replay to the served states (tests/invariants.py ``check_company``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import signal
import statistics
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.common import (
    COMPANY,
    SECRET,
    Context,
    CpuMeter,
    Result,
    bench_store,
    cpu_seconds,
    gather_bounded,
    new_prefix,
    p50,
    percentile,
    redis_pid,
    rss_kib,
    token,
)
from bench.lean_http import LeanHttp
from bench.lean_ws import LeanSocket, lean_connect
from client_sdk.protocol import MSGPACK, decode, encode
from server.auth import issue
from server.keys import Keys
from server.redis_client import connect as connect_redis
from server.reference_model import evolve
from server.state import AgentState
from server.store import ORIGIN, Store, id_key
from tests.invariants import (
    CONNECTION_LETTER,
    FREES_AN_AGENT,
    SESSION_GRAMMAR,
    check_company,
)
from tests.processes import ServerProcess, running_process
from tests.redis_server import free_port

AGENTS: Final = 2000
#: Of the agents, those in segment ``acd``: claimed and released, never churned.
ACD_AGENTS: Final = 200
ACD_SEGMENT: Final = "acd"
MONITORS: Final = 20
CHURN_RATE: Final = 500
CLAIM_RATE: Final = 20
#: Share of the consoles that drop each minute.
DROPS_PER_MINUTE: Final = 0.01
CALL_SECONDS: Final = (0.5, 3.0)
AWAY_SECONDS: Final = (1.0, 5.0)
SAMPLE_EVERY: Final = 30.0
#: The first part of the run, not judged: caches, pools and the request keys'
#: window (35 s) fill up.
WARM_UP_SHARE: Final = 1 / 6
#: What a churning agent sends, in turn: each is allowed after the one before
#: and changes something, so each is acked with an event.
CYCLE: Final = (
    ("status", "break"),
    ("activity", "meeting"),
    ("activity", "meeting-end"),
    ("status", "available"),
)
HTTP_CONNECTIONS: Final = 8
TICK: Final = 0.01
#: How long the last acks, releases and monitor deliveries may take once the load stops.
CATCH_UP: Final = 30.0

#: ``python -m server``, plus a SIGUSR1 handler writing the task count to a file:
#: it runs in the main thread, between two bytecodes of the event loop's.
SERVER: Final = """
import asyncio, os, signal, sys

def count_tasks(signum, frame):
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    path = os.environ["SOAK_TASKS_FILE"]
    with open(path + ".new", "w") as out:
        out.write(f"{len(asyncio.all_tasks(loop))} {sys.getallocatedblocks()}")
    os.replace(path + ".new", path)

signal.signal(signal.SIGUSR1, count_tasks)
from server.cli import main
main()
"""


def minutes(ctx: Context) -> float:
    configured = os.environ.get("PRESENCE_SOAK_MINUTES")
    return float(configured) if configured else 3.0 if ctx.quick else 30.0


def pauses() -> tuple[float, float] | None:
    """``PRESENCE_SOAK_PAUSE=EVERY:FOR`` (seconds): stop the server (SIGSTOP) that
    long that often, as a busy machine would starve it, to see what a backlog
    leaves behind. Off by default."""
    configured = os.environ.get("PRESENCE_SOAK_PAUSE")
    if not configured:
        return None
    every, _, length = configured.partition(":")
    return float(every), float(length)


async def pause_server(pid: int, every: float, length: float, until: float) -> None:
    while time.perf_counter() + every < until:
        await asyncio.sleep(every)
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(length)
        finally:
            os.kill(pid, signal.SIGCONT)


@dataclass
class Load:
    """What the load generator saw."""

    errors: list[str] = field(default_factory=list)
    #: Refusals the load can expect (a claim finding nobody routable).
    refusals: int = 0
    sent: int = 0
    acked: int = 0
    skipped: int = 0
    claims: int = 0
    releases: int = 0
    drops: int = 0
    reconnects: int = 0
    stopping: bool = False
    #: This sample window's latencies (ms), emptied at each sample.
    acks: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    claim_ms: list[float] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors.append(text)
        if len(self.errors) <= 5:
            print(f"   soak error: {text[:300]}", flush=True)


class Console:
    """One agent's console: its session lives across the sockets it drops."""

    def __init__(self, name: str, acd: bool, load: Load) -> None:
        self.name = name
        self.acd = acd
        self.load = load
        self.socket: LeanSocket | None = None
        self.session: str | None = None
        #: Taking changes (connected, not leaving).
        self.up = False
        self.dropping = False
        self.changes = 0
        self.in_flight: dict[int, float] = {}
        self._welcome: asyncio.Future[dict[str, Any]] | None = None

    def token(self) -> str:
        segments = (ACD_SEGMENT,) if self.acd else ()
        now = int(time.time())
        return issue(
            SECRET,
            company=COMPANY,
            sub=self.name,
            role="agent",
            now=now,
            ttl=86_400,
            segments=segments,
        )

    async def connect(self, url: str) -> None:
        """Open a socket; ``hello`` with the session when there is one (a resume)."""
        resume = self.session is not None
        self._welcome = asyncio.get_running_loop().create_future()
        socket = await lean_connect(url, MSGPACK, self.on_message)
        hello: dict[str, Any] = {"t": "hello", "token": self.token()}
        if resume:
            hello["session"] = self.session
        else:
            hello["status"] = "available"
        socket.send(encode(hello, MSGPACK))
        frame = await asyncio.wait_for(self._welcome, CATCH_UP)
        if frame["t"] != "welcome":
            raise RuntimeError(f"{self.name}: expected welcome, got {frame}")
        if resume and not frame["resumed"]:
            self.load.error(f"{self.name}: came back with its session, not resumed: {frame}")
        self.session = frame["session"]
        self.socket = socket
        socket.closed.add_done_callback(lambda _: self._closed(socket))
        self.up = True

    def _closed(self, socket: LeanSocket) -> None:
        if socket is self.socket and not self.dropping and not self.load.stopping:
            self.up = False
            self.load.error(f"{self.name}: the server closed the console's socket")

    def change(self, at: float) -> None:
        assert self.socket is not None
        ref = self.changes
        kind, value = CYCLE[ref % len(CYCLE)]
        self.in_flight[ref] = at
        self.socket.send(encode({"t": kind, "value": value, "ref": ref}, MSGPACK))
        self.changes += 1
        self.load.sent += 1

    def on_message(self, payload: bytes) -> None:
        frame: dict[str, Any] = decode(payload)
        kind = frame["t"]
        if kind == "ack":
            sent = self.in_flight.pop(frame["ref"], None)
            if sent is None:
                self.load.error(f"{self.name}: ack of nothing in flight: {frame}")
                return
            self.load.acks.append((time.perf_counter() - sent) * 1000)
            self.load.acked += 1
            if frame.get("event") is None:
                self.load.error(f"{self.name}: ack without an event: {frame}")
        elif kind == "state":
            pass  # its own change, a claim, a release
        elif self._welcome is not None and not self._welcome.done():
            self._welcome.set_result(frame)
        else:
            self.load.error(f"{self.name}: {frame}")

    async def drop_and_return(self, url: str, abrupt: bool) -> None:
        """Leave once nothing is in flight, by a close frame or a TCP reset;
        come back a few seconds later with the session."""
        self.up = False  # the churn passes it by from now on
        async with asyncio.timeout(CATCH_UP):
            while self.in_flight:  # noqa: ASYNC110 - acks arrive by callback
                await asyncio.sleep(0.05)
        socket = self.socket
        assert socket is not None and socket.transport is not None
        self.dropping = True
        self.load.drops += 1
        if abrupt:
            socket.transport.abort()
        else:
            socket.close()
        await socket.closed
        await asyncio.sleep(random.uniform(*AWAY_SECONDS))
        try:
            await self.connect(url)
        except Exception as exc:
            self.load.error(f"{self.name}: reconnect failed: {exc!r}")
            return
        finally:
            self.dropping = False
        self.load.reconnects += 1


class Watcher:
    """A monitor that checks what it receives: ids only grow; a count and a CRC
    of them to compare with the log's at the end."""

    def __init__(self, name: str, load: Load) -> None:
        self.name = name
        self.load = load
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.live = False
        self.start = ""
        self.last_id = ""
        self.last = (0, 0)
        self.count = 0
        self.crc = 0
        self.socket: LeanSocket | None = None

    def on_message(self, payload: bytes) -> None:
        frame: dict[str, Any] = decode(payload)
        if frame["t"] != "event":
            if self.live:
                self.load.error(f"{self.name}: {frame}")
            else:
                self.replies.put_nowait(frame)
            return
        entry: str = frame["cursor"]["id"]
        key = id_key(entry)
        if key <= self.last:
            self.load.error(f"{self.name}: {entry} after {self.last_id}")
        self.last, self.last_id = key, entry
        self.count += 1
        self.crc = zlib.crc32(entry.encode(), self.crc)
        self.load.lags.append(time.time() * 1000 - frame["event"]["ts"])

    async def connect(self, url: str) -> None:
        socket = await lean_connect(url, MSGPACK, self.on_message)
        socket.send(encode({"t": "hello", "token": token(self.name, "supervisor")}, MSGPACK))
        welcome = await asyncio.wait_for(self.replies.get(), CATCH_UP)
        if welcome["t"] != "welcome":
            raise RuntimeError(f"{self.name}: expected welcome, got {welcome}")
        socket.send(encode({"t": "subscribe", "ref": 1}, MSGPACK))
        subscribed = await asyncio.wait_for(self.replies.get(), CATCH_UP)
        if subscribed["t"] != "subscribed":
            raise RuntimeError(f"{self.name}: expected subscribed, got {subscribed}")
        self.start = self.last_id = subscribed["cursor"]["id"]
        self.last = id_key(self.start)
        self.live = True
        self.socket = socket
        socket.closed.add_done_callback(self._closed)

    def _closed(self, _: object) -> None:
        if not self.load.stopping:
            self.load.error(f"{self.name}: the server closed the monitor's socket")


# The load.


async def churn(churners: list[Console], load: Load, until: float) -> None:
    """``CHURN_RATE`` changes/s over the churning consoles in turn, each sent when
    due (open loop); a console away or leaving is passed by."""
    began = time.perf_counter()
    due = turn = 0
    while (now := time.perf_counter()) < until:
        target = int((now - began) * CHURN_RATE)
        while due < target:
            at = began + due / CHURN_RATE  # stamped with when it was due
            due += 1
            for _ in range(len(churners)):
                console = churners[turn % len(churners)]
                turn += 1
                if console.up:
                    console.change(at)
                    break
            else:
                load.skipped += 1
        await asyncio.sleep(TICK)


class Acd:
    """Claims at ``CLAIM_RATE``/s, open loop, over a few keep-alive connections;
    each claimed agent released after its call."""

    def __init__(self, base: str, load: Load) -> None:
        self.base = base
        self.load = load
        self.headers = {"Authorization": f"Bearer {token('acd', role='acd')}"}
        self.pool: asyncio.Queue[LeanHttp] = asyncio.Queue()
        self.calls: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        for _ in range(HTTP_CONNECTIONS):
            self.pool.put_nowait(await LeanHttp(self.base, self.headers).__aenter__())

    async def close(self) -> None:
        while not self.pool.empty():
            with contextlib.suppress(Exception):
                await self.pool.get_nowait().__aexit__(None, None, None)

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        client = await self.pool.get()
        try:
            return await client.post(path, body)
        except (OSError, asyncio.IncompleteReadError) as exc:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            client = await LeanHttp(self.base, self.headers).__aenter__()
            return 0, {"error": {"code": "connection", "message": repr(exc)}}
        finally:
            self.pool.put_nowait(client)

    async def call(self) -> None:
        began = time.perf_counter()
        status, body = await self.post("/v1/acd/claim", {"segment": ACD_SEGMENT})
        self.load.claim_ms.append((time.perf_counter() - began) * 1000)
        if status != 200:
            code = body.get("error", {}).get("code") if isinstance(body, dict) else None
            if code == "no-agent-available":
                self.load.refusals += 1
            else:
                self.load.error(f"claim: {status} {body}")
            return
        self.load.claims += 1
        agent = body["state"]["agent"]
        await asyncio.sleep(random.uniform(*CALL_SECONDS))
        status, body = await self.post(f"/v1/agents/{agent}/acd", {"value": "releasing"})
        if status != 200:
            self.load.error(f"release of {agent}: {status} {body}")
            return
        self.load.releases += 1

    async def run(self, until: float) -> None:
        began = time.perf_counter()
        due = 0
        while (now := time.perf_counter()) < until:
            while due < int((now - began) * CLAIM_RATE):
                due += 1
                task = asyncio.create_task(self.call())
                self.calls.add(task)
                task.add_done_callback(self.calls.discard)
            await asyncio.sleep(TICK)
        if self.calls:
            await asyncio.wait(self.calls, timeout=CATCH_UP)


async def reconnects(consoles: list[Console], url: str, load: Load, until: float) -> None:
    """``DROPS_PER_MINUTE`` of the consoles each minute, evenly spread."""
    every = 60 / (len(consoles) * DROPS_PER_MINUTE)
    away: set[asyncio.Task[None]] = set()
    abrupt = False
    while time.perf_counter() + every < until:
        await asyncio.sleep(every)
        candidates = [c for c in random.sample(consoles, 50) if c.up]
        if not candidates:
            continue
        abrupt = not abrupt
        task = asyncio.create_task(candidates[0].drop_and_return(url, abrupt))
        away.add(task)
        task.add_done_callback(away.discard)
    if away:
        await asyncio.wait(away, timeout=CATCH_UP + AWAY_SECONDS[1])


# Sampling.


@dataclass
class Sample:
    minute: float
    rss_kib: int
    fds: int
    threads: int
    tasks: int | None
    #: sys.getallocatedblocks() in the server: grows with live objects, not with
    #: a fragmented heap.
    blocks: int | None
    used_memory: int
    xlen: int
    requests: int
    #: Keys with a time to live (INFO keyspace): the request keys, and the
    #: session keys of consoles away; logically expired ones not yet reclaimed too.
    expiring: int
    errors: int
    #: Consoles away (dropped, not back yet) as the sample was taken.
    away: int
    sent: int
    ack_p99: float | None
    lag_p99: float | None
    load1: float
    #: CPU (cores) since the sample before: the server, Redis, this process.
    cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)


def threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def read_counts(path: Path) -> tuple[int, int] | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        tasks, blocks = path.read_text().split()
        return int(tasks), int(blocks)
    return None


async def task_count(pid: int, path: Path) -> tuple[int, int] | tuple[None, None]:
    """The server's asyncio tasks and allocated blocks, as its SIGUSR1 handler
    writes them."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.kill(pid, signal.SIGUSR1)
    for _ in range(100):
        await asyncio.sleep(0.02)
        if (counts := read_counts(path)) is not None:
            return counts
    return None, None


class Sampler:
    def __init__(self, server: ServerProcess, redis: Any, prefix: str, load: Load, tasks: Path):
        self.server = server
        self.redis = redis
        self.keys = Keys(prefix)
        self.load = load
        self.tasks = tasks
        self.samples: list[Sample] = []
        self.away: Callable[[], int] = lambda: 0
        self.redis_pid = 0
        self._cpu_at = 0.0
        self._cpu = (0.0, 0.0, 0.0)
        self.began = 0.0

    def cpu_used(self) -> tuple[float, float, float]:
        return (cpu_seconds(self.server.pid), cpu_seconds(self.redis_pid), cpu_seconds(os.getpid()))

    def start(self) -> None:
        self.began = self._cpu_at = time.perf_counter()
        self._cpu = self.cpu_used()

    async def used_memory(self) -> int:
        return int((await self.redis.info("memory"))["used_memory"])

    async def expiring(self) -> int:
        keyspace = await self.redis.info("keyspace")
        return sum(int(db.get("expires", 0)) for db in keyspace.values() if isinstance(db, dict))

    async def request_keys(self) -> list[str]:
        pattern = self.keys.request(COMPANY, "*")
        return [key async for key in self.redis.scan_iter(match=pattern, count=10_000)]

    async def take(self) -> Sample:
        load, pid = self.load, self.server.pid
        acks, load.acks = load.acks, []
        lags, load.lags = load.lags, []
        now, used = time.perf_counter(), self.cpu_used()
        wall = max(now - self._cpu_at, 1e-9)
        cpu = tuple((b - a) / wall for a, b in zip(self._cpu, used, strict=True))
        self._cpu_at, self._cpu = now, used
        tasks, blocks = await task_count(pid, self.tasks)
        sample = Sample(
            minute=(time.perf_counter() - self.began) / 60,
            rss_kib=rss_kib(pid),
            fds=len(os.listdir(f"/proc/{pid}/fd")),
            threads=threads(pid),
            tasks=tasks,
            blocks=blocks,
            used_memory=await self.used_memory(),
            xlen=int(await self.redis.xlen(self.keys.events(COMPANY))),
            requests=len(await self.request_keys()),
            expiring=await self.expiring(),
            errors=len(load.errors),
            away=self.away(),
            sent=load.sent,
            ack_p99=percentile(acks, 99) if acks else None,
            lag_p99=percentile(lags, 99) if lags else None,
            load1=os.getloadavg()[0],
            cpu=(cpu[0], cpu[1], cpu[2]),
        )
        self.samples.append(sample)
        print(
            f"   {sample.minute:5.1f} min  rss {sample.rss_kib / 1024:6.1f} MiB  "
            f"fds {sample.fds}  threads {sample.threads}  tasks {sample.tasks}  "
            f"blocks {sample.blocks}  "
            f"redis {sample.used_memory / 2**20:6.1f} MiB  xlen {sample.xlen:,}  "
            f"requests {sample.requests:,} (expiring {sample.expiring:,})  sent {sample.sent:,}  "
            f"ack p99 {fmt_ms(sample.ack_p99)}  lag p99 {fmt_ms(sample.lag_p99)}  "
            f"away {sample.away}  errors {sample.errors}  load {sample.load1:.2f}  "
            f"cpu server/redis/bench {'/'.join(f'{c:.2f}' for c in sample.cpu)}",
            flush=True,
        )
        return sample

    async def run(self, until: float) -> None:
        while (left := until - time.perf_counter()) > SAMPLE_EVERY / 2:
            await asyncio.sleep(min(SAMPLE_EVERY, left))
            if until - time.perf_counter() > 1:
                await self.take()


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def slope(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope of ``ys`` over ``xs``, and its standard error."""
    n = len(xs)
    if n < 2 or min(xs) == max(xs):
        return 0.0, 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    residual = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys, strict=True))
    return b, (residual / (n - 2) / sxx) ** 0.5 if n > 2 else 0.0


# The end: tests/invariants.py's check_company, read in pages.

#: Up to this many entries the tests' own check_company runs too (it reads the
#: log in one XRANGE, which a 30-minute run's million entries outlast).
WHOLE_CHECK_UP_TO: Final = 200_000
PAGE: Final = 10_000


class LogCheck:
    """The invariants ``check_company`` checks (tests/invariants.py), in one pass
    over pages of the log, keeping per agent and session what it needs: ids in
    order; per session ``connected (disconnected reconnected)* disconnected?``;
    one online session per agent; no ``occupying`` twice without something
    freeing the agent between; each entry's state the fold of the log up to it;
    the fold of the whole log the served states. Also, per monitor cursor, the
    count and CRC of the ids after it up to ``last_id``."""

    def __init__(self, cursors: set[str], last_id: str) -> None:
        self.failures: list[str] = []
        self.entries = 0
        self.note = ""
        self._cursors = {cursor: id_key(cursor) for cursor in cursors}
        self._last = id_key(last_id)
        self.watched = dict.fromkeys(cursors, (0, 0))

    def fail(self, text: str) -> None:
        self.failures.append(text)

    async def run(self, store: Store) -> None:
        trimmed = not await store.recoverable_after(COMPANY, ORIGIN)
        letters: dict[str | None, str] = defaultdict(str)
        online: dict[str, str | None] = {}
        occupied: set[str] = set()
        states: dict[str, AgentState] = {}
        previous = (-1, -1)
        after = ORIGIN
        while page := await store.entries(COMPANY, after, count=PAGE):
            for event, state in page:
                entry = str(event.id)
                key = id_key(entry)
                if key <= previous:
                    self.fail(f"{entry} after {previous}")
                previous = key
                self.entries += 1
                for cursor, start in self._cursors.items():
                    if start < key <= self._last:
                        count, crc = self.watched[cursor]
                        self.watched[cursor] = (count + 1, zlib.crc32(entry.encode(), crc))
                agent, value = event.agent, event.value
                if value in CONNECTION_LETTER:
                    letters[event.session] += CONNECTION_LETTER[value]
                if not trimmed and value in ("connected", "reconnected"):
                    if online.get(agent) is not None:
                        self.fail(f"{agent}: two online sessions at {entry}")
                    online[agent] = event.session
                elif not trimmed and value == "disconnected":
                    if online.get(agent) != event.session:
                        self.fail(f"{entry} disconnects {agent} while not online")
                    online[agent] = None
                if value == "occupying":
                    if agent in occupied:
                        self.fail(f"{agent} occupied twice at {entry}")
                    occupied.add(agent)
                elif value in FREES_AN_AGENT:
                    occupied.discard(agent)
                if trimmed and agent not in states:
                    states[agent] = state
                    continue
                states[agent] = evolve(states.get(agent) or AgentState(agent), event)
                if states[agent] != state:
                    self.fail(f"entry {entry} carries {state}, the fold gives {states[agent]}")
            after = str(page[-1][0].id)
        for session, sequence in letters.items():
            if trimmed and not sequence.startswith("c"):
                continue
            if not SESSION_GRAMMAR.fullmatch(sequence):
                self.fail(f"session {session}: {sequence}")
        stored = await store.states(COMPANY)
        if trimmed:
            stored = {agent: state for agent, state in stored.items() if agent in states}
        if stored != states:
            wrong = sorted(
                a for a in stored.keys() | states.keys() if stored.get(a) != states.get(a)
            )
            self.fail(f"{len(wrong)} agents served otherwise than the log says, e.g. {wrong[:3]}")


# The run.


@contextlib.asynccontextmanager
async def soak_server(redis_url: str, prefix: str, tasks: Path) -> Any:
    """The server as ``python -m server`` runs it (default settings and log
    level), under the task-counting wrapper."""
    port = free_port()
    env = {
        "PRESENCE_PORT": str(port),
        "PRESENCE_REDIS_URL": redis_url,
        "PRESENCE_JWT_SECRET": SECRET,
        "PRESENCE_KEY_PREFIX": prefix,
        "PRESENCE_DRAIN_TIMEOUT": "5",
        "SOAK_TASKS_FILE": str(tasks),
    }
    async with running_process(["-c", SERVER], env, port) as server:
        yield server


async def settle_memory(sampler: Sampler) -> int:
    await asyncio.sleep(2)
    return await sampler.used_memory()


async def run(ctx: Context) -> None:
    length = minutes(ctx)
    warm_up = length * WARM_UP_SHARE
    prefix = new_prefix()
    load = Load()
    redis = connect_redis(ctx.redis_url, decode_responses=True)
    workdir = tempfile.TemporaryDirectory(prefix="soak-")
    tasks_file = Path(workdir.name) / "tasks"
    try:
        async with soak_server(ctx.redis_url, prefix, tasks_file) as server:
            sampler = Sampler(server, redis, prefix, load, tasks_file)
            sampler.away = lambda: sum(not console.up for console in consoles)
            consoles = [Console(f"k{i:04d}", i < ACD_AGENTS, load) for i in range(AGENTS)]
            before_agents = await settle_memory(sampler)
            start_fds = len(os.listdir(f"/proc/{server.pid}/fd"))
            xlen_before = int(await redis.xlen(sampler.keys.events(COMPANY)))
            began = time.perf_counter()
            await gather_bounded(AGENTS, 50, lambda i: consoles[i].connect(server.agent_url))
            connect_seconds = time.perf_counter() - began
            with_requests = await settle_memory(sampler)
            # Their hellos' request keys expire (store_retry + 30 s): what stays is theirs.
            async with asyncio.timeout(120):
                while await sampler.request_keys():  # noqa: ASYNC110 - polled in Redis
                    await asyncio.sleep(1)
            after_agents = await settle_memory(sampler)
            xlen_agents = int(await redis.xlen(sampler.keys.events(COMPANY))) - xlen_before
            watchers = [Watcher(f"sup{i:02d}", load) for i in range(MONITORS)]
            await gather_bounded(
                MONITORS, MONITORS, lambda i: watchers[i].connect(server.monitor_url)
            )
            acd = Acd(server.http_url, load)
            await acd.open()

            gc.collect()
            gc.freeze()  # the consoles live all run: keep them out of full collections
            meter = CpuMeter(
                server=server.pid, redis=await redis_pid(ctx.redis_url), bench=os.getpid()
            )
            load_log = len(server.log)
            sampler.redis_pid = meter.pids["redis"]
            sampler.start()
            meter.start()
            await sampler.take()
            until = sampler.began + length * 60
            await asyncio.gather(
                churn(consoles[ACD_AGENTS:], load, until),
                acd.run(until),
                reconnects(consoles, server.agent_url, load, until),
                sampler.run(until),
                *([pause_server(server.pid, *stall, until)] if (stall := pauses()) else []),
            )
            # The last changes' acks.
            async with asyncio.timeout(CATCH_UP):
                while any(c.in_flight for c in consoles):  # noqa: ASYNC110 - acks arrive by callback
                    await asyncio.sleep(0.05)
            final = await sampler.take()
            cpu = meter.stop()
            run_log = server.log[load_log:]
            # Every monitor up to the log's last entry.
            last = await redis.xrevrange(sampler.keys.events(COMPANY), count=1)
            last_id = last[0][0]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CATCH_UP):
                    while any(w.last_id != last_id for w in watchers):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
            request_sample = (await sampler.request_keys())[:200]
            request_bytes = [
                int(await redis.memory_usage(key, samples=0) or 0) for key in request_sample
            ]
            load.stopping = True
            await acd.close()
            for console in consoles:
                if console.socket is not None:
                    console.socket.close()
            for watcher in watchers:
                if watcher.socket is not None:
                    watcher.socket.close()
            # Their disconnections recorded before the server stops (else the drain does).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CATCH_UP):
                    while len(os.listdir(f"/proc/{server.pid}/fd")) > start_fds:  # noqa: ASYNC110
                        await asyncio.sleep(0.2)
        total_log = list(server.log)  # from its start to its exit
        for line in total_log:
            print(f"   server log: {line[:200]}", flush=True)
    finally:
        gc.unfreeze()
        workdir.cleanup()

    # The log replays to the served states (the server has stopped: nothing
    # moves), and each monitor got exactly its entries after its cursor.
    checked = LogCheck({w.start for w in watchers}, last_id)
    try:
        async with bench_store(ctx.redis_url, prefix) as store:
            await checked.run(store)
            if checked.entries <= WHOLE_CHECK_UP_TO:
                await check_company(store, COMPANY)  # the tests' own, in one read
                checked.note = "tests.invariants.check_company agrees"
    except Exception as exc:  # reported, with the figures above
        checked.failures.append(f"the check failed: {exc!r}")
    await redis.aclose()
    missing = 0
    for watcher in watchers:
        count, crc = checked.watched[watcher.start]
        if (watcher.count, watcher.crc) != (count, crc):
            missing += 1
            load.error(f"{watcher.name}: got {watcher.count} events, the log has {count} after")
    expected_events = sum(checked.watched[w.start][0] for w in watchers)

    report(
        ctx,
        length=length,
        warm_up=warm_up,
        load=load,
        samples=sampler.samples,
        final=final,
        per_agent=(after_agents - before_agents) / AGENTS,
        per_agent_with_requests=(with_requests - before_agents) / AGENTS,
        events_per_agent=xlen_agents / AGENTS,
        connect_seconds=connect_seconds,
        request_bytes=statistics.fmean(request_bytes) if request_bytes else 0.0,
        cpu=cpu,
        run_log=run_log,
        total_log=total_log,
        replay=checked,
        monitors=(missing, expected_events),
    )


def report(
    ctx: Context,
    *,
    length: float,
    warm_up: float,
    load: Load,
    samples: list[Sample],
    final: Sample,
    per_agent: float,
    per_agent_with_requests: float,
    events_per_agent: float,
    connect_seconds: float,
    request_bytes: float,
    cpu: dict[str, float],
    run_log: list[str],
    total_log: list[str],
    replay: LogCheck,
    monitors: tuple[int, int],
) -> None:
    judged = [s for s in samples if s.minute >= warm_up - 0.01]
    first, start = judged[0], samples[0]
    xs = [s.minute for s in judged]
    rss_slope, rss_error = slope(xs, [float(s.rss_kib) for s in judged])
    # The second half alone: a step (a backlog while the server fell behind
    # leaves its high-water mark) is not a trend.
    late = [s for s in samples if s.minute >= length / 2]
    late_slope, late_error = slope([s.minute for s in late], [float(s.rss_kib) for s in late])
    worst = max(judged, key=lambda s: s.ack_p99 or 0.0)
    counted = [s for s in judged if s.blocks is not None]
    blocks_slope, blocks_error = slope(
        [s.minute for s in counted], [float(s.blocks or 0) for s in counted]
    )
    judged_minutes = final.minute - first.minute
    # Redis: what grows with the log, the request keys' share taken out.
    adjusted = [s.used_memory - s.requests * request_bytes for s in judged]
    per_event, per_event_error = slope([float(s.xlen) for s in judged], adjusted)
    seconds = length * 60  # the load's schedule
    loads = [s.load1 for s in samples]
    where = (
        f"{length:g} min, warm-up {warm_up:g} min; 1 company, {AGENTS} agents "
        f"({ACD_AGENTS} in segment acd), {MONITORS} monitors; load average (1 min) "
        f"{min(loads):.2f}-{max(loads):.2f}, mean {statistics.fmean(loads):.2f}; "
        f"CPU (cores) server {cpu['server']:.2f}, redis {cpu['redis']:.2f}, "
        f"bench {cpu['bench']:.2f}"
    )
    if stall := pauses():
        where += f"; the server stopped (SIGSTOP) {stall[1]:g} s every {stall[0]:g} s"
    acks = [s.ack_p99 for s in judged if s.ack_p99 is not None]
    lags = [s.lag_p99 for s in judged if s.lag_p99 is not None]
    missing, expected_events = monitors
    growth = rss_slope * judged_minutes  # KiB over the judged window, at the slope
    rss_flat = rss_slope <= 2 * rss_error or growth <= 0.005 * first.rss_kib
    rss_verdict = "flat" if rss_flat else "GROWING"
    writes = CHURN_RATE + 2 * CLAIM_RATE
    requests_mean = statistics.fmean(s.requests for s in judged)

    def spread(values: list[int | None]) -> str:
        known = [v for v in values if v is not None]
        return f"{min(known)}-{max(known)}" if known else "-"

    add = ctx.add
    add(
        Result("soak", "changes/s sent (open loop)", load.sent / seconds, "/s",
               f">= {CHURN_RATE * 0.98:g}", where),
        Result("soak", "claims/s (released after a call)", load.claims / seconds, "/s", "",
               f"{load.claims} claims, {load.releases} releases; claim p99 "
               f"{percentile(load.claim_ms, 99) if load.claim_ms else 0:.1f} ms"),
        Result("soak", "reconnects (resumed sessions)", float(load.reconnects), "",
               f">= {max(1, int(length * AGENTS * DROPS_PER_MINUTE * 0.9))}",
               f"{load.drops} drops, half by close frame, half by TCP reset"),
        Result("soak", "ack p99 after warm-up (worst 30 s window)",
               max(acks) if acks else None, "ms", "",
               f"median of the windows' p99 {p50(acks) if acks else 0:.1f} ms"),
        Result("soak", "monitor lag p99 after warm-up (worst window)",
               max(lags) if lags else None, "ms", "",
               "from the event's ts to its receipt, one clock"),
        Result("soak", "server RSS at start", start.rss_kib / 1024, "MiB", "",
               "as the load starts, everyone connected"),
        Result("soak", "server RSS after warm-up", first.rss_kib / 1024, "MiB", "",
               f"at {first.minute:.1f} min"),
        Result("soak", "server RSS at end", final.rss_kib / 1024, "MiB"),
        Result("soak", "server RSS slope after warm-up", rss_slope, "KiB/min", "",
               f"{rss_verdict}: least squares over {len(judged)} samples "
               f"({judged_minutes:.1f} min), standard error {rss_error:.1f} KiB/min; "
               f"{growth:+.0f} KiB over the window, {rss_slope * 1440 / 1024:+.1f} MiB "
               f"a day at this slope"),
        Result("soak", "server RSS slope, second half", late_slope, "KiB/min", "",
               f"{len(late)} samples from {late[0].minute:.1f} min, standard error "
               f"{late_error:.1f} KiB/min; RSS {late[0].rss_kib / 1024:.1f} -> "
               f"{final.rss_kib / 1024:.1f} MiB; the worst window (ack p99 "
               f"{worst.ack_p99 or 0:.0f} ms, load {worst.load1:.1f}) ended at "
               f"{worst.minute:.1f} min"),
        Result("soak", "server allocated blocks slope after warm-up", blocks_slope, "/min", "",
               f"sys.getallocatedblocks(): {start.blocks} at start, {first.blocks} after "
               f"warm-up, {final.blocks} at end; standard error {blocks_error:.0f}/min. "
               f"Flat blocks under a rising RSS: the heap's high-water mark, not live objects"),
        Result("soak", "Redis bytes per event (log + agent index)", per_event, "B", "",
               f"slope of used_memory less the request keys over XLEN after warm-up, "
               f"standard error {per_event_error:.1f} B"),
        Result("soak", "Redis MiB per million events", per_event * 1e6 / 2**20, "MiB", "",
               f"at this run's {writes} events/s, "
               f"{per_event * 86_400 * writes / 2**30:.1f} GiB per day of retention_days"),
        Result("soak", "Redis bytes per agent (connected)", per_agent, "B", "",
               f"used_memory with {AGENTS} agents connected minus before, once their "
               f"hellos' request keys expired ({per_agent_with_requests:.0f} B before); "
               f"includes their {events_per_agent:.1f} events each; "
               f"connected in {connect_seconds:.1f} s"),
        Result("soak", "request keys at steady state (mean after warm-up)", requests_mean,
               "", "",
               f"{spread([s.requests for s in judged])} (SCAN), "
               f"{spread([s.expiring for s in judged])} keys with a TTL (INFO keyspace); "
               f"{writes}/s writes x 35 s = {writes * 35:,}; "
               f"{request_bytes:.0f} B each (MEMORY USAGE), "
               f"{requests_mean * request_bytes / 2**20:.1f} MiB"),
        Result("soak", "Redis used_memory: end - start", (final.used_memory - start.used_memory)
               / 2**20, "MiB", "",
               f"{start.used_memory / 2**20:.1f} -> {final.used_memory / 2**20:.1f} MiB; "
               f"XLEN {start.xlen:,} -> {final.xlen:,}"),
        Result("soak", "server fds: end - start", float(final.fds - start.fds), "", "<= 0",
               f"{start.fds} -> {final.fds}, all consoles connected at both; "
               f"{spread([s.fds for s in samples])} in between (consoles away)"),
        Result("soak", "server threads: end - start", float(final.threads - start.threads),
               "", "<= 0", f"{start.threads} -> {final.threads}"),
        Result("soak", "server asyncio tasks: end - start",
               float((final.tasks or 0) - (start.tasks or 0)), "", "<= 0",
               f"{start.tasks} -> {final.tasks}; {spread([s.tasks for s in samples])} "
               f"in between"),
        Result("soak", "errors", float(len(load.errors)), "", "<= 0",
               "; ".join(load.errors[:3])[:300]),
        Result("soak", "expected refusals (no agent to claim)", float(load.refusals), ""),
        Result("soak", "changes passed by (every console away)", float(load.skipped), ""),
        Result("soak", "monitors missing or misordered events", float(missing), "", "<= 0",
               f"{MONITORS} monitors, {expected_events:,} deliveries checked against the log"),
        Result("soak", "log replay mismatches", float(len(replay.failures)), "", "<= 0",
               "; ".join(replay.failures[:3])[:300]
               or f"the spec's invariants over {replay.entries:,} entries, in pages"
               + (f"; {replay.note}" if replay.note else "")),
        Result("soak", "server log lines during the load", float(len(run_log)), "", "<= 5",
               f"{len(total_log)} from start to stop"
               + (f"; e.g. {run_log[0][:150]!r}" if run_log else "")),
    )  # fmt: skip

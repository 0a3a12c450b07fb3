"""What every scenario shares: results, percentiles, the server under test as a
subprocess, raw WebSocket agents and monitors, and /proc readings."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.lean_ws import LeanSocket, lean_connect
from client_sdk.protocol import MSGPACK, decode, encode
from server.auth import issue
from server.redis_client import BoundedRedisCluster
from server.redis_client import connect as connect_redis
from server.state import Event
from server.store import Store
from tests.processes import ServerProcess, presence_server
from tests.redis_server import private_redis
from tests.topologies import RedisCluster

COMPANY = "bench"
SECRET = "bench-secret-" + "x" * 32
#: High enough that the load generator is never throttled.
RATE = "1000000"


@dataclass
class Result:
    scenario: str
    metric: str
    value: float | None
    unit: str
    #: e.g. ">= 2000" or "<= 10"; "" when there is none (a floor, a context figure).
    target: str = ""
    note: str = ""

    @property
    def met(self) -> bool | None:
        if not self.target or self.value is None:
            return None
        op, _, bound = self.target.partition(" ")
        return self.value >= float(bound) if op == ">=" else self.value <= float(bound)


@dataclass
class Context:
    redis_url: str
    quick: bool
    results: list[Result] = field(default_factory=list)

    def add(self, *results: Result) -> None:
        self.results.extend(results)


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def token(sub: str, role: str = "agent") -> str:
    return issue(SECRET, company=COMPANY, sub=sub, role=role, now=int(time.time()), ttl=86_400)


@contextlib.contextmanager
def redis_url(cluster: bool = False) -> Iterator[str]:
    """``PRESENCE_BENCH_REDIS_URL`` if set; else with ``cluster`` a private Redis
    Cluster of three masters (``redis-server`` from PATH, as the tests start
    one), else a private Valkey for the run."""
    url = os.environ.get("PRESENCE_BENCH_REDIS_URL")
    if url:
        yield url
        return
    if cluster:
        with RedisCluster(masters=3) as private_cluster:
            yield private_cluster.url
        return
    with private_redis("valkey") as private:
        yield private


def new_prefix() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}:"


@contextlib.asynccontextmanager
async def server_under_test(
    redis_url: str, prefix: str, settings: Mapping[str, str] | None = None
) -> AsyncIterator[ServerProcess]:
    """``python -m server`` on the bench's Redis, unthrottled, logging warnings only;
    ``settings`` (``PRESENCE_*``) on top."""
    env = {
        "PRESENCE_REDIS_URL": redis_url,
        "PRESENCE_JWT_SECRET": SECRET,
        "PRESENCE_KEY_PREFIX": prefix,
        "PRESENCE_RATE_LIMIT": RATE,
        "PRESENCE_RATE_BURST": RATE,
        "PRESENCE_LOG_LEVEL": "warning",
        # One server per scenario: a quick drain once the bench has closed its sockets.
        "PRESENCE_DRAIN_TIMEOUT": "5",
        **(settings or {}),
    }
    async with presence_server(env) as running:
        yield running


async def delete_prefix(redis_url: str, prefix: str) -> None:
    client = connect_redis(redis_url, decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc (KiB)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    # After the command: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def redis_pid(redis_url: str) -> int:
    """The Redis that holds the bench's company (on a cluster, its slot's master)."""
    client = connect_redis(redis_url, decode_responses=True)
    try:
        if isinstance(client, BoundedRedisCluster):
            await client.initialize()
            node = client.get_node_from_key(f"{{{COMPANY}}}")
            info = await client.info("server", target_nodes=node)
        else:
            info = await client.info("server")
        return int(info["process_id"])
    finally:
        await client.aclose()


class CpuMeter:
    """CPU share (of one core) each process used between start() and stop()."""

    def __init__(self, **pids: int) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self._began = 0.0
        self.share: dict[str, float] = {}

    def start(self) -> None:
        self._began = time.perf_counter()
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._began
        self.share = {
            name: (cpu_seconds(pid) - self._start[name]) / wall for name, pid in self.pids.items()
        }
        return self.share


async def open_ws(url: str) -> ClientConnection:
    # No deflate and no client pings: the server pings, and the bench should
    # cost as little as it can.
    return await connect(
        url,
        subprotocols=[MSGPACK],  # type: ignore[list-item]
        compression=None,
        ping_interval=None,
        open_timeout=60,
        max_queue=None,
    )


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(encode(message, MSGPACK))


async def receive(ws: ClientConnection) -> dict[str, Any]:
    return decode(await ws.recv())


async def agent(url: str, name: str, status: str | None = "available") -> ClientConnection:
    """A raw agent socket past its ``welcome``."""
    ws = await open_ws(url)
    hello: dict[str, Any] = {"t": "hello", "token": token(name)}
    if status is not None:
        hello["status"] = status
    await send(ws, hello)
    welcome = await receive(ws)
    if welcome["t"] != "welcome":
        raise RuntimeError(f"{name}: expected welcome, got {welcome}")
    return ws


async def monitor(url: str, name: str) -> ClientConnection:
    """A raw monitor socket subscribed to the company (its snapshot read)."""
    ws = await open_ws(url)
    await send(ws, {"t": "hello", "token": token(name, role="supervisor")})
    welcome = await receive(ws)
    if welcome["t"] != "welcome":
        raise RuntimeError(f"{name}: expected welcome, got {welcome}")
    await send(ws, {"t": "subscribe", "ref": 1})
    subscribed = await receive(ws)
    if subscribed["t"] != "subscribed":
        raise RuntimeError(f"{name}: expected subscribed, got {subscribed}")
    return ws


async def gather_bounded(count: int, limit: int, make: Any) -> list[Any]:
    """``make(i)`` for i in range(count), at most ``limit`` at once, in order."""
    gate = asyncio.Semaphore(limit)

    async def one(i: int) -> Any:
        async with gate:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in range(count)))


async def close_all(sockets: list[ClientConnection]) -> None:
    async def close(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            await ws.close()

    await gather_bounded(len(sockets), 200, lambda i: close(sockets[i]))


async def lean_agent(url: str, name: str) -> LeanSocket:
    """A lean agent socket (bench/lean_ws.py) past its ``welcome``, status
    available; later frames are dropped."""
    welcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def on_message(payload: bytes) -> None:
        if not welcome.done():
            welcome.set_result(decode(payload))

    socket = await lean_connect(url, MSGPACK, on_message)
    socket.send(encode({"t": "hello", "token": token(name), "status": "available"}, MSGPACK))
    frame = await welcome
    if frame["t"] != "welcome":
        raise RuntimeError(f"{name}: expected welcome, got {frame}")
    return socket


async def routable_count(http_url: str) -> int:
    """How many agents the ACD's "who is available" query returns."""
    headers = {"Authorization": f"Bearer {token('acd', role='acd')}"}
    async with httpx.AsyncClient(base_url=http_url, headers=headers, timeout=30) as client:
        response = await client.get("/v1/agents", params={"routable": "true", "order": "idle"})
        response.raise_for_status()
        return len(response.json()["agents"])


@contextlib.asynccontextmanager
async def bench_store(redis_url: str, prefix: str) -> AsyncIterator[Store]:
    """The store of the server under test (its key prefix), for filling and checking."""
    client = connect_redis(redis_url, decode_responses=True)
    try:
        yield Store(client, prefix=prefix)
    finally:
        await client.aclose()


async def logged_events(redis_url: str, prefix: str) -> list[Event]:
    """The bench company's whole log."""
    async with bench_store(redis_url, prefix) as store:
        return await store.events(COMPANY)

"""durability: what ``--durability replicated`` costs an acknowledgement.

The bench's store gets a replica (the same Valkey binary, ``--replicaof``, on
this machine: the replication round trip is loopback's, far below a network's).
Then, for each durability, a fresh server takes ``RATE`` status changes/s over
``AGENTS`` agents for a fixed time, open loop as in churn (each change timed
from when it was due), and the run reports the acks' latency. With
``replicated`` every script run waits (``WAIT``) for the replica to confirm.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator

import redis

from bench.common import (
    Context,
    CpuMeter,
    Result,
    gather_bounded,
    new_prefix,
    p50,
    percentile,
    redis_pid,
    server_under_test,
)
from bench.scenarios.churn import (
    CATCH_UP,
    TICK,
    Agent,
    Tally,
    collector_paused,
    connect_agent,
    send_at_rate,
)
from tests.redis_server import private_redis

RATE = 1000
AGENTS = 200
#: How long the replica may take to be in sync with the store.
SYNC_WITHIN = 30.0


@contextlib.contextmanager
def replica_of(redis_url: str) -> Iterator[None]:
    """A replica of the Valkey at ``redis_url`` until the block ends, once in sync."""
    master = redis.Redis.from_url(redis_url, decode_responses=True)
    pool = master.connection_pool.connection_kwargs
    source = (str(pool.get("host", "127.0.0.1")), str(pool.get("port", 6379)))
    try:
        with private_redis("valkey", options=("--replicaof", *source)):
            deadline = time.monotonic() + SYNC_WITHIN
            while not _in_sync(master):
                if time.monotonic() > deadline:
                    raise RuntimeError("the replica did not sync in time")
                time.sleep(0.1)  # another process's state: nothing to await
            yield
    finally:
        master.close()


def _in_sync(master: redis.Redis) -> bool:
    info = master.info("replication")
    return any(
        isinstance(value, dict) and value.get("state") == "online"
        for key, value in info.items()
        if key.startswith("slave")
    )


async def one_run(ctx: Context, durability: str, seconds: float) -> None:
    tally = Tally()
    env = {"PRESENCE_DURABILITY": durability}
    async with server_under_test(ctx.redis_url, new_prefix(), env) as server:
        agents = [Agent(f"d{i:04d}", tally, lambda _: None) for i in range(AGENTS)]
        await gather_bounded(AGENTS, 50, lambda i: connect_agent(server, agents[i]))
        meter = CpuMeter(server=server.pid, redis=await redis_pid(ctx.redis_url), bench=os.getpid())
        meter.start()
        with collector_paused():
            due = await send_at_rate(agents, RATE, seconds)
            async with asyncio.timeout(CATCH_UP):
                while len(tally.acks) < due and not tally.errors:  # noqa: ASYNC110 - acks arrive by callback
                    await asyncio.sleep(TICK)
        cpu = meter.stop()
        for agent in agents:
            if agent.socket is not None:
                agent.socket.close()
    note = (
        f"{AGENTS} agents, {seconds:.0f} s, one replica on this machine; CPU (cores) "
        f"server {cpu['server']:.2f}, redis {cpu['redis']:.2f}, bench {cpu['bench']:.2f}"
    )
    acks = tally.acks
    ctx.add(
        Result("durability", f"{durability}: changes/s acked", len(acks) / seconds, "/s", "", note),
        Result("durability", f"{durability}: ack p50", p50(acks), "ms"),
        Result("durability", f"{durability}: ack p99", percentile(acks, 99), "ms"),
        Result("durability", f"{durability}: errors", float(len(tally.errors)), "", "<= 0"),
    )


async def run(ctx: Context) -> None:
    seconds = 5.0 if ctx.quick else 10.0
    with replica_of(ctx.redis_url):
        for durability in ("local", "replicated"):
            await one_run(ctx, durability, seconds)

"""churn: status changes persisted and delivered to 10 monitors.

Two runs on one fresh server each:

- **at a fixed rate** (open loop): ``RATE`` changes/s spread over ``AGENTS``
  agents, each change sent at its scheduled time whatever came back before, and
  its latency counted from that time — a slow server can't slow the load down
  and hide its own lag (no coordinated omission). This is the target's test.
- **ceiling** (closed loop): ``CEILING_AGENTS`` agents each with one change in
  flight, sending the next as soon as the ack is back: the most the server
  acks per second, and its latencies when saturated.

Agents and monitors are :mod:`bench.lean_ws` sockets speaking
``presence.v1.msgpack``. A change counts once acked (it is in the log by then).
The monitors subscribe after the agents connected, so they see only the churn;
the n-th event a monitor gets for an agent is that agent's n-th change, since
a monitor receives each agent's events in log order. Send and receipt are read
from the same clock, in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

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
    token,
)
from bench.lean_ws import LeanSocket, lean_connect
from client_sdk.protocol import MSGPACK, decode, encode
from tests.processes import ServerProcess

MONITORS = 10
RATE = 3000
AGENTS = 1000
CEILING_AGENTS = 200
VALUES = ("break", "available")
#: How often the open-loop scheduler wakes to send what has come due.
TICK = 0.005
#: How long the monitors get to deliver the last changes after the load stops.
CATCH_UP = 10.0


@dataclass
class Tally:
    """What one run saw, from this process's clock."""

    #: Per agent, the scheduled (open loop) or actual (closed loop) send times.
    sent: dict[str, list[float]] = field(default_factory=dict)
    acks: list[float] = field(default_factory=list)
    received: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Deliveries expected once the load stops (acks x monitors).
    expected: int = 0
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def check_caught_up(self) -> None:
        if self.expected and len(self.received) >= self.expected:
            self.caught_up.set()


class Agent:
    def __init__(self, name: str, tally: Tally, on_ack: Callable[[Agent], None]) -> None:
        self.name = name
        self.tally = tally
        self.on_ack = on_ack
        self.welcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.socket: LeanSocket | None = None
        self.changes = 0
        tally.sent[name] = []

    def change(self, at: float) -> None:
        assert self.socket is not None
        n = self.changes
        self.tally.sent[self.name].append(at)
        self.socket.send(encode({"t": "status", "value": VALUES[n % 2], "ref": n}, MSGPACK))
        self.changes += 1

    def on_message(self, payload: bytes) -> None:
        frame: dict[str, Any] = decode(payload)
        kind = frame["t"]
        if kind == "ack" and frame.get("event") is not None:
            sent = self.tally.sent[self.name][frame["ref"]]
            self.tally.acks.append((time.perf_counter() - sent) * 1000)
            self.on_ack(self)
        elif kind == "welcome":
            self.welcome.set_result(None)
        elif kind != "state":  # a state push for our own change: nothing to do
            self.tally.errors.append(f"{self.name}: {frame}")


class Monitor:
    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.seen: dict[str, int] = defaultdict(int)
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def on_message(self, payload: bytes) -> None:
        now = time.perf_counter()
        frame: dict[str, Any] = decode(payload)
        if frame["t"] != "event":
            self.replies.put_nowait(frame)
            return
        who = frame["event"]["agent"]
        self.tally.received.append((now - self.tally.sent[who][self.seen[who]]) * 1000)
        self.seen[who] += 1
        self.tally.check_caught_up()


async def connect_agent(server: ServerProcess, agent: Agent) -> None:
    agent.socket = await lean_connect(server.agent_url, MSGPACK, agent.on_message)
    hello = {"t": "hello", "token": token(agent.name), "status": "available"}
    agent.socket.send(encode(hello, MSGPACK))
    await agent.welcome


async def connect_monitor(server: ServerProcess, monitor: Monitor, name: str) -> LeanSocket:
    socket = await lean_connect(server.monitor_url, MSGPACK, monitor.on_message)
    socket.send(encode({"t": "hello", "token": token(name, role="supervisor")}, MSGPACK))
    for sent, expected in (({"t": "subscribe", "ref": 1}, "welcome"), (None, "subscribed")):
        reply = await monitor.replies.get()
        if reply["t"] != expected:
            raise RuntimeError(f"{name}: expected {expected}, got {reply}")
        if sent is not None:
            socket.send(encode(sent, MSGPACK))
    return socket


async def one_run(
    ctx: Context,
    label: str,
    count: int,
    drive: Callable[[list[Agent], Tally], Awaitable[float]],
    targets: bool,
) -> None:
    """Connect ``count`` agents and the monitors to a fresh server, let
    ``drive`` load it (it returns the seconds its rate is over), and add the
    run's results under ``label`` (with the issue's targets when ``targets``)."""
    tally = Tally()
    async with server_under_test(ctx.redis_url, new_prefix()) as server:
        agents = [Agent(f"c{i:04d}", tally, lambda _: None) for i in range(count)]
        await gather_bounded(count, 50, lambda i: connect_agent(server, agents[i]))
        monitors = [Monitor(tally) for _ in range(MONITORS)]
        sockets = await gather_bounded(
            MONITORS, MONITORS, lambda i: connect_monitor(server, monitors[i], f"sup{i}")
        )
        meter = CpuMeter(server=server.pid, redis=await redis_pid(ctx.redis_url), bench=os.getpid())
        meter.start()
        with collector_paused():
            elapsed = await drive(agents, tally)
        cpu = meter.stop()
        tally.expected = len(tally.acks) * MONITORS
        tally.check_caught_up()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tally.caught_up.wait(), CATCH_UP)
        for socket in sockets + [agent.socket for agent in agents if agent.socket]:
            socket.close()
        warnings = server.warnings()
    note = (
        f"{count} agents, {MONITORS} monitors, {elapsed:.0f} s; "
        f"CPU (cores) server {cpu['server']:.2f}, redis {cpu['redis']:.2f}, "
        f"bench {cpu['bench']:.2f}"
    )
    acks, received = tally.acks, tally.received
    rate_target, latency_target = (f">= {RATE}", "<= 50") if targets else ("", "")
    ctx.add(
        Result("churn", f"{label}: changes/s acked", len(acks) / elapsed, "/s", rate_target, note),
        Result("churn", f"{label}: ack p50", p50(acks), "ms"),
        Result("churn", f"{label}: ack p99", percentile(acks, 99), "ms", latency_target),
        Result("churn", f"{label}: monitor receipt p50", p50(received), "ms"),
        Result(
            "churn", f"{label}: monitor receipt p99", percentile(received, 99), "ms", latency_target
        ),
        Result(
            "churn",
            f"{label}: monitor deliveries missing",
            float(tally.expected - len(received)),
            "",
            "<= 0",
            f"of {tally.expected}",
        ),
        Result(
            "churn",
            f"{label}: server warnings logged",
            float(len(warnings)),
            "",
            "<= 0",
            f"e.g. {warnings[0].split(' ', 3)[-1]!r}" if warnings else "",
        ),
        Result(
            "churn",
            f"{label}: errors",
            float(len(tally.errors)),
            "",
            "<= 0",
            tally.errors[0][:200] if tally.errors else "",
        ),
    )


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in the load generator while it measures: a full
    collection here (tens of ms with a thousand sockets) would be read as the
    server's latency. The bench makes little cyclic garbage in that window."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def send_at_rate(agents: list[Agent], rate: int, seconds: float) -> int:
    """``rate`` changes/s for ``seconds``, to ``agents`` in turn, each sent when it
    is due whatever came back before (open loop); how many were sent."""
    began = time.perf_counter()
    due, total = 0, int(seconds * rate)
    while due < total:
        target = min(total, int((time.perf_counter() - began) * rate))
        while due < target:
            # Stamped with when it was due, not when the loop got to it.
            agents[due % len(agents)].change(began + due / rate)
            due += 1
        await asyncio.sleep(TICK)
    return total


def fixed_rate(seconds: float) -> Callable[[list[Agent], Tally], Awaitable[float]]:
    async def drive(agents: list[Agent], tally: Tally) -> float:
        """``RATE`` changes/s for ``seconds``; over once every one is acked."""
        due = await send_at_rate(agents, RATE, seconds)
        # Every change sent gets its ack before the run ends.
        async with asyncio.timeout(CATCH_UP):
            while len(tally.acks) < due and not tally.errors:  # noqa: ASYNC110 - acks arrive by callback
                await asyncio.sleep(TICK)
        # The rate is over the schedule: every change sent in it was acked.
        return seconds

    return drive


def closed_loop(seconds: float) -> Callable[[list[Agent], Tally], Awaitable[float]]:
    async def drive(agents: list[Agent], tally: Tally) -> float:
        """As fast as acks come back, for ``seconds`` and the last acks."""
        began = time.perf_counter()
        stopping = False
        in_flight = len(agents)
        done = asyncio.Event()

        def next_change(agent: Agent) -> None:
            nonlocal in_flight
            if stopping:
                in_flight -= 1
                if in_flight == 0:
                    done.set()
            else:
                agent.change(time.perf_counter())

        for agent in agents:
            agent.on_ack = next_change
            agent.change(time.perf_counter())
        await asyncio.sleep(seconds)
        stopping = True
        await asyncio.wait_for(done.wait(), CATCH_UP)
        return time.perf_counter() - began

    return drive


async def run(ctx: Context) -> None:
    seconds = 5.0 if ctx.quick else 15.0
    await one_run(ctx, f"{RATE}/s", AGENTS, fixed_rate(seconds), targets=True)
    await one_run(ctx, "ceiling", CEILING_AGENTS, closed_loop(seconds), targets=False)

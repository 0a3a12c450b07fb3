"""Load through a failure, for the Sentinel and Cluster tests: agents changing
their status over and over (:class:`Changer`), a monitor that follows every
event and resumes from its cursor (:class:`Watcher`), and what the log must
hold afterwards (:func:`check_nothing_acknowledged_lost`)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed

from client_sdk.protocol import decode
from server.state import Event
from server.store import id_key
from tests.clients import RawAgent, raw_agent, raw_monitor
from tests.timing import seconds

STATUSES = ("available", "break", "meal", "busy", "training")
#: Seconds between two changes of one agent: the load's pace (under the rate
#: limit), not a synchronisation.
PACE = 0.1


@dataclass
class Changer:
    """One agent changing its status over and over, and what it was answered."""

    agent: str
    company: str = "acme"
    #: Each change acknowledged, as (entry id, value), in the order acknowledged.
    acked: list[tuple[str, str]] = field(default_factory=list)
    #: What was answered instead of an ack: "code: message".
    refused: Counter[str] = field(default_factory=Counter)

    async def run(self, url: str, stop: asyncio.Event) -> None:
        raw, _ = await raw_agent(url, self.agent, company=self.company)
        for ref in itertools.count(1):
            if stop.is_set():
                break
            await self.change(raw, ref, STATUSES[ref % len(STATUSES)])
            await asyncio.sleep(PACE)
        await raw.ws.close()

    async def change(self, raw: RawAgent, ref: int, value: str) -> None:
        await raw.send({"t": "status", "value": value, "ref": ref})
        # Up to store_retry, and more on a loaded machine.
        answer = decode(await asyncio.wait_for(raw.ws.recv(), seconds(30)))
        assert answer.get("ref") == ref, answer
        if answer["t"] == "error":
            self.refused[f"{answer['code']}: {answer['message']}"] += 1
        elif answer["event"] is not None:  # None: it was that already (a change refused)
            assert (answer["t"], answer["event"]["value"]) == ("ack", value), answer
            self.acked.append((answer["event"]["id"], value))


@dataclass
class Watcher:
    """A supervisor's monitor that subscribes again from its cursor whenever its
    socket ends, keeping every event it is sent."""

    url: str
    company: str = "acme"
    seen: list[dict[str, Any]] = field(default_factory=list)
    cursor: dict[str, str] | None = None
    closes: list[int | None] = field(default_factory=list)
    #: Subscriptions again that came with a snapshot: events it was not sent.
    resnapshots: int = 0
    moved: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            monitor = await raw_monitor(self.url, subscribe=False, company=self.company)
            cursor = {"cursor": self.cursor} if self.cursor else {}
            subscribed = await monitor.request({"t": "subscribe", "ref": 1, **cursor})
            assert subscribed["t"] == "subscribed", subscribed
            if self.cursor is not None and not subscribed["recovered"]:
                self.resnapshots += 1
            self.cursor = subscribed["cursor"]
            try:
                while True:
                    frame = decode(await monitor.ws.recv())
                    assert frame["t"] == "event", frame
                    assert self.cursor is not None
                    assert id_key(frame["cursor"]["id"]) > id_key(self.cursor["id"])
                    self.cursor = frame["cursor"]
                    self.seen.append(frame["event"])
                    self.moved.set()
            except ConnectionClosed:
                self.closes.append(monitor.ws.close_code)

    async def reached(self, last_id: str) -> None:
        while self.cursor is None or id_key(self.cursor["id"]) < id_key(last_id):
            self.moved.clear()
            await self.moved.wait()


async def progress(
    tasks: list[asyncio.Task[None]], condition: Callable[[], bool], within: float
) -> None:
    """Until ``condition`` holds, checked as the changers go, or one of them fails."""
    async with asyncio.timeout(within):
        while not condition():
            for task in tasks:
                if task.done():
                    task.result()  # raises what it failed with
            await asyncio.sleep(0.05)


def check_acknowledged(
    changers: list[Changer], watcher: Watcher, events: list[Event]
) -> list[tuple[str, str, str]]:
    """What holds whatever a failure cost, given the log's ``events`` afterwards;
    returns the acknowledged changes the log lacks, as (id, agent, value)."""
    logged = [(str(e.id), e.agent, e.value) for e in events]
    lost = []
    for changer in changers:
        acked = [(entry_id, changer.agent, value) for entry_id, value in changer.acked]
        assert [a[0] for a in acked] == sorted((a[0] for a in acked), key=id_key), changer
        kept = [entry for entry in acked if entry in set(logged)]
        # What was kept is in the log in the order acknowledged, the last changes too.
        assert kept == [entry for entry in logged if entry in set(kept)]
        assert kept[-1] == acked[-1], changer
        lost += [entry for entry in acked if entry not in set(kept)]
        # Nothing but store-unavailable, which means "not applied; retry".
        assert set(changer.refused) <= {"store-unavailable: the store is unavailable; retry"}
    # The monitor was sent every logged event since it subscribed, in the log's
    # order (and the lost ones too: it saw them happen).
    seen = [event["id"] for event in watcher.seen]
    logged_ids = [str(e.id) for e in events]
    in_log = [entry_id for entry_id in seen if entry_id in set(logged_ids)]
    assert watcher.resnapshots == 0
    assert in_log == logged_ids[logged_ids.index(in_log[0]) :]
    return lost


def summary(changers: list[Changer], watcher: Watcher, events: list[Event], before: int) -> str:
    """What a failure cost, to print: acknowledged, lost, refused, the monitor's closes."""
    lost = check_acknowledged(changers, watcher, events)
    acked = sum(len(c.acked) for c in changers)
    refused = dict(sum((c.refused for c in changers), Counter()))
    unlogged = {event["id"] for event in watcher.seen} - {str(e.id) for e in events}
    return (
        f"{acked} changes acknowledged ({before} before the fault); lost: {len(lost)}, "
        f"first {lost[:1]}, last {lost[-1:]}; refused: {refused}; monitor: closed "
        f"{watcher.closes}, sent {len(unlogged)} events the log lacks"
    )

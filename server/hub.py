"""Where applied changes meet this instance's agent connections.

The store hands every change it applies to :meth:`Hub.dispatch` at once
(``Store.on_applied``), on the instance that applied it. When a change concerns
a connection held on another instance (a supervisor's or the ACD's change
reaching another instance's agent, a console replaced through another
instance), the store also publishes it through Redis pub/sub, and each instance
dispatches the copies it did not write. For each change the hub

- closes the connection whose hold on the session the change ended, when that
  is not the connection that asked (a replacement: 4509; a kick: 4510) —
  the store has already recorded its ``disconnected``;
- pushes a ``state`` frame to the agent's connection, when someone else (the
  ACD, a supervisor, the call platform) changed it.

Pub/sub is lossy: a console that misses a push sees its true state on its next
ack or reconnect, and a connection whose close was missed can no longer act,
because the store refuses a connection that does not hold its session.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from typing import Any, Final, Protocol

from presence_protocol import CloseCode
from server.state import AgentState, Event
from server.store import Outcome, Store, id_key, now_ms
from server.subscriptions import Subscriptions

__all__ = ["Hub", "LocalConnection"]


#: How a connection is closed when another party ended its hold on the session.
CLOSE_CODE_FOR_REASON: Final = {
    "session-replaced": CloseCode.REPLACED,
    "connection-replaced": CloseCode.REPLACED,
    "kicked": CloseCode.KICKED,
}


#: Seconds a console's welcome waits for its company's channel to be heard; past
#: that (pub/sub down) it is welcomed anyway: pushes are best effort.
LISTEN_PATIENCE: Final = 2.0


class LocalConnection(Protocol):
    conn_id: str
    company: str
    agent: str

    def push_state(self, event: Event, state: AgentState) -> None:
        """Queue a ``state`` frame; must not block."""

    def end(self, code: int, reason: str) -> None:
        """Close the socket: its disconnection is already in the log."""

    async def drain(self) -> None:
        """Record ``server-shutdown`` and close with 1001: the console reconnects elsewhere."""

    async def restore(self) -> None:
        """The store lost its data: record this session again, as it was."""


class Hub:
    def __init__(self, store: Store, subscriptions: Subscriptions) -> None:
        self.store = store
        self.subscriptions = subscriptions
        self._by_conn: dict[str, LocalConnection] = {}
        self._by_agent: dict[tuple[str, str], LocalConnection] = {}
        #: Connections registered per company: its changes channel is listened
        #: to while there is one.
        self._per_company: Counter[str] = Counter()
        #: Our probes awaiting an answer, by id.
        self._questions: dict[str, asyncio.Future[bool]] = {}
        self._replies: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._by_conn)

    def connections(self) -> list[LocalConnection]:
        return list(self._by_conn.values())

    def companies(self) -> list[str]:
        """The companies this instance holds connections of."""
        return list(self._per_company)

    def register(self, connection: LocalConnection) -> None:
        self._by_conn[connection.conn_id] = connection
        self._by_agent[connection.company, connection.agent] = connection
        company = connection.company
        self._per_company[company] += 1
        if self._per_company[company] == 1:
            self.subscriptions.subscribe(self.store.keys.changes(company), self._on_message)

    async def listening(self, company: str) -> None:
        """Until this instance hears ``company``'s changes channel (at most
        :data:`LISTEN_PATIENCE` seconds): a change made elsewhere right after a
        console's welcome reaches it, even when the channel's subscription had to
        open a connection first (the first company on a cluster master)."""
        await self.subscriptions.confirmed(self.store.keys.changes(company), LISTEN_PATIENCE)

    def unregister(self, connection: LocalConnection) -> None:
        if self._by_conn.pop(connection.conn_id, None) is None:
            return
        company = connection.company
        key = (company, connection.agent)
        if self._by_agent.get(key) is connection:
            del self._by_agent[key]
        self._per_company[company] -= 1
        if not self._per_company[company]:
            del self._per_company[company]
            self.subscriptions.unsubscribe(self.store.keys.changes(company))

    def dispatch(self, outcome: Outcome) -> None:
        """Act on one applied change, this instance's or a published copy of another's."""
        closing, holder = self._concerned(
            outcome.company, outcome.agent, outcome.origin, outcome.ended_conn
        )
        if closing is not None:
            reason = next(
                (e.reason for e, _ in outcome.changes if e.value == "disconnected" and e.reason),
                "",
            )
            closing.end(CLOSE_CODE_FOR_REASON.get(reason, CloseCode.NORMAL), reason)
        if holder is not None:
            for event, state in outcome.changes:
                holder.push_state(event, state)

    def _concerned(
        self, company: str, agent: str, origin: str | None, ended: str | None
    ) -> tuple[LocalConnection | None, LocalConnection | None]:
        """This instance's connections a change concerns: the one to close, whose
        hold on the session another party ended, and the one to tell, which holds
        the agent's session and did not ask. Usually neither: a console's own
        change is answered by its ack."""
        closing = self._by_conn.get(ended) if ended and ended != origin else None
        holder = self._by_agent.get((company, agent))
        if holder is not None and holder.conn_id in (origin, ended):
            holder = None
        return closing, holder

    def listen(self) -> None:
        """Hear questions to this instance (other instances' changes are heard
        per company, while it holds connections of that company)."""
        self.subscriptions.subscribe(self.store.keys.control(self.store.instance), self._on_control)

    # The control channel: one per instance, for questions to the instance itself.

    async def holds(self, instance: str, conn_id: str, patience: float) -> bool | None:
        """Ask ``instance`` whether it still holds ``conn_id``: its answer, or
        ``None`` when nobody answers within ``patience`` seconds — the instance is
        gone, whatever its alive key says (that outlives a killed instance by up
        to ``instance_ttl``)."""
        question = {
            "t": "probe",
            "id": os.urandom(8).hex(),
            "conn": conn_id,
            "from": self.store.instance,
        }
        answer = asyncio.get_running_loop().create_future()
        self._questions[question["id"]] = answer
        try:
            # Redis counts the subscribers that got it: none means no instance
            # listens there any more (its connection died with it).
            heard = await self.store.redis.spublish(
                self.store.keys.control(instance), json.dumps(question)
            )
            if not heard:
                return None
            async with asyncio.timeout(patience):
                held: bool = await answer
                return held
        except TimeoutError:
            return None
        finally:
            self._questions.pop(question["id"], None)

    async def _answer(self, instance: str, reply: str) -> None:
        await self.store.redis.spublish(self.store.keys.control(instance), reply)

    def _on_control(self, channel: str, data: str) -> None:
        message = json.loads(data)
        if message["t"] == "probe":
            reply = {"t": "held", "id": message["id"], "held": message["conn"] in self._by_conn}
            task = asyncio.get_running_loop().create_task(
                self._answer(message["from"], json.dumps(reply))
            )
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)
        elif message["t"] == "held":
            answer = self._questions.get(message["id"])
            if answer is not None and not answer.done():
                answer.set_result(bool(message["held"]))

    def _on_message(self, channel: str, data: str) -> None:
        payload = json.loads(data)
        if payload.get("instance") == self.store.instance:
            return
        self._observe_lag(payload)
        company = self.store.keys.company_of(channel)
        # Most copies concern no connection here: look before parsing them.
        concerned = self._concerned(
            company, payload["agent"], payload.get("origin") or None, payload.get("ended_conn")
        )
        if concerned != (None, None):
            self.dispatch(Outcome.from_result(company, payload))

    def _observe_lag(self, payload: dict[str, Any]) -> None:
        # From the entry id (Redis's clock when appended), not the event's ts:
        # a disconnection written after an outage carries the time it happened.
        received = now_ms()
        for change in payload.get("changes") or ():
            appended, _ = id_key(change["event"]["id"])
            # Clamped: this host's clock may run a little behind Redis's.
            self.store.observer.pubsub_lag(max(0, received - appended) / 1000)

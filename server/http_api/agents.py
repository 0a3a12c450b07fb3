"""Agents: ``GET /v1/agents``, ``/v1/agents/{agent}`` and ``/v1/stats``.

Reads only. Apart, because the ACD's "who is available" is the hottest read:
its filter and its idle order (:func:`idle_order`, also the stats' longest idle)
are kept together here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from presence_protocol import ErrorCode
from server.errors import Refused
from server.http_api.requests import (
    READERS,
    authorize,
    is_identifier,
    is_status,
    one_of,
    path_agent,
    query,
    query_count,
    runtime_of,
)
from server.state import AgentState

__all__ = [
    "ACTIVITIES",
    "CONNECTIONS",
    "AgentFilter",
    "get_agent",
    "idle_order",
    "list_agents",
    "stats",
]

CONNECTIONS: Final = ("online", "offline")
ACTIVITIES: Final = ("idle", "occupying", "in-call", "meeting")


@dataclass(frozen=True, slots=True)
class AgentFilter:
    """The filters of ``GET /v1/agents``, combined with AND; ``None`` filters nothing."""

    segment: str | None = None
    routable: bool | None = None
    connection: str | None = None
    status: str | None = None
    activity: str | None = None

    def matches(self, state: AgentState) -> bool:
        return (
            (self.segment is None or self.segment in state.segments)
            and (self.routable is None or state.routable == self.routable)
            and (self.connection is None or state.connection == self.connection)
            and (self.status is None or state.status == self.status)
            and (self.activity is None or state.activity == self.activity)
        )


def idle_order(state: AgentState) -> tuple[bool, int, str]:
    """Routable first, longest idle first, ties (and everyone else) by agent id."""
    return (not state.routable, state.idle_since or 0, state.agent)


async def list_agents(request: Request) -> Response:
    identity = authorize(request, READERS)
    routable = query(request, "routable", one_of("true", "false"), "true or false")
    wanted = AgentFilter(
        segment=query(request, "segment", is_identifier, "an identifier"),
        routable=None if routable is None else routable == "true",
        connection=query(request, "connection", one_of(*CONNECTIONS), "online or offline"),
        status=query(request, "status", is_status, "a status value"),
        activity=query(request, "activity", one_of(*ACTIVITIES), "|".join(ACTIVITIES)),
    )
    order = query(request, "order", one_of("idle", "agent"), "idle or agent") or "agent"
    limit = query_count(request, "limit")
    store = runtime_of(request).store
    if wanted.routable:
        # The routable index is already in idle order: with 5,000 agents, the
        # ACD's "who is available" must not load the ones who are not. Its limit
        # is safe: the other filters hold for every routable agent or for none.
        candidates = await store.idle_states(
            identity.company, segment=wanted.segment, limit=limit if order == "idle" else None
        )
    else:
        candidates = list((await store.states(identity.company)).values())
    agents = sorted(
        (state for state in candidates if wanted.matches(state)),
        key=idle_order if order == "idle" else lambda state: state.agent,
    )
    return JSONResponse({"agents": [state.to_wire() for state in agents[:limit]]})


async def get_agent(request: Request) -> Response:
    identity = authorize(request, READERS)
    agent = path_agent(request)
    state = await runtime_of(request).store.state(identity.company, agent)
    if state is None:
        raise Refused(ErrorCode.NOT_FOUND, f"agent {agent} has never connected")
    return JSONResponse(state.to_wire())


async def stats(request: Request) -> Response:
    identity = authorize(request, READERS)
    segment = query(request, "segment", is_identifier, "an identifier")
    store = runtime_of(request).store
    config = await store.config(identity.company)
    states = [
        state
        for state in (await store.states(identity.company)).values()
        if segment is None or segment in state.segments
    ]
    routable = [state for state in states if state.routable]
    longest = min(routable, key=idle_order, default=None)

    def counts(keys: Iterable[str], values: Iterable[str | None]) -> dict[str, int]:
        # Every known value, even at zero, so a wallboard's columns stay put.
        return dict.fromkeys(keys, 0) | Counter(value for value in values if value)

    return JSONResponse(
        {
            "total": len(states),
            "connection": counts(CONNECTIONS, (state.connection for state in states)),
            "status": counts(("available", *config.statuses), (state.status for state in states)),
            "activity": counts(ACTIVITIES, (state.activity for state in states)),
            "routable": len(routable),
            "longest_idle": None
            if longest is None
            else {"agent": longest.agent, "idle_since": longest.idle_since},
        }
    )

"""The reference model of the agent state machine (spec §2–§3): pure functions
over plain data, stating the rules in Python.

**What runs is not this module.** The server applies every change with the
Redis script ``lua/apply.lua``, atomically. This model is what the script is
checked against: ``tests/test_transitions.py`` runs one table of cases through
both and requires the same events, refusals and states, and every end-to-end
test replays the log through :func:`evolve` and compares it with what the
server serves. A rule change is made in both, or the tests fail.

A change is *decided* against the current state, giving the events it causes
or a :class:`Refused` with the spec's code; each event then *evolves* the
state. Replaying a company's log is a fold of :func:`evolve`::

    events = decide(state, SetStatus("break", by_user=True), config, now=ts)
    for event in events:
        state = evolve(state, event)

Nothing here reads the clock, touches I/O or knows about sessions' time to
live or which socket holds a session: those belong to the store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from presence_protocol import ACD_VALUES, ErrorCode
from server.errors import Refused
from server.state import (
    ACD,
    DISCONNECT_REASONS,
    OFFLINE,
    ONLINE,
    SYSTEM_CHANGED,
    USER_CHANGED,
    AgentState,
    CompanyConfig,
    Event,
)

__all__ = [
    "Acd",
    "Activity",
    "Change",
    "Connect",
    "Disconnect",
    "Refused",
    "Resume",
    "SetStatus",
    "decide",
    "evolve",
    "replay",
]

#: What each activity-driving value sets the agent's activity to.
ACTIVITY_AFTER: Final[Mapping[str, str]] = {
    "occupying": "occupying",
    "releasing": "idle",
    "timeout": "idle",
    "in-call": "in-call",
    "end-call": "idle",
    "dismiss": "idle",
    "meeting": "meeting",
    "meeting-end": "idle",
}
CONNECTION_AFTER: Final[Mapping[str, str]] = {
    "connected": ONLINE,
    "reconnected": ONLINE,
    "disconnected": OFFLINE,
}


# Changes: what someone asks for. ``decide`` turns one into events.


@dataclass(frozen=True, slots=True)
class Connect:
    """A console opens a new session."""

    session: str
    segments: tuple[str, ...] = ()
    #: The status the console asked for in ``hello``, if any.
    status: str | None = None
    #: Put back by the server after the store lost its data: the status is the
    #: one the session had, set by the system rather than by the agent.
    restored: bool = False


@dataclass(frozen=True, slots=True)
class Resume:
    """A console comes back to a session the store still holds as resumable."""

    session: str
    segments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason: str


@dataclass(frozen=True, slots=True)
class SetStatus:
    value: str
    #: The agent by hand (``status-changed-user``) or the system/a supervisor.
    by_user: bool


@dataclass(frozen=True, slots=True)
class Activity:
    """A call activity from the console or the call platform."""

    value: str


@dataclass(frozen=True, slots=True)
class Acd:
    value: str
    reason: str | None = None


Change = Connect | Resume | Disconnect | SetStatus | Activity | Acd


def decide(state: AgentState, change: Change, config: CompanyConfig, now: int) -> list[Event]:
    """The events ``change`` causes for an agent in ``state``.

    A never-seen agent is ``AgentState(agent)``, whose ``version`` is ``None``.

    Raises :class:`Refused` when a precondition of the spec §3 table fails. An
    empty list means the change is allowed but changes nothing (a status set to
    what it already is).
    """
    match change:
        case Connect():
            return _connect(state, change, config, now)
        case Resume():
            return _resume(state, change, now)
    if state.version is None:
        raise Refused(ErrorCode.NOT_FOUND, "this agent has never connected")
    agent, session = state.agent, state.session

    def event(kind: str, value: str, reason: str | None = None) -> Event:
        return Event(now, agent, session, kind, value, reason)

    match change:
        case Disconnect(reason):
            if reason not in DISCONNECT_REASONS:
                raise Refused(ErrorCode.BAD_REQUEST, f"unknown disconnect reason {reason!r}")
            _require(state.online, "disconnected", "the agent is not online")
            return [event(SYSTEM_CHANGED, "disconnected", reason)]
        case SetStatus(value, by_user):
            _check_status(value, config)
            if by_user:
                _require(state.online, value, "the agent is not online")
            if value == state.status:
                return []
            return [event(USER_CHANGED if by_user else SYSTEM_CHANGED, value)]
        case Activity(value):
            _require_activity(state, value)
            return [event(SYSTEM_CHANGED, value)]
        case Acd(value, reason):
            return _acd(state, value, reason, config, event)
    raise AssertionError(f"unknown change {change!r}")  # pragma: no cover


def _connect(state: AgentState, change: Connect, config: CompanyConfig, now: int) -> list[Event]:
    if change.status is not None:
        _check_status(change.status, config)
    agent = state.agent
    events = []
    if state.online:
        # Invariant 2: the old session goes offline, and ends, before the new one starts.
        events.append(
            Event(
                now, state.agent, state.session, SYSTEM_CHANGED, "disconnected", "session-replaced"
            )
        )
    events.append(
        Event(now, agent, change.session, SYSTEM_CHANGED, "connected", segments=change.segments)
    )
    if change.status is not None:
        initial, kind = change.status, SYSTEM_CHANGED if change.restored else USER_CHANGED
    else:
        initial, kind = config.initial_status, SYSTEM_CHANGED
    if initial != state.status:
        events.append(Event(now, agent, change.session, kind, initial))
    return events


def _resume(state: AgentState, change: Resume, now: int) -> list[Event]:
    if state.session != change.session:
        raise Refused(ErrorCode.INVALID_TRANSITION, "that session is not this agent's")
    events = []
    if state.online:
        events.append(
            Event(
                now,
                state.agent,
                state.session,
                SYSTEM_CHANGED,
                "disconnected",
                "connection-replaced",
            )
        )
    events.append(
        Event(
            now, state.agent, state.session, SYSTEM_CHANGED, "reconnected", segments=change.segments
        )
    )
    return events


def _acd(
    state: AgentState,
    value: str,
    reason: str | None,
    config: CompanyConfig,
    event: Callable[..., Event],
) -> list[Event]:
    if value not in ACD_VALUES:
        raise Refused(ErrorCode.BAD_REQUEST, f"{value!r} is not an ACD action")
    if value in ("occupying", "releasing") and config.acd_mode != "circular":
        raise Refused(ErrorCode.ACD_MODE, f"{value} needs acd_mode circular")
    if value == "occupying":
        _require(state.routable, value, "the agent is not routable")
        return [event(ACD, value)]
    if value == "releasing":
        _require(state.activity == "occupying", value, "the agent is not occupied")
        return [event(ACD, value, reason)]
    # timeout
    _require(
        state.online or state.activity == "occupying",
        value,
        "the agent is neither online nor occupied",
    )
    events = [event(ACD, value)]
    if config.timeout_status is not None and config.timeout_status != state.status:
        events.append(event(SYSTEM_CHANGED, config.timeout_status))
    return events


def _require_activity(state: AgentState, value: str) -> None:
    if value == "in-call":
        _require(
            state.online and state.activity in ("idle", "occupying"),
            value,
            "the agent must be online and idle or occupied",
        )
    elif value == "end-call":
        _require(state.activity == "in-call", value, "the agent is not in a call")
    elif value == "dismiss":
        _require(state.online, value, "the agent is not online")
    elif value == "meeting":
        _require(
            state.online and state.activity == "idle", value, "the agent must be online and idle"
        )
    elif value == "meeting-end":
        _require(state.activity == "meeting", value, "the agent is not in a meeting")
    else:
        raise Refused(ErrorCode.BAD_REQUEST, f"{value!r} is not an activity")


def _check_status(value: str, config: CompanyConfig) -> None:
    if not config.allows(value):
        raise Refused(ErrorCode.UNKNOWN_STATUS, f"{value!r} is not one of the company's statuses")


def _require(condition: bool, value: str, why: str) -> None:
    if not condition:
        raise Refused(ErrorCode.INVALID_TRANSITION, f"{value}: {why}")


def evolve(state: AgentState, event: Event) -> AgentState:
    """The state after ``event``."""
    since = dict(state.since)
    changes: dict[str, Any] = {"version": event.id}
    if event.value in CONNECTION_AFTER:
        changes["connection"] = CONNECTION_AFTER[event.value]
        if event.value == "connected":
            changes["session"] = event.session
            changes["activity"] = "idle"
        if event.segments is not None:
            changes["segments"] = event.segments
    elif event.value in ACTIVITY_AFTER:
        changes["activity"] = ACTIVITY_AFTER[event.value]
    else:
        changes["status"] = event.value
    for name in ("connection", "status", "activity"):
        if name in changes and (changes[name] != getattr(state, name) or since[name] is None):
            since[name] = event.ts
    changes["since"] = since
    after = dataclasses.replace(state, **changes)
    if not after.routable:
        after = dataclasses.replace(after, idle_since=None)
    elif not state.routable:
        after = dataclasses.replace(after, idle_since=event.ts)
    return after


def replay(events: Iterable[Event]) -> dict[str, AgentState]:
    """Every agent's state after a company's log, in order."""
    states: dict[str, AgentState] = {}
    for event in events:
        states[event.agent] = evolve(states.get(event.agent) or AgentState(event.agent), event)
    return states

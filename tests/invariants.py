"""The spec §3 invariants, checked over a company's whole log.

Anyone who replays the log can run these; every end-to-end test does, at
teardown, for every company it touched.
"""

from __future__ import annotations

import re
from collections import defaultdict

from server.reference_model import evolve, replay
from server.state import AgentState, Event
from server.store import ORIGIN, Store, id_key

#: Invariant 1, over one session's connection events (c, d, r).
SESSION_GRAMMAR = re.compile(r"c(dr)*d?")
CONNECTION_LETTER = {"connected": "c", "disconnected": "d", "reconnected": "r"}
#: What may stand between two ``occupying`` of one agent (invariant 4).
FREES_AN_AGENT = {"releasing", "timeout", "dismiss", "in-call", "connected"}


def check_sessions(events: list[Event], trimmed: bool = False) -> None:
    """Invariant 1: per session, ``connected (disconnected reconnected)* disconnected?``.

    In a log whose head retention trimmed, a session may have lost its start:
    only sessions seen from their ``connected`` are checked.
    """
    letters: dict[str | None, str] = defaultdict(str)
    for event in events:
        if event.value in CONNECTION_LETTER:
            letters[event.session] += CONNECTION_LETTER[event.value]
    for session, sequence in letters.items():
        if trimmed and not sequence.startswith("c"):
            continue
        assert SESSION_GRAMMAR.fullmatch(sequence), f"session {session}: {sequence}"


def check_one_online_session(events: list[Event]) -> None:
    """Invariant 2: an agent has at most one online session at a time."""
    online: dict[str, str | None] = {}
    for event in events:
        if event.value in ("connected", "reconnected"):
            assert online.get(event.agent) is None, f"{event.agent}: two online sessions at {event}"
            online[event.agent] = event.session
        elif event.value == "disconnected":
            assert online.get(event.agent) == event.session, f"{event} while not online"
            online[event.agent] = None


def check_no_double_occupation(events: list[Event]) -> None:
    """Invariant 4: never ``occupying`` twice without something freeing the agent between."""
    occupied: set[str] = set()
    for event in events:
        if event.value == "occupying":
            assert event.agent not in occupied, f"{event.agent} occupied twice: {event}"
            occupied.add(event.agent)
        elif event.value in FREES_AN_AGENT:
            occupied.discard(event.agent)


def check_entry_states(
    entries: list[tuple[Event, AgentState]], trimmed: bool = False
) -> dict[str, AgentState]:
    """Each entry's state is the fold of the log up to it (what monitors are served).

    In a trimmed log each agent's first remaining entry seeds its fold.
    """
    states: dict[str, AgentState] = {}
    for event, state in entries:
        if trimmed and event.agent not in states:
            states[event.agent] = state
            continue
        states[event.agent] = evolve(states.get(event.agent) or AgentState(event.agent), event)
        assert states[event.agent] == state, f"entry {event.id} carries {state}"
    return states


async def check_company(store: Store, company: str) -> list[Event]:
    """Every invariant, and invariant 3: the replayed log is the served state."""
    entries = await store.entries(company, ORIGIN, count=10**7)
    events = [event for event, _ in entries]
    ids = [str(event.id) for event in events]
    assert ids == sorted(ids, key=id_key)
    trimmed = not await store.recoverable_after(company, ORIGIN)
    check_sessions(events, trimmed)
    check_no_double_occupation(events)
    replayed = check_entry_states(entries, trimmed)
    stored = await store.states(company)
    if trimmed:
        # Agents whose every entry was trimmed keep their state, with no log behind it.
        stored = {agent: state for agent, state in stored.items() if agent in replayed}
    else:
        check_one_online_session(events)
        assert replayed == replay(events)
    assert replayed == stored
    return events

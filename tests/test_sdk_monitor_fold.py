"""The live monitor's pure fold: a snapshot plus ordered events, no sockets."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from client_sdk import Cursor, MonitorEvent, apply_event, apply_snapshot


def state(
    agent: str, *, version: str, segments: tuple[str, ...] = (), **fields: Any
) -> dict[str, Any]:
    """An agent state of spec §2's shape, available unless ``fields`` say otherwise."""
    return {
        "agent": agent,
        "session": f"s-{agent}",
        "connection": "online",
        "status": "available",
        "activity": "idle",
        "routable": True,
        "segments": list(segments),
        "since": {"connection": 1, "status": 1, "activity": 1},
        "idle_since": 1,
        "version": version,
        **fields,
    }


def event_frame(after: dict[str, Any], value: str, *, epoch: str = "e1") -> dict[str, Any]:
    """The ``event`` frame that leads to the state ``after``."""
    event = {
        "id": after["version"],
        "ts": 1,
        "agent": after["agent"],
        "session": after["session"],
        "type": "status-changed-user",
        "value": value,
        "reason": None,
    }
    return {
        "t": "event",
        "event": event,
        "state": after,
        "cursor": {"epoch": epoch, "id": after["version"]},
    }


def test_snapshot_keys_states_by_agent() -> None:
    a1, a2 = state("a-1", version="5-1"), state("a-2", version="5-2")
    assert apply_snapshot([a1, a2]) == {"a-1": a1, "a-2": a2}
    assert apply_snapshot([]) == {}


def test_snapshot_needs_agent_ids() -> None:
    with pytest.raises(ValueError, match="agent id"):
        apply_snapshot([{"status": "available"}])


def test_events_fold_in_order_and_leave_the_old_view_alone() -> None:
    before = apply_snapshot([state("a-1", version="5-1"), state("a-2", version="5-2")])
    busy = state("a-1", version="6-0", status="busy", routable=False, idle_since=None)
    newcomer = state("a-3", version="6-1")
    after = apply_event(apply_event(before, event_frame(busy, "busy")), event_frame(newcomer, "x"))
    assert after == {"a-1": busy, "a-2": before["a-2"], "a-3": newcomer}
    assert before["a-1"]["status"] == "available" and "a-3" not in before


def test_the_three_shapes_of_a_change_fold_alike() -> None:
    view = apply_snapshot([state("a-1", version="5-1")])
    after = state("a-1", version="5-2", status="break", routable=False)
    frame = event_frame(after, "break")
    change = MonitorEvent(frame["event"], after, Cursor("e1", "5-2"))
    expected = {"a-1": after}
    assert apply_event(view, frame) == expected
    assert apply_event(view, (frame["event"], after)) == expected
    assert apply_event(view, change) == expected


def test_a_change_needs_a_state() -> None:
    with pytest.raises(ValueError, match="state"):
        apply_event({}, {"t": "event", "event": {}})
    with pytest.raises(ValueError, match="agent id"):
        apply_event({}, ({}, {"status": "busy"}))


def test_a_segment_view_drops_agents_that_left_the_segment() -> None:
    view = apply_snapshot(
        [state("a-1", version="5-1", segments=("sales",)), state("a-2", version="5-2")]
    )
    moved = state("a-1", version="6-0", segments=("support",))
    assert apply_event(view, event_frame(moved, "reconnected"), segment="sales") == {
        "a-2": view["a-2"]
    }
    # An agent outside the segment doesn't come in; one that joins it does.
    outsider = state("a-9", version="6-1", segments=("support",))
    joined = state("a-8", version="6-2", segments=("support", "sales"))
    view = apply_event(view, event_frame(outsider, "connected"), segment="sales")
    view = apply_event(view, event_frame(joined, "connected"), segment="sales")
    assert set(view) == {"a-1", "a-2", "a-8"}


def test_without_a_segment_every_agent_stays() -> None:
    view = apply_snapshot([state("a-1", version="5-1", segments=("sales",))])
    moved = state("a-1", version="6-0", segments=())
    assert apply_event(view, event_frame(moved, "reconnected")) == {"a-1": moved}


@pytest.mark.parametrize(
    ("later", "earlier"),
    [
        ("5-10", "5-9"),  # a string comparison gets this one wrong
        ("10-0", "9-99"),
        ("1732400000001-0", "1732400000000-3"),
        ("5-1", "5-0"),
    ],
)
def test_cursor_ids_compare_as_numbers(later: str, earlier: str) -> None:
    assert Cursor("e1", later).follows(Cursor("e1", earlier))
    assert not Cursor("e1", earlier).follows(Cursor("e1", later))


def test_a_cursor_does_not_follow_itself() -> None:
    assert not Cursor("e1", "5-9").follows(Cursor("e1", "5-9"))


def test_cursors_of_different_epochs_do_not_compare() -> None:
    with pytest.raises(ValueError, match="epochs"):
        Cursor("e2", "1-0").follows(Cursor("e1", "9-0"))


@pytest.mark.parametrize("entry", ["5", "5-", "-5", "5-x", "+5-1", " 5-1", "5_0-1", "", "5-1-2"])
def test_a_cursor_needs_a_stream_id(entry: str) -> None:
    with pytest.raises(ValueError, match="not a cursor"):
        Cursor("e1", entry)


def test_a_cursor_round_trips_through_storage() -> None:
    cursor = Cursor("e1", "5-10")
    assert Cursor(**dataclasses.asdict(cursor)) == cursor
    assert cursor.to_wire() == {"epoch": "e1", "id": "5-10"}


def test_duplicates_are_dropped_by_cursor() -> None:
    """How a monitor folds a stream that repeats itself: only changes after its cursor."""
    view = apply_snapshot([state("a-1", version="5-8")])
    cursor = Cursor("e1", "5-8")
    states = [state("a-1", version=f"5-{n}", status=f"s{n}") for n in (9, 10)]
    frames = [event_frame(s, s["status"]) for s in states]
    folded = []
    # A resend of everything, then of 5-9 alone: "5-9" > "5-10" as strings, not as ids.
    for frame in [*frames, *frames, frames[0]]:
        change = MonitorEvent(frame["event"], frame["state"], Cursor(**frame["cursor"]))
        if change.cursor.follows(cursor):
            view, cursor = apply_event(view, change), change.cursor
            folded.append(change.cursor.id)
    assert folded == ["5-9", "5-10"]
    assert view == {"a-1": states[-1]} and cursor == Cursor("e1", "5-10")

"""Every row of spec §3, allowed and refused, through both implementations.

The same table runs through the reference model (``server.reference_model``)
and through what runs, the store's Lua script, against a real Redis; both must give the same
events (type, value, reason), the same refusal code, and the same state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from server.errors import Refused, StaleConnection
from server.reference_model import (
    Acd,
    Activity,
    Change,
    Connect,
    Disconnect,
    Resume,
    SetStatus,
    decide,
    evolve,
)
from server.state import AgentState, CompanyConfig
from server.store import RETRY_IN_FLIGHT, Store
from tests.invariants import check_company

BROADCAST = CompanyConfig(acd_mode="broadcast")
TIMEOUT_TO_BREAK = CompanyConfig(timeout_status="break")

# Starting points, as the changes that lead there from a never-seen agent.
NEVER: list[Change] = []
ONLINE_BUSY: list[Change] = [Connect("s")]
ROUTABLE = [*ONLINE_BUSY, SetStatus("available", by_user=True)]
OCCUPYING = [*ROUTABLE, Acd("occupying")]
IN_CALL = [*ROUTABLE, Activity("in-call")]
MEETING = [*ROUTABLE, Activity("meeting")]
OFFLINE = [*ROUTABLE, Disconnect("transport-closed")]
OFFLINE_OCCUPYING = [*OCCUPYING, Disconnect("transport-closed")]
OFFLINE_IN_CALL = [*IN_CALL, Disconnect("heartbeat-timeout")]


@dataclass(frozen=True)
class Case:
    name: str
    start: list[Change]
    change: Change
    #: (type, value, reason) of each event, or the refusal's code.
    expect: list[tuple[str, str, str | None]] | str
    config: CompanyConfig = field(default_factory=CompanyConfig)


SC, USER, ACD = "status-changed", "status-changed-user", "acd"

CASES = [
    # connected: a new session, then the initial status where it differs.
    Case(
        "connected first time", NEVER, Connect("s2"), [(SC, "connected", None), (SC, "busy", None)]
    ),
    Case(
        "connected asks a status",
        NEVER,
        Connect("s2", status="break"),
        [(SC, "connected", None), (USER, "break", None)],
    ),
    Case("connected asks an unknown status", NEVER, Connect("s2", status="nap"), "unknown-status"),
    Case(
        "connected restored after data loss",
        NEVER,
        Connect("s2", status="meal", restored=True),
        [(SC, "connected", None), (SC, "meal", None)],
    ),
    Case(
        "connected keeps an equal status",
        OFFLINE,
        Connect("s2", status="available"),
        [(SC, "connected", None)],
    ),
    Case(
        "connected resets the activity",
        OFFLINE_IN_CALL,
        Connect("s2"),
        [(SC, "connected", None), (SC, "busy", None)],
    ),
    Case(
        "connected replaces an online session",
        ROUTABLE,
        Connect("s2"),
        [(SC, "disconnected", "session-replaced"), (SC, "connected", None), (SC, "busy", None)],
    ),
    # reconnected: the same session resumed.
    Case("reconnected while offline", OFFLINE, Resume("s"), [(SC, "reconnected", None)]),
    Case("reconnected keeps activity", OFFLINE_IN_CALL, Resume("s"), [(SC, "reconnected", None)]),
    Case(
        "reconnected over a live connection",
        ROUTABLE,
        Resume("s"),
        [(SC, "disconnected", "connection-replaced"), (SC, "reconnected", None)],
    ),
    # disconnected
    Case(
        "disconnected while online",
        ROUTABLE,
        Disconnect("heartbeat-timeout"),
        [(SC, "disconnected", "heartbeat-timeout")],
    ),
    Case("disconnected while offline", OFFLINE, Disconnect("client-closed"), "invalid-transition"),
    # status by the agent
    Case(
        "user status",
        ONLINE_BUSY,
        SetStatus("available", by_user=True),
        [(USER, "available", None)],
    ),
    Case("user custom status", ROUTABLE, SetStatus("meal", by_user=True), [(USER, "meal", None)]),
    Case("user status unchanged", ROUTABLE, SetStatus("available", by_user=True), []),
    Case("user status offline", OFFLINE, SetStatus("break", by_user=True), "invalid-transition"),
    Case("user status unknown", ROUTABLE, SetStatus("nap", by_user=True), "unknown-status"),
    Case("user status of a never-seen agent", NEVER, SetStatus("break", by_user=True), "not-found"),
    # status by the system or a supervisor: no precondition
    Case(
        "system status offline", OFFLINE, SetStatus("break", by_user=False), [(SC, "break", None)]
    ),
    Case("system status unknown", OFFLINE, SetStatus("nap", by_user=False), "unknown-status"),
    Case("system status unchanged", ONLINE_BUSY, SetStatus("busy", by_user=False), []),
    # occupying
    Case("occupying routable", ROUTABLE, Acd("occupying"), [(ACD, "occupying", None)]),
    Case("occupying not available", ONLINE_BUSY, Acd("occupying"), "invalid-transition"),
    Case("occupying twice", OCCUPYING, Acd("occupying"), "invalid-transition"),
    Case("occupying offline", OFFLINE, Acd("occupying"), "invalid-transition"),
    Case("occupying in broadcast", ROUTABLE, Acd("occupying"), "acd-mode", BROADCAST),
    # releasing
    Case(
        "releasing occupied",
        OCCUPYING,
        Acd("releasing", "client-abandoned"),
        [(ACD, "releasing", "client-abandoned")],
    ),
    Case("releasing without reason", OCCUPYING, Acd("releasing"), [(ACD, "releasing", None)]),
    Case("releasing not occupied", ROUTABLE, Acd("releasing"), "invalid-transition"),
    Case("releasing in broadcast", ROUTABLE, Acd("releasing"), "acd-mode", BROADCAST),
    # timeout
    Case("timeout online", OCCUPYING, Acd("timeout"), [(ACD, "timeout", None)]),
    Case("timeout occupied offline", OFFLINE_OCCUPYING, Acd("timeout"), [(ACD, "timeout", None)]),
    Case("timeout offline idle", OFFLINE, Acd("timeout"), "invalid-transition"),
    Case("timeout in broadcast", ROUTABLE, Acd("timeout"), [(ACD, "timeout", None)], BROADCAST),
    Case(
        "timeout sets timeout_status",
        OCCUPYING,
        Acd("timeout"),
        [(ACD, "timeout", None), (SC, "break", None)],
        TIMEOUT_TO_BREAK,
    ),
    Case("unknown ACD action", ROUTABLE, Acd("ringing"), "bad-request"),
    # in-call / end-call
    Case("in-call from idle", ROUTABLE, Activity("in-call"), [(SC, "in-call", None)]),
    Case("in-call from occupying", OCCUPYING, Activity("in-call"), [(SC, "in-call", None)]),
    Case("in-call from meeting", MEETING, Activity("in-call"), "invalid-transition"),
    Case("in-call offline", OFFLINE, Activity("in-call"), "invalid-transition"),
    Case("end-call", IN_CALL, Activity("end-call"), [(SC, "end-call", None)]),
    Case(
        "end-call offline in call", OFFLINE_IN_CALL, Activity("end-call"), [(SC, "end-call", None)]
    ),
    Case("end-call not in call", ROUTABLE, Activity("end-call"), "invalid-transition"),
    # dismiss
    Case("dismiss occupied", OCCUPYING, Activity("dismiss"), [(SC, "dismiss", None)]),
    Case("dismiss idle", ROUTABLE, Activity("dismiss"), [(SC, "dismiss", None)]),
    Case("dismiss offline", OFFLINE_OCCUPYING, Activity("dismiss"), "invalid-transition"),
    # meeting / meeting-end
    Case("meeting from idle", ROUTABLE, Activity("meeting"), [(SC, "meeting", None)]),
    Case("meeting in call", IN_CALL, Activity("meeting"), "invalid-transition"),
    Case("meeting offline", OFFLINE, Activity("meeting"), "invalid-transition"),
    Case("meeting-end", MEETING, Activity("meeting-end"), [(SC, "meeting-end", None)]),
    Case("meeting-end not in meeting", ROUTABLE, Activity("meeting-end"), "invalid-transition"),
    Case("unknown activity", ROUTABLE, Activity("ringing"), "bad-request"),
]

NOW = 1_732_400_000_000


def comparable(state: AgentState) -> dict[str, Any]:
    """The state minus what each implementation names on its own (ids)."""
    wire = state.to_wire()
    del wire["version"], wire["session"]
    return wire


def run_pure(case: Case) -> tuple[list[tuple[str, str, str | None]] | str, AgentState]:
    state = AgentState("a-1")
    for step, change in enumerate([*case.start, case.change]):
        now = NOW + step * 1000
        try:
            events = decide(state, change, case.config, now)
        except Refused as refused:
            if step < len(case.start):
                raise AssertionError(f"setup step {change} refused") from refused
            return refused.code.value, state
        for number, event in enumerate(events):
            # Stand-in ids: versions are compared for presence only.
            state = evolve(state, _with_id(event, f"{now}-{number}"))
    return [(e.type, e.value, e.reason) for e in events], state


def _with_id(event: Any, entry_id: str) -> Any:
    from dataclasses import replace

    return replace(event, id=entry_id)


async def run_store(
    store: Store, case: Case
) -> tuple[list[tuple[str, str, str | None]] | str, AgentState]:
    await store.put_config("acme", case.config)
    conn_number = 0
    session: str | None = None
    outcome = None
    for step, change in enumerate([*case.start, case.change]):
        now = NOW + step * 1000
        try:
            match change:
                case Connect(session_id, segments, status, restored):
                    conn_number += 1
                    outcome = await store.hello(
                        "acme",
                        "a-1",
                        conn=f"test/{conn_number}",
                        now=now,
                        session=session_id if restored else None,
                        segments=segments,
                        status=status,
                        restore=restored,
                    )
                    session = outcome.session
                    assert session == session_id or not restored
                case Resume(_, segments):
                    conn_number += 1
                    outcome = await store.hello(
                        "acme",
                        "a-1",
                        conn=f"test/{conn_number}",
                        now=now,
                        session=session,
                        segments=segments,
                    )
                    assert outcome.resumed
                case Disconnect(reason):
                    # As the server does for a kick or a lost instance: whoever holds it.
                    outcome = await store.disconnect("acme", "a-1", reason=reason, now=now)
                case SetStatus(value, by_user):
                    outcome = await store.set_status("acme", "a-1", value, by_user=by_user, now=now)
                case Activity(value):
                    outcome = await store.activity("acme", "a-1", value, now=now)
                case Acd(value, reason):
                    outcome = await store.acd("acme", "a-1", value, now=now, reason=reason)
        except Refused as refused:
            if step < len(case.start):
                raise AssertionError(f"setup step {change} refused") from refused
            state = await store.state("acme", "a-1")
            return refused.code.value, state or AgentState("a-1")
    assert outcome is not None
    stored = await store.state("acme", "a-1")
    assert stored is not None
    return [(e.type, e.value, e.reason) for e, _ in outcome.changes], stored


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_state_machine(case: Case) -> None:
    result, _ = run_pure(case)
    assert result == case.expect


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_redis_script_matches_state_machine(store: Store, case: Case) -> None:
    result, state = await run_store(store, case)
    assert result == case.expect
    _, pure_state = run_pure(case)
    assert comparable(state) == comparable(pure_state)
    # The state each event was published with is the state the store now serves.


async def test_store_state_is_the_replay_of_its_log(store: Store) -> None:
    for case in CASES:
        await run_store(store, case)  # every case on the same agent: a long, varied log
    events = await check_company(store, "acme")  # entries' states included
    assert len(events) > 2 * len(CASES)


async def test_default_config_agrees_with_the_script(store: Store) -> None:
    """The script's built-in defaults are CompanyConfig's: a fresh company shows them."""
    outcome = await store.hello("fresh", "a-1", conn="test/1", now=NOW)
    assert [e.value for e, _ in outcome.changes] == ["connected", CompanyConfig().initial_status]
    for status in CompanyConfig().statuses:
        await store.set_status("fresh", "a-1", status, by_user=True, now=NOW, conn="test/1")
    assert await store.config("fresh") == CompanyConfig()


async def test_a_replaced_connection_can_no_longer_act(store: Store) -> None:
    first = await store.hello("acme", "a-1", conn="test/1", now=NOW)
    second = await store.hello("acme", "a-1", conn="test/2", now=NOW + 1, session=first.session)
    assert second.resumed and second.ended_conn == "test/1"
    for stale_change in (
        store.set_status("acme", "a-1", "break", by_user=True, now=NOW + 2, conn="test/1"),
        store.activity("acme", "a-1", "meeting", now=NOW + 2, conn="test/1"),
        store.disconnect("acme", "a-1", reason="transport-closed", now=NOW + 2, conn="test/1"),
    ):
        with pytest.raises(StaleConnection):
            await stale_change
    state = await store.state("acme", "a-1")
    assert state is not None and state.online and state.status == "busy"


async def test_epoch_is_new_whenever_the_stream_is(store: Store) -> None:
    epoch_key = store.keys.epoch("acme")
    # A reader may create the stream first (a consumer group with MKSTREAM).
    await store.redis.xgroup_create(store.keys.events("acme"), "reporting", id="0", mkstream=True)
    await store.hello("acme", "a-1", conn="test/1", now=NOW)
    first = await store.redis.get(epoch_key)
    assert first
    await store.set_status("acme", "a-1", "break", by_user=True, now=NOW, conn="test/1")
    assert await store.redis.get(epoch_key) == first
    await store.redis.delete(store.keys.events("acme"))  # the log is lost
    await store.set_status("acme", "a-1", "meal", by_user=True, now=NOW, conn="test/1")
    second = await store.redis.get(epoch_key)
    assert second and second != first


async def test_a_repeated_request_is_applied_once(store: Store) -> None:
    """A retry after a lost reply (network blip, Redis restart) gets the first result."""
    await store.hello("acme", "a-1", conn="test/1", now=NOW)
    args = ["activity", "a-1", str(NOW), "test/1", '{"value": "meeting"}', "", "request-1", "35"]
    keys = [store.keys.company("acme")]
    first = await store._apply(keys=keys, args=args)
    again = await store._apply(keys=keys, args=args)
    assert again == first
    assert [e.value for e in await store.events("acme")] == ["connected", "busy", "meeting"]


async def test_a_writes_result_is_kept_as_long_as_it_may_be_retried(store: Store) -> None:
    """Not a fixed window: store_retry, plus what a last attempt may spend in flight."""
    await store.hello("acme", "a-1", conn="test/1", now=NOW)
    kept = [
        await store.redis.ttl(key)
        async for key in store.redis.scan_iter(match=store.keys.request("acme", "*"))
    ]
    assert kept and all(0 < ttl <= math.ceil(store.retry_for) + RETRY_IN_FLIGHT for ttl in kept)
    longer = dataclasses.replace(store, retry_for=100.0)
    await longer.set_status("acme", "a-1", "break", by_user=True, now=NOW, conn="test/1")
    kept = [
        await store.redis.ttl(key)
        async for key in store.redis.scan_iter(match=store.keys.request("acme", "*"))
    ]
    assert max(kept) > 100


async def test_one_script_run_applies_a_batch_and_a_failing_change_fails_alone(
    store: Store,
) -> None:
    """The store batches concurrent changes into one run; a change the script
    can't process (here: arguments that are not JSON) gets ``internal`` while
    the changes around it still apply."""
    await store.hello("acme", "a-1", conn="test/1", now=NOW)
    await store.hello("acme", "a-2", conn="test/2", now=NOW)
    meeting = '{"value": "meeting"}'
    args = [
        *["activity", "a-1", str(NOW), "test/1", meeting, "", "request-1", "35"],
        *["activity", "a-2", str(NOW), "test/2", "{not json", "", "request-2", "35"],
        *["activity", "a-2", str(NOW), "test/2", meeting, "", "request-3", "35"],
    ]
    keys = [store.keys.company("acme")] * 3
    first, failed, third = await store._apply(keys=keys, args=args)
    assert json.loads(failed)["error"] == "internal"
    assert "ok" in json.loads(first) and "ok" in json.loads(third)
    assert [(e.agent, e.value) for e in await store.events("acme") if e.value == "meeting"] == [
        ("a-1", "meeting"),
        ("a-2", "meeting"),
    ]
    await check_company(store, "acme")


async def test_concurrent_changes_each_get_their_own_outcome(store: Store) -> None:
    """Many changes in flight at once (one batch or several): every caller gets
    its own agent's result or refusal."""
    agents = [f"a-{n}" for n in range(40)]
    for n, agent in enumerate(agents):
        await store.hello("acme", agent, conn=f"test/{n}", now=NOW)

    async def change(n: int, agent: str) -> str:
        try:
            outcome = await store.set_status(
                "acme",
                agent,
                "break",
                by_user=True,
                now=NOW + 1,
                conn=f"test/{n}" if n % 2 else "test/other",
            )
        except StaleConnection:
            return "stale"
        assert outcome.agent == agent and outcome.state is not None
        return outcome.state.status or ""

    results = await asyncio.gather(*(change(n, agent) for n, agent in enumerate(agents)))
    assert results == ["stale" if n % 2 == 0 else "break" for n in range(len(agents))]
    await check_company(store, "acme")


async def test_one_run_serves_many_companies_each_in_its_own_keys(store: Store) -> None:
    """Changes of different companies share script runs (one Redis node), and
    each lands in its own company's log, state and indexes, published on its
    own channel."""
    companies = [f"co-{n}" for n in range(30)]
    await asyncio.gather(
        *(store.hello(company, "a-1", conn=f"test/{company}", now=NOW) for company in companies)
    )
    outcomes = await asyncio.gather(
        *(
            store.set_status(
                company, "a-1", "available", by_user=True, now=NOW + 1, conn=f"test/{company}"
            )
            for company in companies
        )
    )
    for company, outcome in zip(companies, outcomes, strict=True):
        assert outcome.company == company
        assert outcome.state is not None and outcome.state.routable
        assert [e.value for e in await store.events(company)] == ["connected", "busy", "available"]
        assert [s.agent for s in await store.idle_states(company)] == ["a-1"]
        await check_company(store, company)

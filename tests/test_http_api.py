"""The HTTP API, ``/v1`` (spec §6), over real sockets against a real server and Redis."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jwt
import pytest

from server import http_api
from server.reference_model import evolve
from server.state import AgentState, Event
from server.store import ORIGIN, Store, id_key
from tests.clients import open_agent
from tests.eventlog import values, wait_for_log
from tests.invariants import check_no_double_occupation
from tests.servers import RunningServer
from tests.timing import seconds

ROLES = ("agent", "acd", "supervisor", "admin")
READERS = {"acd", "supervisor", "admin"}
DISTRIBUTORS = {"acd", "admin"}
SUPERVISORS = {"supervisor", "admin"}

#: Every route, a body it accepts the shape of, and the roles allowed.
ROUTES: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("GET", "/v1/agents", None, READERS),
    ("GET", "/v1/agents/a-1", None, READERS),
    ("GET", "/v1/stats", None, READERS),
    ("POST", "/v1/acd/claim", {}, DISTRIBUTORS),
    ("POST", "/v1/agents/a-1/acd", {"value": "timeout"}, DISTRIBUTORS),
    ("POST", "/v1/agents/a-1/activity", {"value": "dismiss"}, DISTRIBUTORS),
    ("POST", "/v1/agents/a-1/status", {"value": "break"}, SUPERVISORS),
    ("POST", "/v1/agents/a-1/disconnect", None, SUPERVISORS),
    ("GET", "/v1/agents/a-1/events", None, SUPERVISORS),
    ("GET", "/v1/events", None, SUPERVISORS),
    ("GET", "/v1/config", None, SUPERVISORS),
    ("PUT", "/v1/config", {"acd_mode": "broadcast"}, {"admin"}),
]
#: Fixed times for changes made straight through the store, so idle order is known.
T0 = 1_732_400_000_000


def auth(server: RunningServer, role: str, company: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(f'svc-{role}', company=company, role=role)}"}


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=seconds(5)) as client:
        yield client


async def call(
    http: httpx.AsyncClient,
    server: RunningServer,
    method: str,
    path: str,
    *,
    role: str = "admin",
    company: str = "acme",
    status: int = 200,
    **options: Any,
) -> Any:
    """One request as ``role``; its JSON once its status is the expected one."""
    response = await http.request(method, path, headers=auth(server, role, company), **options)
    assert response.status_code == status, response.text
    return response.json()


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def routable(
    store: Store, agent: str, now: int, segments: tuple[str, ...] = (), company: str = "acme"
) -> None:
    """Make ``agent`` routable since ``now``, straight through the store."""
    await store.hello(
        company, agent, conn=f"conn-{agent}", now=now, segments=segments, status="available"
    )


def ids(body: dict[str, Any]) -> list[str]:
    return [state["agent"] for state in body["agents"]]


# Tokens and roles.


def expired(server: RunningServer) -> str:
    claims = {"sub": "svc", "company": "acme", "role": "admin", "exp": int(time.time()) - 10}
    return jwt.encode(claims, server.secret, algorithm="HS256")


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES)
async def test_every_route_wants_a_token_of_an_allowed_role(
    server: RunningServer,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    allowed: set[str],
) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": f"Bearer {server.token('svc', role='admin')}x"},
        {"Authorization": f"Bearer {expired(server)}"},
    ):
        response = await http.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert error_code(response) == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    for role in set(ROLES) - allowed:
        response = await http.request(method, path, json=body, headers=auth(server, role))
        assert response.status_code == 403, (role, response.text)
        assert response.json()["error"] == {
            "code": "forbidden",
            "message": f"role {role} may not {method} this resource",
        }


async def test_another_company_neither_reads_nor_changes(
    server: RunningServer, http: httpx.AsyncClient, store: Store
) -> None:
    agent, _ = await open_agent(server, hello={"status": "available"})
    before = await store.events("acme")
    state = await store.state("acme", "a-1")

    async def other(method: str, path: str, status: int, **options: Any) -> Any:
        return await call(http, server, method, path, company="beta", status=status, **options)

    assert await other("GET", "/v1/agents", 200) == {"agents": []}
    assert (await other("GET", "/v1/agents/a-1", 404))["error"]["code"] == "not-found"
    assert (await other("GET", "/v1/stats", 200))["total"] == 0
    assert (await other("GET", "/v1/events", 200)) == {"events": [], "next": None}
    await other("GET", "/v1/agents/a-1/events", 404)
    claimed = await other("POST", "/v1/acd/claim", 404, json={})
    assert claimed["error"]["code"] == "no-agent-available"
    for path, body in [
        ("/v1/agents/a-1/acd", {"value": "occupying"}),
        ("/v1/agents/a-1/activity", {"value": "in-call"}),
        ("/v1/agents/a-1/status", {"value": "break"}),
        ("/v1/agents/a-1/disconnect", None),
    ]:
        assert (await other("POST", path, 404, json=body))["error"]["code"] == "not-found"
    await other("PUT", "/v1/config", 200, json={"acd_mode": "broadcast"})
    # A's config, state and log are as they were; B recorded nothing.
    config = await call(http, server, "GET", "/v1/config")
    assert config["acd_mode"] == "circular" and len(config["statuses"]) == 6
    assert await store.state("acme", "a-1") == state
    assert await store.events("acme") == before
    assert await store.events("beta") == []
    await agent.ws.close()


# Reading agents.


@pytest.fixture
async def six_agents(store: Store) -> None:
    """a-6 idle longest, then a-3, then a-1 and a-2 tied; a-4 on a break; a-5 offline."""
    await routable(store, "a-1", T0 + 2000, ("sales",))
    await routable(store, "a-2", T0 + 2000)
    await routable(store, "a-3", T0 + 1000, ("support",))
    await store.hello("acme", "a-4", conn="conn-a-4", now=T0, status="break")
    await routable(store, "a-5", T0)
    await store.disconnect("acme", "a-5", reason="client-closed", now=T0 + 10, conn="conn-a-5")
    await routable(store, "a-6", T0 + 500, ("sales", "support"))


@pytest.mark.usefixtures("six_agents")
async def test_list_filters_and_orders(server: RunningServer, http: httpx.AsyncClient) -> None:
    async def listed(params: dict[str, Any], role: str = "acd") -> list[str]:
        return ids(await call(http, server, "GET", "/v1/agents", role=role, params=params))

    every = ["a-1", "a-2", "a-3", "a-4", "a-5", "a-6"]
    assert await listed({}) == every
    assert await listed({"order": "agent", "segment": ""}) == every  # empty is no filter
    assert await listed({"order": "idle"}, role="supervisor") == [
        "a-6",
        "a-3",
        "a-1",
        "a-2",
        "a-4",
        "a-5",
    ]
    assert await listed({"routable": "true", "order": "idle"}) == ["a-6", "a-3", "a-1", "a-2"]
    assert await listed({"routable": "true", "order": "idle", "limit": 3}) == ["a-6", "a-3", "a-1"]
    assert await listed({"routable": "true"}) == ["a-1", "a-2", "a-3", "a-6"]
    assert await listed({"routable": "true", "limit": 1}) == ["a-1"]
    assert await listed({"routable": "true", "segment": "sales", "order": "idle"}) == [
        "a-6",
        "a-1",
    ]
    assert await listed({"routable": "true", "status": "break"}) == []
    assert await listed({"routable": "false"}) == ["a-4", "a-5"]
    assert await listed({"connection": "offline"}) == ["a-5"]
    assert await listed({"status": "break"}) == ["a-4"]
    assert await listed({"status": "available", "connection": "online"}) == [
        "a-1",
        "a-2",
        "a-3",
        "a-6",
    ]
    assert await listed({"activity": "occupying"}) == []
    assert await listed({"segment": "support", "order": "idle"}) == ["a-6", "a-3"]
    assert await listed({"order": "idle", "limit": 2}) == ["a-6", "a-3"]
    for bad in (
        {"routable": "yes"},
        {"order": "random"},
        {"limit": "0"},
        {"limit": "-1"},
        {"segment": "no such!"},
        {"status": "Break"},
        {"connection": "away"},
        {"activity": "asleep"},
    ):
        response = await http.get("/v1/agents", params=bad, headers=auth(server, "acd"))
        assert response.status_code == 400 and error_code(response) == "bad-request", bad


@pytest.mark.usefixtures("six_agents")
async def test_one_agent_and_stats(server: RunningServer, http: httpx.AsyncClient) -> None:
    state = await call(http, server, "GET", "/v1/agents/a-3", role="acd")
    assert state["agent"] == "a-3" and state["routable"] is True
    assert state["idle_since"] == T0 + 1000 and state["segments"] == ["support"]
    assert set(state) == {
        "agent",
        "session",
        "connection",
        "status",
        "activity",
        "routable",
        "segments",
        "since",
        "idle_since",
        "version",
    }
    missing = await http.get("/v1/agents/a-9", headers=auth(server, "acd"))
    assert missing.status_code == 404 and error_code(missing) == "not-found"
    malformed = await http.get("/v1/agents/a%209", headers=auth(server, "acd"))
    assert malformed.status_code == 400
    assert await call(http, server, "GET", "/v1/stats", role="supervisor") == {
        "total": 6,
        "connection": {"online": 5, "offline": 1},
        "status": {
            "available": 5,
            "busy": 0,
            "break": 1,
            "bath": 0,
            "meal": 0,
            "gathering": 0,
            "training": 0,
        },
        "activity": {"idle": 6, "occupying": 0, "in-call": 0, "meeting": 0},
        "routable": 4,
        "longest_idle": {"agent": "a-6", "idle_since": T0 + 500},
    }
    sales = await call(http, server, "GET", "/v1/stats", params={"segment": "sales"})
    assert (sales["total"], sales["routable"]) == (2, 2)
    assert sales["longest_idle"] == {"agent": "a-6", "idle_since": T0 + 500}
    nobody = await call(http, server, "GET", "/v1/stats", params={"segment": "billing"})
    assert (nobody["total"], nobody["longest_idle"]) == (0, None)


# Changes.


@pytest.mark.usefixtures("six_agents")
async def test_claim_takes_the_longest_idle(
    server: RunningServer, http: httpx.AsyncClient, store: Store
) -> None:
    async def claim(body: dict[str, Any], status: int = 200) -> Any:
        return await call(
            http, server, "POST", "/v1/acd/claim", role="acd", json=body, status=status
        )

    first = await claim({})
    assert first["state"]["agent"] == "a-6" and first["state"]["activity"] == "occupying"
    assert first["events"] == [first["event"]]
    assert {k: first["event"][k] for k in ("agent", "type", "value", "reason")} == {
        "agent": "a-6",
        "type": "acd",
        "value": "occupying",
        "reason": None,
    }
    assert first["event"]["id"] == (await store.events("acme"))[-1].id
    assert (await claim({"exclude": ["a-3"], "unknown": 1}))["state"]["agent"] == "a-1"
    nobody = await claim({"segment": "sales"}, status=404)
    assert nobody["error"]["code"] == "no-agent-available"
    assert (await claim({"segment": "support"}))["state"]["agent"] == "a-3"
    assert (await claim({"exclude": ["a-3", "a-9"]}))["state"]["agent"] == "a-2"
    await claim({}, status=404)
    for bad in ({"exclude": "a-1"}, {"exclude": [1]}, {"segment": 7}, {"exclude": {}}):
        assert (await claim(bad, status=400))["error"]["code"] == "bad-request"


async def test_acd_changes_and_broadcast_mode(
    server: RunningServer, http: httpx.AsyncClient, store: Store
) -> None:
    agent, _ = await open_agent(server, hello={"status": "available"})

    async def acd(body: dict[str, Any], status: int = 200) -> Any:
        return await call(
            http, server, "POST", "/v1/agents/a-1/acd", role="acd", json=body, status=status
        )

    occupied = await acd({"value": "occupying"})
    assert occupied["event"]["value"] == "occupying" and occupied["state"]["routable"] is False
    assert (await agent.recv())["event"]["value"] == "occupying"  # the console is told
    assert (await acd({"value": "occupying"}, 409))["error"]["code"] == "invalid-transition"
    released = await acd({"value": "releasing", "reason": "client-abandoned"})
    assert released["event"]["reason"] == "client-abandoned"
    assert (await acd({"value": "releasing"}, 409))["error"]["code"] == "invalid-transition"
    for bad in (
        {},
        {"value": "dismiss"},
        {"value": "timeout", "reason": "no-answer"},
        {"value": "releasing", "reason": 'a,"b"'},
    ):
        assert (await acd(bad, 400))["error"]["code"] == "bad-request", bad

    await call(
        http, server, "PUT", "/v1/config", json={"acd_mode": "broadcast", "timeout_status": "break"}
    )
    for body in ({"value": "occupying"}, {"value": "releasing"}):
        assert (await acd(body, 409))["error"]["code"] == "acd-mode"
    claimed = await call(http, server, "POST", "/v1/acd/claim", role="acd", status=409)
    assert claimed["error"]["code"] == "acd-mode"
    timed_out = await acd({"value": "timeout"})
    assert [(e["type"], e["value"]) for e in timed_out["events"]] == [
        ("acd", "timeout"),
        ("status-changed", "break"),
    ]
    assert timed_out["event"] == timed_out["events"][-1]
    assert timed_out["state"]["status"] == "break"
    assert values(await store.events("acme"))[-3:] == [
        ("releasing", "client-abandoned"),
        ("timeout", None),
        ("break", None),
    ]
    await agent.ws.close()


async def test_forced_status(server: RunningServer, http: httpx.AsyncClient, store: Store) -> None:
    agent, _ = await open_agent(server)

    async def force(value: Any, status: int = 200, role: str = "supervisor") -> Any:
        return await call(
            http,
            server,
            "POST",
            "/v1/agents/a-1/status",
            role=role,
            json={"value": value},
            status=status,
        )

    forced = await force("training")
    assert (forced["event"]["type"], forced["event"]["value"]) == ("status-changed", "training")
    push = await agent.recv()
    assert push["t"] == "state" and push["state"]["status"] == "training"
    assert await force("training", role="admin") == {
        "event": None,
        "events": [],
        "state": forced["state"],
    }
    assert (await force("nap", 400))["error"]["code"] == "unknown-status"
    assert (await force("Not A Slug", 400))["error"]["code"] == "bad-request"
    assert (await force(None, 400))["error"]["code"] == "bad-request"
    await agent.ws.close()
    await wait_for_log(store, lambda events: events[-1].value == "disconnected")
    # No precondition on a forced status: an offline agent gets it too.
    assert (await force("available"))["state"]["connection"] == "offline"


async def test_kick_closes_the_console_and_ends_its_session(
    server: RunningServer, http: httpx.AsyncClient, store: Store
) -> None:
    agent, welcome = await open_agent(server)
    kicked = await call(
        http, server, "POST", "/v1/agents/a-1/disconnect", role="supervisor", json=None
    )
    assert (kicked["event"]["value"], kicked["event"]["reason"]) == ("disconnected", "kicked")
    assert kicked["state"]["connection"] == "offline"
    assert (await agent.closed())[0] == 4510
    assert values(await store.events("acme"))[-1] == ("disconnected", "kicked")
    assert not await store.session_resumable("acme", welcome["session"])
    again = await http.post("/v1/agents/a-1/disconnect", headers=auth(server, "admin"))
    assert again.status_code == 409 and error_code(again) == "invalid-transition"
    unknown = await http.post("/v1/agents/a-9/disconnect", headers=auth(server, "admin"))
    assert unknown.status_code == 404
    back, fresh = await open_agent(server, hello={"session": welcome["session"]})
    assert fresh["resumed"] is False and fresh["session"] != welcome["session"]
    await back.ws.close()


async def test_activity_from_a_call_platform(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    agent, _ = await open_agent(server, hello={"status": "available"})
    path = "/v1/agents/a-1/activity"

    async def report(status: int = 200, **options: Any) -> Any:
        return await call(http, server, "POST", path, role="acd", status=status, **options)

    in_call = await report(json={"value": "in-call", "call": "ignored"})
    assert in_call["event"]["value"] == "in-call" and in_call["state"]["activity"] == "in-call"
    assert (await agent.recv())["state"]["activity"] == "in-call"
    assert (await report(json={"value": "end-call"}))["state"]["routable"] is True
    assert (await report(409, json={"value": "end-call"}))["error"]["code"] == (
        "invalid-transition"
    )
    for options in (
        {"json": {"value": "occupying"}},
        {"json": {}},
        {"json": ["in-call"]},
        {"content": b"{not json"},
        {"content": b"\xff\xfe"},
        {"content": b"[" * 60_000},  # too deep to parse (too big to read: 413, below)
    ):
        assert (await report(400, **options))["error"]["code"] == "bad-request", options
    await agent.ws.close()


# The company's settings.


async def test_config_read_validated_and_applied(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    defaults = await call(http, server, "GET", "/v1/config", role="supervisor")
    assert defaults == {
        "acd_mode": "circular",
        "statuses": [
            {"value": "busy", "label": "Ocupado"},
            {"value": "break", "label": "Descanso"},
            {"value": "bath", "label": "Baño"},
            {"value": "meal", "label": "Comida"},
            {"value": "gathering", "label": "Reunión externa"},
            {"value": "training", "label": "Capacitación"},
        ],
        "initial_status": "busy",
        "timeout_status": None,
    }
    for body, code in [
        ({"statuses": [{"value": "available"}]}, "bad-request"),
        ({"statuses": [{"value": "in-call", "label": "En llamada"}]}, "bad-request"),
        ({"statuses": [{"value": "busy"}, {"label": "Busy"}]}, "bad-request"),
        ({"statuses": [{"value": "Lunch"}]}, "bad-request"),
        ({"statuses": [{"label": "¡¡!!"}]}, "bad-request"),
        ({"statuses": [{}]}, "bad-request"),
        ({"statuses": [{"value": "lunch", "label": ""}]}, "bad-request"),
        ({"statuses": "busy"}, "bad-request"),
        ({"statuses": [{"value": "lunch"}]}, "unknown-status"),  # busy, the initial, is gone
        ({"initial_status": "lunch"}, "unknown-status"),
        ({"timeout_status": "connected"}, "unknown-status"),
        ({"acd_mode": "round-robin"}, "bad-request"),
        ({"acd_mode": None}, "bad-request"),
    ]:
        response = await http.put("/v1/config", json=body, headers=auth(server, "admin"))
        assert response.status_code == 400 and error_code(response) == code, body
    assert await call(http, server, "GET", "/v1/config") == defaults

    stored = await call(
        http,
        server,
        "PUT",
        "/v1/config",
        json={
            "statuses": [{"value": "lunch", "label": "Almuerzo"}, {"label": "Reunión externa"}],
            "initial_status": "lunch",
            "comment": "unknown fields are ignored",
        },
    )
    assert stored == {
        "acd_mode": "circular",
        "statuses": [
            {"value": "lunch", "label": "Almuerzo"},
            {"value": "reunion-externa", "label": "Reunión externa"},
        ],
        "initial_status": "lunch",
        "timeout_status": None,
    }
    # Omitted fields keep their value.
    kept = await call(http, server, "PUT", "/v1/config", json={"timeout_status": "reunion-externa"})
    assert kept == {**stored, "timeout_status": "reunion-externa"}
    assert await call(http, server, "GET", "/v1/config", role="supervisor") == kept

    agent, welcome = await open_agent(server)
    assert welcome["statuses"] == stored["statuses"]
    assert welcome["state"]["status"] == "lunch"
    ack = await agent.request({"t": "status", "value": "reunion-externa", "ref": 1})
    assert ack["t"] == "ack" and ack["state"]["status"] == "reunion-externa"
    refused = await agent.request({"t": "status", "value": "break", "ref": 2})
    assert (refused["t"], refused["code"]) == ("error", "unknown-status")
    await agent.ws.close()


# The log.


async def make_history(server: RunningServer, store: Store) -> tuple[list[Event], str, str]:
    """Two sessions of a-1 and one of a-2; the log and a-1's two session ids."""
    first, welcome = await open_agent(server, hello={"status": "available"})
    await first.request({"t": "status", "value": "break", "ref": 1})
    await first.request({"t": "bye", "ref": 2})
    await first.closed()
    second, again = await open_agent(server)
    other, _ = await open_agent(server, "a-2")
    await second.request({"t": "bye"})
    await other.request({"t": "bye"})
    return await store.events("acme"), welcome["session"], again["session"]


def wire(events: list[Event]) -> list[dict[str, Any]]:
    return [event.to_wire() for event in events]


def ms_of(event: Event) -> int:
    return id_key(str(event.id))[0]


async def test_event_log_pages_and_filters(
    server: RunningServer, http: httpx.AsyncClient, store: Store
) -> None:
    log, session_1, session_2 = await make_history(server, store)
    mine = [event for event in log if event.agent == "a-1"]

    async def read(path: str, **params: Any) -> dict[str, Any]:
        body: dict[str, Any] = await call(
            http, server, "GET", path, role="supervisor", params=params
        )
        return body

    async def all_pages(path: str, **params: Any) -> list[dict[str, Any]]:
        found, after = [], None
        while True:
            page = await read(path, limit=2, **({"after": after} if after else {}), **params)
            assert len(page["events"]) <= 2
            found += page["events"]
            if page["next"] is None:
                return found
            assert page["next"] == page["events"][-1]["id"]
            after = page["next"]

    assert await read("/v1/events") == {"events": wire(log), "next": None}
    assert await all_pages("/v1/events") == wire(log)
    assert await all_pages("/v1/agents/a-1/events") == wire(mine)
    assert (await read("/v1/agents/a-2/events", limit=1))["next"] is not None
    by_session = await read("/v1/events", session=session_1)
    assert by_session["events"] == wire([e for e in log if e.session == session_1])
    assert [e["value"] for e in by_session["events"]] == [
        "connected",
        "available",
        "break",
        "disconnected",
    ]
    assert (await read("/v1/agents/a-1/events", session=session_2))["events"] == wire(
        [e for e in log if e.session == session_2]
    )
    assert (await read("/v1/agents/a-2/events", session=session_1))["events"] == []

    # from/to select by the time the entry entered the log (its id); to is exclusive.
    start, end = ms_of(log[2]), ms_of(log[-2])
    between = wire([e for e in log if start <= ms_of(e) < end])
    assert (await read("/v1/events", **{"from": start, "to": end}))["events"] == between
    santiago = ZoneInfo("America/Santiago")
    as_iso = {
        "from": datetime.fromtimestamp(start / 1000, UTC).isoformat(),
        "to": datetime.fromtimestamp(end / 1000, UTC).isoformat().replace("+00:00", "Z"),
    }
    assert (await read("/v1/events", **as_iso))["events"] == between
    naive = {
        name: datetime.fromtimestamp(ms / 1000, santiago).replace(tzinfo=None).isoformat()
        for name, ms in (("from", start), ("to", end))
    }
    assert (await read("/v1/events", tz="America/Santiago", **naive))["events"] == between
    assert (await read("/v1/events", **{"from": ms_of(log[-1]) + 1}))["events"] == []
    assert (await read("/v1/events", to=0))["events"] == []
    assert (await read("/v1/events", **{"from": "1960-01-01"}))["events"] == wire(log)

    for bad in (
        {"from": "yesterday"},
        {"to": "2024-13-01"},
        {"after": "abc"},
        {"after": "9" * 20 + "-0"},
        {"limit": "10001"},
        {"limit": "0"},
        {"tz": "Mars/Olympus"},
        {"tz": "../etc"},
        {"format": "xml"},
        {"lang": "fr"},
        {"session": "bad session"},
    ):
        response = await http.get("/v1/events", params=bad, headers=auth(server, "admin"))
        assert response.status_code == 400 and error_code(response) == "bad-request", bad
    never = await http.get("/v1/agents/a-9/events", headers=auth(server, "admin"))
    assert never.status_code == 404


async def test_csv_export(
    server: RunningServer,
    http: httpx.AsyncClient,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log, _, _ = await make_history(server, store)
    # Small pages, so the export spans several reads of the log.
    monkeypatch.setattr(http_api.export, "CSV_PAGE", 2)
    headers = auth(server, "supervisor")

    async def export(path: str, **params: str) -> httpx.Response:
        response = await http.get(path, params={"format": "csv", **params}, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"].startswith("attachment; filename=")
        return response

    mine = await export("/v1/agents/a-1/events")
    assert mine.content.startswith("Fecha,Tipo,Valor,Razón de desconexión,ID sesión\r\n".encode())
    assert mine.headers["content-disposition"] == (
        'attachment; filename="eventos-de-conexion-acme-a-1.csv"'
    )
    lines = mine.content.split(b"\r\n")
    assert lines[-1] == b"" and all(b"\n" not in line for line in lines)
    rows = list(csv.reader(io.StringIO(mine.content.decode())))
    a1 = [event for event in log if event.agent == "a-1"]
    assert rows[1:] == [
        [
            datetime.fromtimestamp(e.ts // 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            e.type,
            e.value,
            e.reason or "",
            e.session or "",
        ]
        for e in a1
    ]
    assert rows[4][2:4] == ["disconnected", "client-closed"]

    english = await export("/v1/events", lang="en", tz="America/Santiago")
    assert english.content.startswith(b"Agent,Date,Type,Value,Disconnect reason,Session ID\r\n")
    assert english.headers["content-disposition"] == (
        'attachment; filename="connection-events-acme.csv"'
    )
    rows = list(csv.reader(io.StringIO(english.content.decode())))
    santiago = ZoneInfo("America/Santiago")
    assert [row[:2] for row in rows[1:]] == [
        [e.agent, datetime.fromtimestamp(e.ts // 1000, santiago).strftime("%Y-%m-%d %H:%M:%S")]
        for e in log
    ]
    spanish = await export("/v1/events")
    assert spanish.content.split(b"\r\n")[0] == (
        "Ejecutivo,Fecha,Tipo,Valor,Razón de desconexión,ID sesión".encode()
    )
    late = await export("/v1/events", **{"from": str(ms_of(log[-1]) + 1)})
    assert late.content.count(b"\r\n") == 1  # the header alone


def test_csv_rows_quote_as_rfc_4180() -> None:
    # Reasons are slugs, so no real event needs quoting; the writer must still do it.
    event = Event(0, "a-1", "S1", "acd", "releasing", 'a,"b"', id="1-0")
    row = http_api.csv_row(event, ZoneInfo("UTC"), with_agent=True)
    assert http_api.csv_lines([row, ["x\ny", ""]]) == (
        b'a-1,1970-01-01 00:00:00,acd,releasing,"a,""b""",S1\r\n"x\ny",\r\n'
    )


# Claims under concurrency (the acceptance).


async def test_concurrent_claims_take_the_longest_idle_once_each(
    start_server: Callable[..., Awaitable[RunningServer]], store: Store
) -> None:
    server = await start_server()
    base = int(time.time() * 1000) - 60_000
    for n in range(100):
        # Pairs share a start, so ties are broken by agent id.
        await routable(store, f"a-{n:03d}", base + n // 2)
    claims_left = 500
    claimed: list[dict[str, Any]] = []

    async def claimer(seed: int) -> None:
        nonlocal claims_left
        pick = random.Random(seed)
        held: list[str] = []
        headers = auth(server, "acd")
        async with httpx.AsyncClient(
            base_url=server.http_url, headers=headers, timeout=seconds(10)
        ) as client:
            while claims_left > 0:
                claims_left -= 1
                response = await client.post("/v1/acd/claim", json={})
                assert response.status_code == 200, response.text
                claimed.append(response.json())
                held.append(response.json()["state"]["agent"])
                # Keep a few agents busy, give others back in random order.
                while len(held) > pick.randint(0, 4):
                    agent = held.pop(pick.randrange(len(held)))
                    release = {"value": "releasing", "reason": "transfer"}
                    answer = await client.post(f"/v1/agents/{agent}/acd", json=release)
                    assert answer.status_code == 200, answer.text

    started = time.monotonic()
    await asyncio.gather(*(claimer(seed) for seed in range(8)))
    assert len(claimed) == 500
    entries = await store.entries("acme", ORIGIN, count=10**6)
    events = [event for event, _ in entries]
    check_no_double_occupation(events)
    occupying = {e.id: e.agent for e in events if e.value == "occupying"}
    assert occupying == {c["event"]["id"]: c["state"]["agent"] for c in claimed}
    # Replay the log: just before each occupying, its agent was the longest idle.
    states: dict[str, AgentState] = {}
    for event in events:
        if event.value == "occupying":
            candidates = [state for state in states.values() if state.routable]
            best = min(candidates, key=lambda state: (state.idle_since or 0, state.agent))
            assert event.agent == best.agent, event
        states[event.agent] = evolve(states.get(event.agent) or AgentState(event.agent), event)
    assert time.monotonic() - started < seconds(30)


async def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    limit = http_api.requests.MAX_BODY
    padding = "x" * limit
    headers = auth(server, "admin")
    declared = await http.put("/v1/config", headers=headers, json={"padding": padding})

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the server counts what arrives and stops past the limit.
        yield b'{"padding": "'
        for _ in range(limit // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    streamed = await http.put("/v1/config", headers=headers, content=chunks())
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "bad-request"
    # Nothing was applied, and the server answers the next request as usual.
    config = await http.get("/v1/config", headers=headers)
    assert config.status_code == 200 and "padding" not in config.json()
    fits = await http.put("/v1/config", headers=headers, json={"acd_mode": "circular"})
    assert fits.status_code == 200

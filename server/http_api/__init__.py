"""The HTTP API, ``/v1`` (spec §6): the ACD's, supervisors' and admins' side.

Every endpoint is decode → store → encode. :func:`authorize` checks the
``Authorization: Bearer`` token and its role (the company is always the
token's, never the URL's); the store reads or applies, and hands every applied
change to the hub, so this instance's sockets hear of it at once (a kick closes
the agent's socket with 4510; other instances hear through pub/sub).
Refusals become ``{"error": {"code", "message"}}`` with the status of
:data:`HTTP_STATUS`; :func:`api` does that for every endpoint. Shapes::

    GET  /v1/agents           {"agents": [state, …]}
    GET  /v1/agents/{agent}   state
    GET  /v1/stats            {"total": n, "connection": {"online": n, "offline": n},
                               "status": {value: n, …}, "activity": {value: n, …},
                               "routable": n, "longest_idle": {"agent", "idle_since"} | null}
    POST /v1/acd/claim, /v1/agents/{agent}/acd|activity|status|disconnect
                              {"event": last event | null, "events": [event, …], "state": state}
    GET  /v1/events, /v1/agents/{agent}/events
                              {"events": [event, …], "next": id | null}, or the seed's CSV
    GET, PUT /v1/config       {"acd_mode", "statuses": [{"value", "label"}],
                               "initial_status", "timeout_status"}

Where the spec is silent (the README lists these too): ``order`` defaults to
``agent``; ``limit`` on agents defaults to all of them; a CSV export is the whole
selection (``limit`` pages JSON only); ``PUT /v1/config`` keeps the current
value of every field it omits; a status given by label only gets the label's
slug as its value.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from presence_protocol import (
    ACD_VALUES,
    ACTIVITY_VALUES,
    IDENTIFIER,
    STATUS_VALUE,
    SYSTEM_VALUES,
    ErrorCode,
    is_stream_id,
)
from server.auth import Identity, TokenError, verify
from server.errors import Refused
from server.instances import STORE_ERRORS
from server.presence import DEFAULT_LABELS, AgentState, Event
from server.runtime import Runtime
from server.store import Outcome, Store, now_ms

__all__ = ["HTTP_STATUS", "api", "authorize", "csv_lines", "csv_row", "merged_config", "routes"]

log = logging.getLogger("presence.http")

READERS: Final = frozenset({"acd", "supervisor", "admin"})
DISTRIBUTORS: Final = frozenset({"acd", "admin"})
SUPERVISORS: Final = frozenset({"supervisor", "admin"})
ADMINS: Final = frozenset({"admin"})

HTTP_STATUS: Final[Mapping[ErrorCode, int]] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNKNOWN_STATUS: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NO_AGENT_AVAILABLE: 404,
    ErrorCode.INVALID_TRANSITION: 409,
    ErrorCode.ACD_MODE: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.STORE_UNAVAILABLE: 503,
}

CONNECTIONS: Final = ("online", "offline")
ACTIVITIES: Final = ("idle", "occupying", "in-call", "meeting")
#: Bodies are a few small fields; a bigger one is a mistake or an attack.
MAX_BODY: Final = 64 * 1024
EVENTS_LIMIT: Final = 1000
MAX_EVENTS_LIMIT: Final = 10_000
#: Events read per store call while streaming a CSV export.
CSV_PAGE: Final = 1000
#: Every script run decodes the company's statuses: keep the list short.
MAX_STATUSES: Final = 100
MAX_LABEL: Final = 64
#: The claim script reads as many index entries as there are exclusions.
MAX_EXCLUDE: Final = 1000
COUNT: Final = re.compile(r"[1-9][0-9]{0,8}")
MILLISECONDS: Final = re.compile(r"[0-9]{1,15}")
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

#: The seed's export columns (Spanish, as the dashboard shows them) and their English.
CSV_HEADER: Final = {
    "es": ("Fecha", "Tipo", "Valor", "Razón de desconexión", "ID sesión"),
    "en": ("Date", "Type", "Value", "Disconnect reason", "Session ID"),
}
CSV_AGENT: Final = {"es": "Ejecutivo", "en": "Agent"}
CSV_FILENAME: Final = {"es": "eventos-de-conexion", "en": "connection-events"}

Handler = Callable[[Request], Awaitable[Response]]


# Requests in, errors out.


def error_response(code: ErrorCode, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if code is ErrorCode.UNAUTHORIZED else None
    return JSONResponse(
        {"error": {"code": code.value, "message": message}}, HTTP_STATUS[code], headers=headers
    )


def api(handler: Handler) -> Handler:
    """``handler`` answering its refusals and failures as the spec's error bodies."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except Refused as refused:
            return error_response(refused.code, refused.message)
        except STORE_ERRORS:  # reads meet Redis errors directly; writes as StoreUnavailable
            return error_response(ErrorCode.STORE_UNAVAILABLE, "the store is unavailable; retry")
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return error_response(ErrorCode.INTERNAL, "internal error")

    return endpoint


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def authorize(request: Request, roles: Collection[str]) -> Identity:
    """The caller's identity, if its token is good and its role one of ``roles``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(ErrorCode.UNAUTHORIZED, "an Authorization: Bearer token is required")
    try:
        identity = verify(token.strip(), runtime_of(request).secret)
    except TokenError as exc:
        raise Refused(ErrorCode.UNAUTHORIZED, str(exc)) from None
    if identity.role not in roles:
        raise Refused(
            ErrorCode.FORBIDDEN, f"role {identity.role} may not {request.method} this resource"
        )
    return identity


def is_identifier(value: str) -> bool:
    return IDENTIFIER.fullmatch(value) is not None


def is_status(value: str) -> bool:
    return STATUS_VALUE.fullmatch(value) is not None


def one_of(*values: str) -> Callable[[str], bool]:
    return frozenset(values).__contains__


def checked(value: object, name: str, ok: Callable[[str], bool], expected: str) -> str:
    if not (isinstance(value, str) and ok(value)):
        raise Refused(ErrorCode.BAD_REQUEST, f"{name} must be {expected}")
    return value


def query(request: Request, name: str, ok: Callable[[str], bool], expected: str) -> str | None:
    """A query parameter; empty counts as absent (``?segment=`` filters nothing)."""
    value = request.query_params.get(name) or None
    return None if value is None else checked(value, name, ok, expected)


def query_count(request: Request, name: str, most: int | None = None) -> int | None:
    raw = query(request, name, lambda v: COUNT.fullmatch(v) is not None, "a positive integer")
    if raw is None:
        return None
    if most is not None and int(raw) > most:
        raise Refused(ErrorCode.BAD_REQUEST, f"{name} must be at most {most}")
    return int(raw)


def query_zone(request: Request) -> ZoneInfo:
    name = request.query_params.get("tz") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise Refused(ErrorCode.BAD_REQUEST, f"tz {name!r} is not an IANA time zone") from None


def query_time(request: Request, name: str, zone: ZoneInfo) -> int | None:
    """Milliseconds since the epoch, from digits (ms) or ISO 8601 (naive: in ``zone``)."""
    raw = request.query_params.get(name) or None
    if raw is None:
        return None
    if MILLISECONDS.fullmatch(raw):
        return int(raw)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise Refused(
            ErrorCode.BAD_REQUEST, f"{name} must be milliseconds or an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    # Integer arithmetic: a float timestamp could land a millisecond off. Nothing
    # in the log is older than the epoch, and stream ids cannot be negative.
    return max(0, (moment - EPOCH) // timedelta(milliseconds=1))


def path_agent(request: Request) -> str:
    return checked(request.path_params["agent"], "the agent", is_identifier, "an identifier")


async def read_body(request: Request) -> dict[str, Any]:
    """The JSON object of the body; an empty body is ``{}``; unknown fields stay unread."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise Refused(ErrorCode.BAD_REQUEST, f"the body exceeds {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise Refused(ErrorCode.BAD_REQUEST, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Refused(ErrorCode.BAD_REQUEST, "the body must be a JSON object")
    return body


def field(
    body: Mapping[str, Any], name: str, ok: Callable[[str], bool], expected: str
) -> str | None:
    """An optional field of the body; null counts as absent."""
    value = body.get(name)
    return None if value is None else checked(value, name, ok, expected)


def required(body: Mapping[str, Any], name: str, ok: Callable[[str], bool], expected: str) -> str:
    value = field(body, name, ok, expected)
    if value is None:
        raise Refused(ErrorCode.BAD_REQUEST, f"{name} is required")
    return value


async def applied(request: Request, company: str, outcome: Outcome) -> JSONResponse:
    """Answer with what the change recorded (the store has told this instance's sockets)."""
    runtime = runtime_of(request)
    state = outcome.state or await runtime.store.state(company, outcome.agent)
    # The script refuses a never-seen agent, so an applied change has one.
    assert state is not None
    events = [event.to_wire() for event, _ in outcome.changes]
    return JSONResponse(
        {"event": events[-1] if events else None, "events": events, "state": state.to_wire()}
    )


# Agents.


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


# Changes.


async def claim(request: Request) -> Response:
    identity = authorize(request, DISTRIBUTORS)
    body = await read_body(request)
    segment = field(body, "segment", is_identifier, "an identifier")
    exclude = body.get("exclude")
    if exclude is None:
        exclude = []
    if not (
        isinstance(exclude, list)
        and len(exclude) <= MAX_EXCLUDE
        and all(isinstance(agent, str) and is_identifier(agent) for agent in exclude)
    ):
        raise Refused(
            ErrorCode.BAD_REQUEST, f"exclude must be a list of at most {MAX_EXCLUDE} agent ids"
        )
    outcome = await runtime_of(request).store.claim(
        identity.company, now=now_ms(), segment=segment, exclude=tuple(dict.fromkeys(exclude))
    )
    return await applied(request, identity.company, outcome)


async def acd(request: Request) -> Response:
    identity = authorize(request, DISTRIBUTORS)
    agent = path_agent(request)
    body = await read_body(request)
    value = required(body, "value", one_of(*ACD_VALUES), "occupying, releasing or timeout")
    reason = field(body, "reason", is_status, "a slug (lowercase words joined by hyphens)")
    if reason is not None and value != "releasing":
        # The log has no place for it: a reason elsewhere would be silently lost.
        raise Refused(ErrorCode.BAD_REQUEST, "only releasing takes a reason")
    outcome = await runtime_of(request).store.acd(
        identity.company, agent, value, now=now_ms(), reason=reason
    )
    return await applied(request, identity.company, outcome)


async def activity(request: Request) -> Response:
    identity = authorize(request, DISTRIBUTORS)
    agent = path_agent(request)
    value = required(
        await read_body(request),
        "value",
        one_of(*ACTIVITY_VALUES),
        ", ".join(sorted(ACTIVITY_VALUES)),
    )
    # conn "": the call platform holds no session, so it may act on any.
    outcome = await runtime_of(request).store.activity(
        identity.company, agent, value, now=now_ms(), conn=""
    )
    return await applied(request, identity.company, outcome)


async def force_status(request: Request) -> Response:
    identity = authorize(request, SUPERVISORS)
    agent = path_agent(request)
    value = required(await read_body(request), "value", is_status, "a status value")
    outcome = await runtime_of(request).store.set_status(
        identity.company, agent, value, by_user=False, now=now_ms()
    )
    return await applied(request, identity.company, outcome)


async def kick(request: Request) -> Response:
    identity = authorize(request, SUPERVISORS)
    agent = path_agent(request)
    runtime = runtime_of(request)
    # The session ends too: a kicked console must not come back by resuming it.
    outcome = await runtime.store.disconnect(
        identity.company,
        agent,
        reason="kicked",
        now=now_ms(),
        end_session=True,
        session_ttl=runtime.settings.session_ttl,
    )
    return await applied(request, identity.company, outcome)


# The log.


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Which events a log request selects; pages come ``after`` an id."""

    company: str
    agent: str | None
    start_ms: int | None
    end_ms: int | None
    session: str | None

    async def page(
        self, store: Store, after: str | None, limit: int
    ) -> tuple[list[Event], str | None]:
        if self.end_ms is not None and self.end_ms <= (self.start_ms or 0):
            return [], None  # an empty range, which XRANGE could not even express for to=0
        return await store.log(
            self.company,
            agent=self.agent,
            after=after,
            start_ms=self.start_ms,
            end_ms=self.end_ms,
            session=self.session,
            limit=limit,
        )


def csv_row(event: Event, zone: ZoneInfo, *, with_agent: bool) -> list[str]:
    """One event as the seed's export row; a null reason or session is an empty cell."""
    # The column shows seconds: whole seconds avoid float rounding at the edge.
    date = datetime.fromtimestamp(event.ts // 1000, zone).strftime("%Y-%m-%d %H:%M:%S")
    row = [date, event.type, event.value, event.reason or "", event.session or ""]
    return [event.agent, *row] if with_agent else row


def csv_lines(rows: Iterable[Iterable[str]]) -> bytes:
    """Rows as RFC 4180 text (the csv module's default dialect: minimal quoting,
    doubled quotes, CRLF), in UTF-8."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


async def csv_export(
    store: Store,
    selection: LogQuery,
    first: tuple[list[Event], str | None],
    zone: ZoneInfo,
    lang: str,
) -> AsyncIterator[bytes]:
    """The export, one page of the log at a time: a month never sits in memory."""
    with_agent = selection.agent is None
    header = (CSV_AGENT[lang], *CSV_HEADER[lang]) if with_agent else CSV_HEADER[lang]
    yield csv_lines([header])
    events, after = first
    while True:
        yield csv_lines(csv_row(event, zone, with_agent=with_agent) for event in events)
        if after is None:
            return
        events, after = await selection.page(store, after, CSV_PAGE)


async def events_response(request: Request, company: str, agent: str | None) -> Response:
    output = query(request, "format", one_of("json", "csv"), "json or csv") or "json"
    lang = query(request, "lang", one_of(*CSV_HEADER), "es or en") or "es"
    zone = query_zone(request)
    selection = LogQuery(
        company=company,
        agent=agent,
        start_ms=query_time(request, "from", zone),
        end_ms=query_time(request, "to", zone),
        session=query(request, "session", is_identifier, "a session id"),
    )
    after = query(request, "after", is_stream_id, "an event id")
    store = runtime_of(request).store
    if output == "json":
        limit = query_count(request, "limit", MAX_EVENTS_LIMIT) or EVENTS_LIMIT
        events, following = await selection.page(store, after, limit)
        return JSONResponse({"events": [event.to_wire() for event in events], "next": following})
    # Read the first page before answering: a store failure is then still a 503.
    first = await selection.page(store, after, CSV_PAGE)
    filename = "-".join([CSV_FILENAME[lang], company, *([agent] if agent else [])]) + ".csv"
    return StreamingResponse(
        csv_export(store, selection, first, zone, lang),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def agent_events(request: Request) -> Response:
    identity = authorize(request, SUPERVISORS)
    agent = path_agent(request)
    if await runtime_of(request).store.state(identity.company, agent) is None:
        raise Refused(ErrorCode.NOT_FOUND, f"agent {agent} has never connected")
    return await events_response(request, identity.company, agent)


async def company_events(request: Request) -> Response:
    identity = authorize(request, SUPERVISORS)
    return await events_response(request, identity.company, None)


# The company's settings.


def slug(label: str) -> str:
    """The seed's way to a value: lowercase, no accents, hyphens between words."""
    plain = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def checked_statuses(raw: object) -> list[dict[str, str]]:
    if not (isinstance(raw, list) and len(raw) <= MAX_STATUSES):
        raise Refused(
            ErrorCode.BAD_REQUEST, f"statuses must be a list of at most {MAX_STATUSES} statuses"
        )
    statuses: list[dict[str, str]] = []
    for item in raw:
        if not isinstance(item, dict):
            raise Refused(ErrorCode.BAD_REQUEST, "each status must be an object {value, label}")
        value, label = item.get("value"), item.get("label")
        if label is not None and not (
            isinstance(label, str) and label.strip() and len(label) <= MAX_LABEL
        ):
            raise Refused(
                ErrorCode.BAD_REQUEST, f"a label must be text of 1 to {MAX_LABEL} characters"
            )
        if value is None:
            if label is None:
                raise Refused(ErrorCode.BAD_REQUEST, "each status needs a value or a label")
            value = slug(label)
        value = checked(
            value, f"status {value!r}", is_status, "lowercase words joined by hyphens, ≤ 32 chars"
        )
        if value in SYSTEM_VALUES:
            raise Refused(ErrorCode.BAD_REQUEST, f"{value} is a system value, not a status")
        if any(status["value"] == value for status in statuses):
            raise Refused(ErrorCode.BAD_REQUEST, f"status {value} is listed twice")
        statuses.append(
            {"value": value, "label": label.strip() if label else DEFAULT_LABELS.get(value, value)}
        )
    return statuses


def merged_config(current: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """The settings after a ``PUT``: ``body``'s fields over ``current``, validated."""
    merged = {name: body.get(name, current[name]) for name in current}
    statuses = checked_statuses(merged["statuses"])
    listed = frozenset(["available", *(status["value"] for status in statuses)])
    for name in ("initial_status", "timeout_status"):
        value = merged[name]
        if value is None and name == "timeout_status":
            continue
        if not (isinstance(value, str) and value in listed):
            raise Refused(
                ErrorCode.UNKNOWN_STATUS, f"{name} must be available or one of the statuses"
            )
    return {
        "acd_mode": checked(
            merged["acd_mode"], "acd_mode", one_of("circular", "broadcast"), "circular or broadcast"
        ),
        "statuses": statuses,
        "initial_status": merged["initial_status"],
        "timeout_status": merged["timeout_status"],
    }


async def config_document(store: Store, company: str) -> dict[str, Any]:
    config = await store.config(company)
    return {
        "acd_mode": config.acd_mode,
        "statuses": await store.status_list(company),
        "initial_status": config.initial_status,
        "timeout_status": config.timeout_status,
    }


async def get_config(request: Request) -> Response:
    identity = authorize(request, SUPERVISORS)
    return JSONResponse(await config_document(runtime_of(request).store, identity.company))


async def put_config(request: Request) -> Response:
    identity = authorize(request, ADMINS)
    body = await read_body(request)
    store = runtime_of(request).store
    document = merged_config(await config_document(store, identity.company), body)
    await store.put_config_document(identity.company, **document)
    return JSONResponse(await config_document(store, identity.company))


routes: list[Route] = [
    Route("/v1/agents", api(list_agents), methods=["GET"]),
    Route("/v1/agents/{agent}", api(get_agent), methods=["GET"]),
    Route("/v1/stats", api(stats), methods=["GET"]),
    Route("/v1/acd/claim", api(claim), methods=["POST"]),
    Route("/v1/agents/{agent}/acd", api(acd), methods=["POST"]),
    Route("/v1/agents/{agent}/activity", api(activity), methods=["POST"]),
    Route("/v1/agents/{agent}/status", api(force_status), methods=["POST"]),
    Route("/v1/agents/{agent}/disconnect", api(kick), methods=["POST"]),
    Route("/v1/agents/{agent}/events", api(agent_events), methods=["GET"]),
    Route("/v1/events", api(company_events), methods=["GET"]),
    Route("/v1/config", api(get_config), methods=["GET"]),
    Route("/v1/config", api(put_config), methods=["PUT"]),
]

"""The log: ``GET /v1/events`` and ``/v1/agents/{agent}/events``, JSON pages or the CSV.

Apart because the CSV export streams: a month of events is read a page at a
time (:data:`CSV_PAGE`) and never sits in memory, and its columns, in Spanish
or English, are the seed's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from presence_protocol import ErrorCode, is_stream_id
from server.errors import Refused
from server.http_api.requests import (
    SUPERVISORS,
    authorize,
    is_identifier,
    one_of,
    path_agent,
    query,
    query_count,
    query_time,
    query_zone,
    runtime_of,
)
from server.state import Event
from server.store import Store

__all__ = [
    "CSV_PAGE",
    "LogQuery",
    "agent_events",
    "company_events",
    "csv_export",
    "csv_lines",
    "csv_row",
    "events_response",
]

EVENTS_LIMIT: Final = 1000
MAX_EVENTS_LIMIT: Final = 10_000
#: Events read per store call while streaming a CSV export.
CSV_PAGE: Final = 1000

#: The seed's export columns (Spanish, as the dashboard shows them) and their English.
CSV_HEADER: Final = {
    "es": ("Fecha", "Tipo", "Valor", "Razón de desconexión", "ID sesión"),
    "en": ("Date", "Type", "Value", "Disconnect reason", "Session ID"),
}
CSV_AGENT: Final = {"es": "Ejecutivo", "en": "Agent"}
CSV_FILENAME: Final = {"es": "eventos-de-conexion", "en": "connection-events"}


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

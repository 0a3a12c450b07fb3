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

The parts, one module each: :mod:`~server.http_api.requests` (tokens, parameters,
bodies, error bodies), :mod:`~server.http_api.agents` (reads),
:mod:`~server.http_api.changes` (claims, ACD events, statuses, kicks),
:mod:`~server.http_api.export` (the log, JSON or CSV) and
:mod:`~server.http_api.config` (the company's settings); this module joins them
into :data:`routes`.
"""

from __future__ import annotations

from starlette.routing import Route

from server.http_api.agents import get_agent, list_agents, stats
from server.http_api.changes import acd, activity, claim, force_status, kick
from server.http_api.config import get_config, merged_config, put_config
from server.http_api.export import agent_events, company_events, csv_lines, csv_row
from server.http_api.requests import HTTP_STATUS, api, authorize

__all__ = ["HTTP_STATUS", "api", "authorize", "csv_lines", "csv_row", "merged_config", "routes"]


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

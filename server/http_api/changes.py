"""Changes: the ACD's claims and acd/activity events, supervisors' statuses and kicks.

Each asks the store for one change and answers with what it recorded
(:func:`applied`); the store has already handed it to the hub, so this
instance's sockets hear of it at once, and a kick closes the agent's socket.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from presence_protocol import ACD_VALUES, ACTIVITY_VALUES, ErrorCode
from server.errors import Refused
from server.http_api.requests import (
    DISTRIBUTORS,
    SUPERVISORS,
    authorize,
    field,
    is_identifier,
    is_status,
    one_of,
    path_agent,
    read_body,
    required,
    runtime_of,
)
from server.store import Outcome, now_ms

__all__ = ["MAX_EXCLUDE", "acd", "activity", "applied", "claim", "force_status", "kick"]

#: The claim script reads as many index entries as there are exclusions.
MAX_EXCLUDE: Final = 1000


async def applied(request: Request, outcome: Outcome) -> JSONResponse:
    """Answer with what the change recorded (the store has told this instance's sockets)."""
    runtime = runtime_of(request)
    state = outcome.state or await runtime.store.state(outcome.company, outcome.agent)
    # The script refuses a never-seen agent, so an applied change has one.
    assert state is not None
    events = [event.to_wire() for event, _ in outcome.changes]
    return JSONResponse(
        {"event": events[-1] if events else None, "events": events, "state": state.to_wire()}
    )


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
    return await applied(request, outcome)


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
    return await applied(request, outcome)


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
    return await applied(request, outcome)


async def force_status(request: Request) -> Response:
    identity = authorize(request, SUPERVISORS)
    agent = path_agent(request)
    value = required(await read_body(request), "value", is_status, "a status value")
    outcome = await runtime_of(request).store.set_status(
        identity.company, agent, value, by_user=False, now=now_ms()
    )
    return await applied(request, outcome)


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
    return await applied(request, outcome)

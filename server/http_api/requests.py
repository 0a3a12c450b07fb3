"""Requests in, errors out: what every endpoint of the HTTP API does the same way.

Who may call (:func:`authorize`, with the role sets), how a query parameter, a
path's agent or a JSON body is read and checked, and how a refusal or a failure
becomes the spec's error body (:func:`api`, :data:`HTTP_STATUS`). One place, so
every endpoint refuses alike: the same codes, statuses and messages.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from presence_protocol import IDENTIFIER, STATUS_VALUE, ErrorCode
from server.auth import Identity, TokenError
from server.errors import Refused
from server.instances import STORE_ERRORS
from server.runtime import Runtime

__all__ = [
    "ADMINS",
    "DISTRIBUTORS",
    "HTTP_STATUS",
    "READERS",
    "SUPERVISORS",
    "Handler",
    "api",
    "authorize",
    "checked",
    "error_response",
    "field",
    "is_identifier",
    "is_status",
    "one_of",
    "path_agent",
    "query",
    "query_count",
    "query_time",
    "query_zone",
    "read_body",
    "required",
    "runtime_of",
]

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

#: Bodies are a few small fields; a bigger one is a mistake or an attack.
MAX_BODY: Final = 64 * 1024
COUNT: Final = re.compile(r"[1-9][0-9]{0,8}")
MILLISECONDS: Final = re.compile(r"[0-9]{1,15}")
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

Handler = Callable[[Request], Awaitable[Response]]


class BodyTooLarge(Refused):
    """A body over :data:`MAX_BODY`: HTTP 413, with the code ``bad-request`` (the spec has
    no code of its own for it; the status says which kind of bad request)."""

    status: Final = 413

    def __init__(self) -> None:
        super().__init__(ErrorCode.BAD_REQUEST, f"the body exceeds {MAX_BODY} bytes")


def error_response(code: ErrorCode, message: str, status: int | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if code is ErrorCode.UNAUTHORIZED else None
    return JSONResponse(
        {"error": {"code": code.value, "message": message}},
        status or HTTP_STATUS[code],
        headers=headers,
    )


def api(handler: Handler) -> Handler:
    """``handler`` answering its refusals and failures as the spec's error bodies."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except BodyTooLarge as refused:
            return error_response(refused.code, refused.message, refused.status)
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
        identity = runtime_of(request).tokens.verify(token.strip())
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
    """The JSON object of the body; an empty body is ``{}``; unknown fields stay unread.

    A body over :data:`MAX_BODY` is refused (413) as soon as its Content-Length says so,
    or as soon as that much has arrived: never read whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise BodyTooLarge()
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise BodyTooLarge()
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

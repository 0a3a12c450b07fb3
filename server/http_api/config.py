"""The company's settings: ``GET`` and ``PUT /v1/config``.

Apart because a ``PUT`` is the one body checked deeply: every status list is
validated (:func:`checked_statuses`) and merged over the current settings
(:func:`merged_config`) before the store keeps it, as every script run decodes it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from presence_protocol import SYSTEM_VALUES, ErrorCode
from server.errors import Refused
from server.http_api.requests import (
    ADMINS,
    SUPERVISORS,
    authorize,
    checked,
    is_status,
    one_of,
    read_body,
    runtime_of,
)
from server.state import DEFAULT_LABELS
from server.store import Store

__all__ = [
    "checked_statuses",
    "config_document",
    "get_config",
    "merged_config",
    "put_config",
    "slug",
]

#: Every script run decodes the company's statuses: keep the list short.
MAX_STATUSES: Final = 100
MAX_LABEL: Final = 64


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

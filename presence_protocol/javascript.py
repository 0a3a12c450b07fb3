"""The vocabulary (``vocabulary.py``) as an ES module, for the browser client.

``python -m presence_protocol.javascript`` prints it; the server serves the
committed copy (``server/web/sdk/vocabulary.js``, at ``/sdk/vocabulary.js``) and
``tests/test_javascript.py`` fails when the copy is not what this prints: the
browser and Python sides cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from presence_protocol.vocabulary import (
    ACD_VALUES,
    ACTIVITY_VALUES,
    DEFAULT_STATUSES,
    IDENTIFIER,
    JSON,
    MSGPACK,
    STATUS_VALUE,
    SYSTEM_VALUES,
    CloseCode,
    ErrorCode,
)

__all__ = ["render"]


def _strings(values: Iterable[str]) -> str:
    return json.dumps(sorted(values))


def _pattern(pattern: str) -> str:
    # Python's \Z (end of input) is JavaScript's $ without the m flag.
    return "/^(?:" + pattern.replace("\\Z", "$").replace("/", "\\/") + ")$/"


def render() -> str:
    """The module's text."""
    close_codes = ",\n".join(f"  {code.name}: {code.value}" for code in CloseCode)
    error_codes = ",\n".join(f"  {code.name}: {json.dumps(code.value)}" for code in ErrorCode)
    return f"""\
// The presence protocol's vocabulary, version 1 (spec §1–§5).
// Generated from presence_protocol/vocabulary.py by `python -m presence_protocol.javascript`:
// don't edit; tests/test_javascript.py fails when the two differ.

export const JSON_SUBPROTOCOL = {json.dumps(JSON)};
export const MSGPACK_SUBPROTOCOL = {json.dumps(MSGPACK)};

/** The statuses a company has unless it configures its own. */
export const DEFAULT_STATUSES = Object.freeze({json.dumps(list(DEFAULT_STATUSES))});
/** Activities a console or a call platform reports. */
export const ACTIVITY_VALUES = Object.freeze({_strings(ACTIVITY_VALUES)});
/** What the ACD does to an agent. */
export const ACD_VALUES = Object.freeze({_strings(ACD_VALUES)});
/** Values the system owns: never a company's custom status. */
export const SYSTEM_VALUES = Object.freeze({_strings(SYSTEM_VALUES)});

/** Agent, company, segment and session ids. */
export const IDENTIFIER = {_pattern(IDENTIFIER.pattern)};
/** A status value. */
export const STATUS_VALUE = {_pattern(STATUS_VALUE.pattern)};

/** WebSocket close codes, the RFC's and the protocol's. */
export const CloseCode = Object.freeze({{
{close_codes},
}});

/** Whether a close code forbids reconnecting automatically (4500–4999). */
export function isTerminal(code) {{
  return code >= 4500 && code <= 4999;
}}

/** The `code` of an `error` frame and of an HTTP error body. */
export const ErrorCode = Object.freeze({{
{error_codes},
}});
"""


if __name__ == "__main__":
    print(render(), end="")

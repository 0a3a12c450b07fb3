// The presence protocol's vocabulary, version 1 (spec §1–§5).
// Generated from presence_protocol/vocabulary.py by `python -m presence_protocol.javascript`:
// don't edit; tests/test_javascript.py fails when the two differ.

export const JSON_SUBPROTOCOL = "presence.v1.json";
export const MSGPACK_SUBPROTOCOL = "presence.v1.msgpack";

/** The statuses a company has unless it configures its own. */
export const DEFAULT_STATUSES = Object.freeze(["busy", "break", "bath", "meal", "gathering", "training"]);
/** Activities a console or a call platform reports. */
export const ACTIVITY_VALUES = Object.freeze(["dismiss", "end-call", "in-call", "meeting", "meeting-end"]);
/** What the ACD does to an agent. */
export const ACD_VALUES = Object.freeze(["occupying", "releasing", "timeout"]);
/** Values the system owns: never a company's custom status. */
export const SYSTEM_VALUES = Object.freeze(["available", "connected", "disconnected", "dismiss", "end-call", "in-call", "meeting", "meeting-end", "occupying", "reconnected", "releasing", "timeout"]);

/** Agent, company, segment and session ids. */
export const IDENTIFIER = /^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63})$/;
/** A status value. */
export const STATUS_VALUE = /^(?:(?=.{1,32}$)[a-z0-9]+(?:-[a-z0-9]+)*)$/;

/** WebSocket close codes, the RFC's and the protocol's. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  TOO_SLOW: 4100,
  RATE_LIMITED: 4129,
  PROTOCOL_ERROR: 4500,
  UNAUTHORIZED: 4501,
  FORBIDDEN: 4503,
  REPLACED: 4509,
  KICKED: 4510,
  TOKEN_EXPIRED: 4511,
});

/** Whether a close code forbids reconnecting automatically (4500–4999). */
export function isTerminal(code) {
  return code >= 4500 && code <= 4999;
}

/** The `code` of an `error` frame and of an HTTP error body. */
export const ErrorCode = Object.freeze({
  BAD_REQUEST: "bad-request",
  UNAUTHORIZED: "unauthorized",
  FORBIDDEN: "forbidden",
  NOT_FOUND: "not-found",
  UNKNOWN_STATUS: "unknown-status",
  INVALID_TRANSITION: "invalid-transition",
  ACD_MODE: "acd-mode",
  NO_AGENT_AVAILABLE: "no-agent-available",
  RATE_LIMITED: "rate-limited",
  STORE_UNAVAILABLE: "store-unavailable",
  INTERNAL: "internal",
});

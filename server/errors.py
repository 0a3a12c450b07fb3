"""Exceptions of the server package.

::

    PresenceServerError
    ├── Refused            a change's precondition failed (carries the spec's code)
    ├── StaleConnection    a console acted for a session it no longer holds
    ├── StoreUnavailable   Redis did not answer; the change may be retried
    └── NotReplicated      no replica confirmed a write in time (durability replicated)
"""

from __future__ import annotations

from presence_protocol import ErrorCode

__all__ = [
    "NotReplicated",
    "PresenceServerError",
    "Refused",
    "StaleConnection",
    "StoreUnavailable",
]


class PresenceServerError(Exception):
    """The root of the server's exceptions."""


class Refused(PresenceServerError):
    """Raised when a change's precondition fails; nothing was recorded."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StaleConnection(PresenceServerError):
    """Raised when a connection acts for a session another connection took over."""


class StoreUnavailable(PresenceServerError):
    """Raised when Redis cannot be reached; whether the change applied is unknown
    only if it was sent, and the caller is told to retry (``store-unavailable``)."""


class NotReplicated(PresenceServerError):
    """Raised when a write was applied but no replica confirmed it in time: it
    may still be lost to a failover, so it is not acknowledged. Retried like a
    Redis error, then answered ``store-unavailable``."""

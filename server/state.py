"""What the server serves and records for an agent (spec §2–§3): the state, the
event, a company's settings, and their words. Plain data, no I/O.

The rules that change a state live in ``lua/apply.lua``, which runs, and in
:mod:`server.reference_model`, which states them in Python for the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from presence_protocol import DEFAULT_STATUSES

__all__ = [
    "ACD",
    "DEFAULT_LABELS",
    "DISCONNECT_REASONS",
    "OFFLINE",
    "ONLINE",
    "SYSTEM_CHANGED",
    "USER_CHANGED",
    "AgentState",
    "CompanyConfig",
    "Event",
]

# Event types (the seed's "Tipo").
SYSTEM_CHANGED: Final = "status-changed"
USER_CHANGED: Final = "status-changed-user"
ACD: Final = "acd"

ONLINE: Final = "online"
OFFLINE: Final = "offline"

#: Why a connection ended (the seed's "Razón de desconexión").
DISCONNECT_REASONS: Final = frozenset(
    {
        "client-closed",
        "transport-closed",
        "heartbeat-timeout",
        "session-replaced",
        "connection-replaced",
        "kicked",
        "server-shutdown",
        "server-lost",
        "protocol-error",
        "token-expired",
        "rate-limited",
    }
)


#: The seed's labels for the default statuses.
DEFAULT_LABELS: Final[Mapping[str, str]] = {
    "busy": "Ocupado",
    "break": "Descanso",
    "bath": "Baño",
    "meal": "Comida",
    "gathering": "Reunión externa",
    "training": "Capacitación",
}


@dataclass(frozen=True, slots=True)
class CompanyConfig:
    """The settings of one company that the rules read (spec §6 ``config``)."""

    acd_mode: Literal["circular", "broadcast"] = "circular"
    statuses: tuple[str, ...] = DEFAULT_STATUSES
    initial_status: str = "busy"
    timeout_status: str | None = None

    def allows(self, status: str) -> bool:
        return status == "available" or status in self.statuses


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the company's log."""

    ts: int
    agent: str
    session: str | None
    type: str
    value: str
    reason: str | None = None
    #: The agent's segments, carried by ``connected``/``reconnected`` so the log
    #: alone rebuilds the state.
    segments: tuple[str, ...] | None = None
    #: The stream entry id; ``None`` until the store has appended it.
    id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "id": self.id,
            "ts": self.ts,
            "agent": self.agent,
            "session": self.session,
            "type": self.type,
            "value": self.value,
            "reason": self.reason,
        }
        if self.segments is not None:
            wire["segments"] = list(self.segments)
        return wire


@dataclass(frozen=True, slots=True)
class AgentState:
    """What the server serves for one agent (spec §2)."""

    agent: str
    session: str | None = None
    connection: str = OFFLINE
    status: str | None = None
    activity: str = "idle"
    segments: tuple[str, ...] = ()
    since: Mapping[str, int | None] = field(
        default_factory=lambda: {"connection": None, "status": None, "activity": None}
    )
    idle_since: int | None = None
    version: str | None = None

    @property
    def routable(self) -> bool:
        return self.connection == ONLINE and self.status == "available" and self.activity == "idle"

    @property
    def online(self) -> bool:
        return self.connection == ONLINE

    def to_wire(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "session": self.session,
            "connection": self.connection,
            "status": self.status,
            "activity": self.activity,
            "routable": self.routable,
            "segments": list(self.segments),
            "since": dict(self.since),
            "idle_since": self.idle_since,
            "version": self.version,
        }

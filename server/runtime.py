"""What every endpoint of one server instance shares."""

from __future__ import annotations

from dataclasses import dataclass

from server.auth import Tokens
from server.config import Settings
from server.deferred import Deferred
from server.feed import Feeds
from server.hub import Hub
from server.instances import Liveness
from server.metrics import Metrics
from server.store import Store

__all__ = ["Runtime"]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    store: Store
    hub: Hub
    feeds: Feeds
    liveness: Liveness
    deferred: Deferred
    #: What verifies tokens: HS256 secrets, public keys, a JWKS URL's key set.
    tokens: Tokens
    #: This instance's id: part of every connection id it hands out.
    instance: str
    #: This app's Prometheus registry and metrics (GET /metrics).
    metrics: Metrics
    #: Set when SIGTERM's drain begins: new sockets are turned away.
    draining: bool = False
    #: Sockets held (from the handshake on), against ``max_connections``.
    sockets: int = 0

"""Prometheus metrics: every metric this server exports, served by ``GET /metrics``.

``presence_connections`` — gauge, label ``kind``
    Open sockets now: ``agent`` (from its session's ``hello`` to its end) or ``monitor``
    (from the start, ``hello`` included).
``presence_events_total`` — counter, labels ``type``, ``value``
    Events this instance appended to the log (``status-changed``/``connected``,
    ``status-changed-user``/``break``, ``acd``/``occupying``…).
``presence_script_seconds`` — histogram, label ``op``
    Latency of one write (``lua/apply.lua``: ``hello``, ``status``, ``disconnect``…),
    its retries included, failed writes too.
``presence_pubsub_lag_seconds`` — histogram
    Changes another instance published because they concern a connection here
    (a push, a kick, a replacement): from the entry entering the log (its stream
    id, on Redis's clock) to this instance hearing of it over pub/sub.
``presence_monitor_queue_depth`` — gauge
    Frames waiting in the monitors' queues, summed, at scrape time.
``presence_redis_errors_total`` — counter, label ``where``
    Redis connection/timeout errors caught: ``script`` (each failed write attempt),
    ``pubsub`` (the listener lost), ``feed`` (a monitor feed's read). The liveness
    loop's own errors are only logged (``server/instances.py``).
``presence_ghost_sessions_cleaned_total`` — counter
    Sessions of dead instances this instance recorded ``server-lost`` for.
``presence_deferred_disconnections`` — gauge
    Disconnections waiting for Redis to come back to be written.

Each app has its own :class:`~prometheus_client.CollectorRegistry`, not
prometheus_client's global one: a process may run several apps (the tests do),
and a global registry would refuse their second set of metrics and mix their
counts. The store, the hub and the feeds report through
:class:`server.store.Observer`, so they need no Prometheus import.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from server.deferred import Deferred
from server.feed import Feeds
from server.instances import Liveness
from server.store import Observer, Outcome

__all__ = ["Metrics"]

#: A write is one EVALSHA, well under a millisecond on a local Redis; the tail
#: reaches the store's retry window (``store_retry``, 5 s by default).
SCRIPT_BUCKETS: Final = (
    0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Pub/sub is usually a millisecond or two; seconds mean a stalled listener.
LAG_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
#: Label values created up front, so a scrape shows a zero rather than nothing
#: (``rate()`` over a series that appears late misses its first increments).
CONNECTION_KINDS: Final = ("agent", "monitor")
ERROR_PLACES: Final = ("script", "pubsub", "feed")


class _GhostsCleaned(Collector):
    """``Liveness.cleaned``, read at scrape time: the sweeper keeps its own count."""

    def __init__(self, liveness: Liveness) -> None:
        self.liveness = liveness

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(
            "presence_ghost_sessions_cleaned",
            "Sessions of dead instances this instance recorded server-lost for.",
        )

    def describe(self) -> Iterator[Metric]:
        # Lets the registry check the name is not taken, without reading a value.
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        family.add_metric([], self.liveness.cleaned)
        yield family


class Metrics(Observer):
    """One app's registry and metrics (the module docstring lists them)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.connections = Gauge(
            "presence_connections", "Open sockets.", ["kind"], registry=registry
        )
        self.events = Counter(
            "presence_events",
            "Events this instance appended to the log.",
            ["type", "value"],
            registry=registry,
        )
        self.script_seconds = Histogram(
            "presence_script_seconds",
            "Latency of a write script call, retries included.",
            ["op"],
            buckets=SCRIPT_BUCKETS,
            registry=registry,
        )
        self.pubsub_lag_seconds = Histogram(
            "presence_pubsub_lag_seconds",
            "From an entry's append to its receipt over pub/sub, for other instances' changes "
            "concerning this one's connections.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.redis_errors = Counter(
            "presence_redis_errors",
            "Redis connection and timeout errors caught.",
            ["where"],
            registry=registry,
        )
        self.monitor_queue_depth = Gauge(
            "presence_monitor_queue_depth",
            "Frames waiting in the monitors' queues, summed.",
            registry=registry,
        )
        self.deferred_disconnections = Gauge(
            "presence_deferred_disconnections",
            "Disconnections waiting for Redis to be written.",
            registry=registry,
        )
        # Labelled children, looked up once: .labels() costs more than the
        # observation itself, and these run for every change.
        self._script_by_op: dict[str, Histogram] = {}
        self._events_by_kind: dict[tuple[str, str], Counter] = {}
        for kind in CONNECTION_KINDS:
            self.connections.labels(kind)
        for where in ERROR_PLACES:
            self.redis_errors.labels(where)

    def watch(self, *, feeds: Feeds, deferred: Deferred, liveness: Liveness) -> None:
        """Read what the runtime already keeps at scrape time, rather than
        mirroring each change of it."""
        self.monitor_queue_depth.set_function(
            lambda: float(sum(subscriber.queued for subscriber in feeds.subscribers()))
        )
        self.deferred_disconnections.set_function(lambda: float(len(deferred)))
        self.registry.register(_GhostsCleaned(liveness))

    # What the store, the hub and the feeds report (server.store.Observer).

    def script_run(self, op: str, seconds: float) -> None:
        child = self._script_by_op.get(op)
        if child is None:
            child = self._script_by_op[op] = self.script_seconds.labels(op)
        child.observe(seconds)

    def applied(self, outcome: Outcome) -> None:
        for event, _ in outcome.changes:
            key = (event.type, event.value)
            child = self._events_by_kind.get(key)
            if child is None:
                child = self._events_by_kind[key] = self.events.labels(*key)
            child.inc()

    def redis_error(self, where: str) -> None:
        self.redis_errors.labels(where).inc()

    def pubsub_lag(self, seconds: float) -> None:
        self.pubsub_lag_seconds.observe(seconds)

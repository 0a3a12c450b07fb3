"""The ASGI application and how uvicorn runs it.

Resources — the Redis client, the hub's pub/sub listener — start and stop in
one lifespan, so shutdown is orderly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from server import http_api, pages, redis_client
from server.agent_ws import agent_endpoint
from server.auth import Tokens
from server.config import Settings
from server.deferred import Deferred
from server.feed import Feeds, Subscriber
from server.hub import Hub, LocalConnection
from server.instances import STORE_ERRORS, Liveness
from server.metrics import Metrics
from server.monitor_ws import monitor_endpoint
from server.retention import retain
from server.runtime import Runtime
from server.store import Store
from server.subscriptions import ClusterMasters, OneNode, Placement, Subscriptions
from server.websocket_protocol import CONNECTIONS_LOG, PresenceWebSocketProtocol

__all__ = ["PresenceServer", "create_app", "drain", "uvicorn_config"]

log = logging.getLogger("presence")


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    if await runtime.store.ping():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "store-unavailable"}, status_code=503)


async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text format; no token, like the probes: scrapers carry none."""
    runtime: Runtime = request.app.state.runtime
    body = generate_latest(runtime.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings, *, redis_url: str, secret: str | Sequence[str]) -> Starlette:
    """The server application, using the Redis at ``redis_url``; tokens verified
    with the HS256 ``secret`` (or secrets, none with public keys) and the settings' keys."""
    tokens = Tokens.configured(settings, (secret,) if isinstance(secret, str) else tuple(secret))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A bounded pool that makes callers wait for a free connection: the
        # default one fails outright past its size, and a burst of consoles
        # connecting at once (an instance restarted) would get store-unavailable.
        instance = secrets.token_hex(6)
        # Named, so that CLIENT LIST tells which instance holds which connection.
        client = redis_client.connect(
            redis_url,
            client_name=f"presence:{instance}",
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=10,
            max_connections=settings.redis_connections,
            timeout=10,
        )
        # The pub/sub connections (one per master) live as long as the
        # instance, reading with no timeout: never the write pool's.
        placement: Placement
        if isinstance(client, redis_client.BoundedRedisCluster):
            placement = ClusterMasters(client, client_name=f"presence:{instance}:pubsub")
        else:
            placement = OneNode.connect(redis_url, client_name=f"presence:{instance}:pubsub")
        metrics = Metrics()
        store = Store(
            client,
            settings.key_prefix,
            instance,
            settings.store_retry,
            observer=metrics,
            replicas=1 if settings.durability == "replicated" else 0,
        )
        subscriptions = Subscriptions(placement, metrics)
        hub = Hub(store, subscriptions)
        store.on_applied = hub.dispatch
        hub.listen()
        liveness = Liveness(store, hub, settings.instance_ttl, settings.session_ttl)
        runtime = Runtime(
            settings,
            store,
            hub,
            Feeds(store, subscriptions),
            liveness,
            Deferred(store, liveness),
            tokens,
            instance,
            metrics,
        )
        metrics.watch(feeds=runtime.feeds, deferred=runtime.deferred, liveness=liveness)
        app.state.runtime = runtime

        async def restore_sessions(companies: set[str]) -> None:
            for connection in hub.connections():
                if connection.company in companies:
                    await connection.restore()

        liveness.on_data_lost = restore_sessions
        tasks = [
            asyncio.create_task(subscriptions.run(), name="presence-pubsub"),
            asyncio.create_task(runtime.feeds.check(), name="presence-feed-check"),
            asyncio.create_task(liveness.run(), name="presence-liveness"),
            asyncio.create_task(runtime.deferred.run(), name="presence-deferred"),
            asyncio.create_task(retain(store, settings.retention_days), name="presence-retention"),
            asyncio.create_task(tokens.run(), name="presence-jwks-refresh"),
        ]
        # Serve only once other instances' changes reach us.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await subscriptions.connected.wait()
        log.info("instance %s ready (key prefix %r)", instance, settings.key_prefix)
        try:
            yield
        finally:
            await runtime.feeds.close()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if not runtime.deferred:
                # Drained: nothing of ours is left for a sweeper. (With writes still
                # waiting, stay listed: a sweeper records server-lost for them.)
                with contextlib.suppress(*STORE_ERRORS):
                    await liveness.leave()
            await client.aclose()  # the pub/sub clients closed with their task

    return Starlette(
        routes=[
            WebSocketRoute("/v1/agent", agent_endpoint),
            WebSocketRoute("/v1/monitor", monitor_endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", prometheus_metrics),
            *http_api.routes,
            *pages.routes,
        ],
        lifespan=lifespan,
    )


async def drain(runtime: Runtime) -> None:
    """Record ``server-shutdown`` for every session held here and close every
    socket with 1001, within ``drain_timeout``: consoles and monitors reconnect
    to another instance on their own."""
    runtime.draining = True  # from here, sockets that finish hello are drained too
    sockets: list[LocalConnection | Subscriber] = [
        *runtime.hub.connections(),
        *runtime.feeds.subscribers(),
    ]
    if not sockets:
        return
    log.info("draining %d sockets", len(sockets))
    pending = [asyncio.create_task(socket.drain()) for socket in sockets]
    _, late = await asyncio.wait(pending, timeout=runtime.settings.drain_timeout)
    for task in late:
        task.cancel()
    if late:
        log.warning("drain: %d sockets not closed in time", len(late))


class PresenceServer(uvicorn.Server):
    """uvicorn's server, draining presence between refusing new connections and
    closing the open ones (which uvicorn would do with 1012 and no record)."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        runtime: Runtime | None = getattr(self.app.state, "runtime", None)
        if runtime is not None:
            await drain(runtime)
        await super().shutdown(sockets)


def uvicorn_config(app: Starlette, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """How the app must be served: our WebSocket protocol, its limits, no deflate."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "ws": PresenceWebSocketProtocol,
        # httptools parses HTTP/1.1 in C: a third more claims per second than h11.
        "http": "httptools",
        "ws_max_size": settings.max_message_size,
        "ws_ping_interval": settings.ping_interval,
        "ws_ping_timeout": settings.ping_timeout,
        # Compression costs ~100 KiB per socket and invites compression attacks;
        # presence frames are tiny.
        "ws_per_message_deflate": False,
        "lifespan": "on",
        "log_level": settings.log_level,
        # A line per request (the ACD claims thousands a second) says nothing an operator
        # needs that /metrics doesn't; at debug, they and the sockets' lines come back.
        "access_log": settings.log_level == "debug",
        # Our handler (server/logs.py) writes uvicorn's lines too, in the same format; the
        # tests' in-process servers then log through pytest's.
        "log_config": None,
        "proxy_headers": False,
    }
    options.update(overrides)
    config = uvicorn.Config(app, **options)
    # After the Config: it configures uvicorn's loggers, which resets their children's levels.
    CONNECTIONS_LOG.setLevel(logging.DEBUG if settings.log_level == "debug" else logging.WARNING)
    return config

"""The ASGI application and how uvicorn runs it.

Resources — the Redis client, the hub's pub/sub listener — start and stop in
one lifespan, so shutdown is orderly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from server import http_api
from server.agent_ws import agent_endpoint
from server.config import Settings
from server.feed import Feeds
from server.hub import Hub
from server.monitor_ws import monitor_endpoint
from server.retention import retain
from server.runtime import Runtime
from server.store import Store
from server.wsproto import PresenceWebSocketProtocol

__all__ = ["create_app", "uvicorn_config"]

log = logging.getLogger("presence")


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    if await runtime.store.ping():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "store-unavailable"}, status_code=503)


def create_app(settings: Settings, *, redis_url: str, secret: str) -> Starlette:
    """The server application, using the Redis at ``redis_url``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(
            redis_url, decode_responses=True, socket_connect_timeout=5, socket_timeout=10
        )
        instance = secrets.token_hex(6)
        store = Store(client, prefix=settings.key_prefix, instance=instance)
        hub = Hub(store)
        feeds = Feeds(store)
        app.state.runtime = Runtime(settings, store, hub, feeds, secret, instance)
        subscribed = asyncio.Event()
        listener = asyncio.create_task(hub.listen(subscribed), name="presence-pubsub")
        retention = asyncio.create_task(
            retain(store, settings.retention_days), name="presence-retention"
        )
        # Serve only once other instances' changes reach us.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subscribed.wait(), 10)
        log.info("instance %s ready (key prefix %r)", instance, settings.key_prefix)
        try:
            yield
        finally:
            await feeds.close()
            for task in (listener, retention):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await client.aclose()

    return Starlette(
        routes=[
            WebSocketRoute("/v1/agent", agent_endpoint),
            WebSocketRoute("/v1/monitor", monitor_endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *http_api.routes,
        ],
        lifespan=lifespan,
    )


def uvicorn_config(app: Starlette, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """How the app must be served: our WebSocket protocol, its limits, no deflate."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "ws": PresenceWebSocketProtocol,
        "ws_max_size": settings.max_message_size,
        "ws_ping_interval": settings.ping_interval,
        "ws_ping_timeout": settings.ping_timeout,
        # Compression costs ~100 KiB per socket and invites compression attacks;
        # presence frames are tiny.
        "ws_per_message_deflate": False,
        "lifespan": "on",
        "log_level": settings.log_level,
        "proxy_headers": False,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)

"""Fixtures: a real Redis for the session, a unique key prefix per test; and the
limits of pytest-timeout and Hypothesis, scaled like every timeout (tests/timing.py)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import hypothesis
import pytest
import uvicorn

from server.app import PresenceServer, create_app, uvicorn_config
from server.config import Settings
from server.redis_client import RedisClient, connect
from server.store import Store
from tests.invariants import check_company
from tests.redis_server import test_redis_url
from tests.servers import RunningServer
from tests.timing import SCALE, seconds

# Hypothesis fails an example that runs past its deadline (200 ms unless a test
# says otherwise): as slow a machine gets as long.
hypothesis.settings.register_profile("scaled", deadline=timedelta(seconds=seconds(0.2)))
hypothesis.settings.load_profile("scaled")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """pytest-timeout's limit for each test (pyproject's ``timeout``), scaled, unless
    ``--timeout`` or ``PYTEST_TIMEOUT`` gives one or a test has its own."""
    configured = config.getini("timeout")
    if SCALE == 1 or not configured or config.getoption("timeout") is not None:
        return
    if os.environ.get("PYTEST_TIMEOUT"):
        return
    limit = pytest.mark.timeout(float(configured) * SCALE)
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(limit)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with test_redis_url() as url:
        yield url


@pytest.fixture
def key_prefix() -> str:
    """Unique per test, so tests can share one server (CI's machine Redis) safely."""
    return f"test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_client(redis_url: str, key_prefix: str) -> AsyncIterator[RedisClient]:
    """A client of the tests' Redis (a cluster's, on a cluster)."""
    client = connect(redis_url, decode_responses=True)
    yield client
    # Leave a shared server as we found it.
    keys = [key async for key in client.scan_iter(match=key_prefix + "*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def store(redis_client: RedisClient, key_prefix: str) -> Store:
    return Store(redis_client, prefix=key_prefix)


#: What the server gives a client before it gives up on it, and the beat of its
#: own proof of life: the defaults, scaled. The server runs in the test's event
#: loop, beside the test's clients, so these deadlines are met only as promptly
#: as that loop runs, and a busy machine must not break them. A test about one
#: of them sets its own, short and scaled (``ping_timeout=seconds(0.5)``).
LOOP_DEADLINES = ("ping_interval", "ping_timeout", "hello_timeout", "instance_ttl")


def scaled_defaults() -> dict[str, float]:
    defaults = Settings()
    return {name: seconds(getattr(defaults, name)) for name in LOOP_DEADLINES}


@pytest.fixture
async def start_server(
    redis_url: str, key_prefix: str, redis_client: RedisClient
) -> AsyncIterator[Callable[..., Awaitable[RunningServer]]]:
    """Start uvicorn in this event loop on port 0, with the default settings but
    for the scaled :data:`LOOP_DEADLINES` and ``overrides``; stopped after the test."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(send_buffer: int | None = None, **overrides: Any) -> RunningServer:
        """``send_buffer``: SO_SNDBUF of every accepted socket (inherited from the
        listener), so a test can fill a connection's pipe with little data."""
        settings = Settings(key_prefix=key_prefix, **{**scaled_defaults(), **overrides})
        secret = f"test-secret-{key_prefix}-{'x' * 32}"
        app = create_app(settings, redis_url=redis_url, secret=secret)
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say
        # so, and without it every response waits for a delayed ACK (~40 ms).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        sock.bind(("127.0.0.1", 0))
        server = PresenceServer(uvicorn_config(app, settings, log_level="warning"), app)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        running.append((server, task))
        async with asyncio.timeout(seconds(10)):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)  # uvicorn offers no startup event to await
        return RunningServer(settings, secret, sock.getsockname()[1])

    yield start
    for server, _ in running:
        server.should_exit = True
    for _, task in running:
        await asyncio.wait_for(task, seconds(15))
    # Whatever the test did, the log must replay to the served state and keep
    # the invariants, for every company it touched.
    store = Store(redis_client, prefix=key_prefix)
    async for key in redis_client.scan_iter(match=key_prefix + "{*}:events"):
        await check_company(store, key[len(key_prefix) + 1 : key.index("}:")])


@pytest.fixture
async def server(start_server: Callable[..., Awaitable[RunningServer]]) -> RunningServer:
    """A server with the default settings, its deadlines scaled (no short heartbeat:
    a test whose client pauses, or whose loop is busy, for a moment must not lose
    its sockets; the heartbeat's own tests set theirs)."""
    return await start_server()

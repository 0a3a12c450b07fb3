"""Servers as real processes (``python -m server``), and a load balancer for them;
the bench runs its servers with the same harness.

For the tests of what only processes show: SIGKILL, SIGTERM, restarts, several
instances on one Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from server.embedded import die_with_parent
from tests.redis_server import free_port
from tests.timing import eventually, seconds


class Addresses:
    """The URLs of whatever listens on ``port`` on loopback."""

    port: int

    @property
    def agent_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/agent"

    @property
    def monitor_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/monitor"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class ServerProcess(Addresses):
    process: asyncio.subprocess.Process
    port: int
    #: What it has logged so far (stderr, read continuously so the pipe never fills).
    log: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def warnings(self, since: int = 0) -> list[str]:
        """What it logged at WARNING or ERROR (from line ``since`` on)."""
        return [line for line in self.log[since:] if " WARNING " in line or " ERROR " in line]

    def kill(self) -> None:
        self.process.kill()

    async def stop(self) -> int:
        """SIGTERM, and wait for the drain to end; the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), seconds(20))


@asynccontextmanager
async def running_process(
    args: Sequence[str], env: Mapping[str, str], port: int
) -> AsyncIterator[ServerProcess]:
    """Run ``python *args`` with ``env`` until the block ends, once ``GET /healthz``
    answers on ``port`` (whatever it logs, and at whatever level)."""
    # Only the settings the caller states: none leaks in from the environment.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PRESENCE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env={**inherited, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        # Dies with the test run, even one killed mid-way: nothing is left behind.
        preexec_fn=die_with_parent,
    )
    running = ServerProcess(process, port)

    async def read_log() -> None:
        assert process.stderr is not None
        while line := (await process.stderr.readline()).decode():
            running.log.append(line.rstrip())

    reader = asyncio.create_task(read_log())
    try:
        async with httpx.AsyncClient() as client:

            async def healthy() -> bool:
                assert process.returncode is None, f"{args} exited early: {running.log}"
                with contextlib.suppress(httpx.TransportError):
                    return (await client.get(f"{running.http_url}/healthz")).status_code == 200
                return False

            await eventually(healthy, seconds(20))
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), seconds(20))
            # EOF on the log comes when every holder of the pipe is gone, an
            # embedded store included.
            await asyncio.wait_for(reader, seconds(15))
        except TimeoutError:
            process.kill()
            tail = "\n".join(running.log[-30:])
            message = f"{args} did not end after SIGTERM; its log:\n{tail}"
            raise AssertionError(message) from None


@asynccontextmanager
async def presence_server(
    env: Mapping[str, str], port: int | None = None
) -> AsyncIterator[ServerProcess]:
    """Run ``python -m server`` with ``env`` (``PRESENCE_*``) until the block ends."""
    port = port or free_port()
    async with running_process(["-m", "server"], {"PRESENCE_PORT": str(port), **env}, port) as s:
        yield s


class LoadBalancer(Addresses):
    """A TCP proxy in front of instances, as a real one would be: each new
    connection goes to the next backend that accepts it; no stickiness."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self._next = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> LoadBalancer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(len(self.backends)):
            port = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue  # that instance is down: try the next
            for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
                task = asyncio.create_task(self._pipe(source, sink))
                self._pipes.add(task)
                task.add_done_callback(self._pipes.discard)
            return
        writer.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()

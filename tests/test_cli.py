"""``presence-server`` as a user runs it: a real process, the embedded store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import redis
import redis.asyncio
from websockets.asyncio.client import connect

from server.config import OPTIONS
from tests.redis_server import free_port
from tests.timing import seconds


@dataclass
class ServerProcess:
    process: asyncio.subprocess.Process
    #: What it has logged so far (stderr, read continuously so the pipe never fills).
    log: list[str] = field(default_factory=list)


@asynccontextmanager
async def presence_server(data_dir: Path, port: int) -> AsyncIterator[ServerProcess]:
    """Run the program until the block ends (SIGTERM)."""
    env = {
        **os.environ,
        "PRESENCE_DATA_DIR": str(data_dir),
        "PRESENCE_PORT": str(port),
        "PRESENCE_KEY_PREFIX": "cli-test:",
    }
    env.pop("PRESENCE_REDIS_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", env=env, stderr=asyncio.subprocess.PIPE
    )
    running = ServerProcess(process)
    started = asyncio.Event()

    async def read_log() -> None:
        assert process.stderr is not None
        while line := (await process.stderr.readline()).decode():
            running.log.append(line.rstrip())
            if "Uvicorn running on" in line:  # logged once the port is bound
                started.set()

    reader = asyncio.create_task(read_log())
    try:
        async with asyncio.timeout(seconds(20)):
            await asyncio.wait(
                [asyncio.create_task(started.wait()), reader], return_when="FIRST_COMPLETED"
            )
        assert started.is_set(), f"the server exited early: {running.log}"
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), seconds(15))
        # EOF on the log comes when every holder of the pipe is gone, the
        # embedded store included.
        await asyncio.wait_for(reader, seconds(15))


def embedded_store_url(log: list[str]) -> str:
    line = next(line for line in log if "embedded Valkey at" in line)
    return line.split("embedded Valkey at ")[1].split(",")[0]


async def wait_until_gone(url: str) -> None:
    """Until nothing answers at ``url``: the embedded store has stopped."""
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=1)
    try:
        async with asyncio.timeout(seconds(10)):
            while True:
                try:
                    await client.ping()
                except redis.ConnectionError:
                    return
                await asyncio.sleep(0.05)  # another process's exit: nothing to await
    finally:
        await client.aclose()


def http_get(url: str) -> tuple[int, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=seconds(5)) as response:
        return response.status, json.loads(response.read())


def dev_token(data_dir: Path, sub: str) -> str:
    command = [
        sys.executable,
        "-m",
        "server",
        "token",
        "--company",
        "acme",
        "--sub",
        sub,
        "--role",
        "agent",
        "--segments",
        "sales,vip",
        "--data-dir",
        str(data_dir),
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


async def say_hello(port: int, token: str) -> dict[str, object]:
    url = f"ws://127.0.0.1:{port}/v1/agent"
    async with connect(url, subprotocols=["presence.v1.json"]) as ws:
        await ws.send(json.dumps({"t": "hello", "token": token}))
        welcome: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), seconds(5)))
        await ws.send(json.dumps({"t": "bye"}))
        await asyncio.wait_for(ws.recv(), seconds(5))
    return welcome


async def test_embedded_store_keeps_data_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    async with presence_server(tmp_path, port) as server:
        log = server.log
        assert any("embedded Valkey" in line for line in log), log
        assert any("generated one" in line for line in log), log
        assert not any("eyJ" in line for line in log), "a token reached the log"
        assert await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/healthz") == (
            200,
            {"status": "ok"},
        )
        assert (await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/readyz"))[0] == 200
        token = dev_token(tmp_path, "a-17")
        claims = jwt.decode(token, options={"verify_signature": False})
        assert (claims["company"], claims["sub"], claims["segments"]) == (
            "acme",
            "a-17",
            ["sales", "vip"],
        )
        first = await say_hello(port, token)
        assert first["resumed"] is False
    assert (tmp_path / "valkey").is_dir()
    await wait_until_gone(embedded_store_url(log))  # the store stopped with the server
    # The same data dir after a restart: same secret, and the agent is remembered.
    async with presence_server(tmp_path, port):
        welcome = await say_hello(port, token)
        state = welcome["state"]
        assert isinstance(state, dict)
        assert state["status"] == "busy" and state["segments"] == ["sales", "vip"]
        assert welcome["session"] != first["session"]


def test_help_lists_every_option_and_its_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", "--help"], check=True, capture_output=True, text=True
    )
    for option in OPTIONS:
        assert option.flag in result.stdout and option.env in result.stdout


async def test_the_embedded_store_dies_with_a_killed_server(tmp_path: Path) -> None:
    async with presence_server(tmp_path, free_port()) as server:
        store = redis.asyncio.Redis.from_url(embedded_store_url(server.log))
        assert await store.ping()
        await store.aclose()
        server.process.kill()
        await wait_until_gone(embedded_store_url(server.log))

"""``presence-server`` as a user runs it: a real process, the embedded store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import jwt
import redis
import redis.asyncio
from websockets.asyncio.client import connect

from server.config import OPTIONS
from tests.processes import presence_server
from tests.redis_server import free_port
from tests.timing import eventually, seconds


def embedded(data_dir: Path) -> dict[str, str]:
    """The environment of a server with no Redis URL: the embedded store."""
    return {"PRESENCE_DATA_DIR": str(data_dir), "PRESENCE_KEY_PREFIX": "cli-test:"}


def embedded_store_url(log: list[str]) -> str:
    line = next(line for line in log if "embedded Valkey at" in line)
    return line.split("embedded Valkey at ")[1].split(",")[0]


async def wait_until_gone(url: str) -> None:
    """Until nothing answers at ``url``: the embedded store has stopped."""
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=seconds(1))

    async def gone() -> bool:
        try:
            await client.ping()
        except redis.ConnectionError:
            return True
        return False

    try:
        await eventually(gone, seconds(10))
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
    async with presence_server(embedded(tmp_path), port) as server:
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
    async with presence_server(embedded(tmp_path), port):
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
    async with presence_server(embedded(tmp_path)) as server:
        store = redis.asyncio.Redis.from_url(embedded_store_url(server.log))
        assert await store.ping()
        await store.aclose()
        server.process.kill()
        await wait_until_gone(embedded_store_url(server.log))


def test_the_readme_documents_every_option() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for option in OPTIONS:
        assert f"| `{option.flag}` | `{option.env}` |" in readme, option.name


def token_link(
    *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "server", "token", "--company", "acme", *arguments]
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PRESENCE_")}
    environment = {**inherited, "PRESENCE_JWT_SECRET": "link-test-" + "s" * 32, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=environment)


def test_token_url_links_each_role_to_its_page_with_the_token_in_the_fragment() -> None:
    supervisor = token_link("--sub", "sofia", "--role", "supervisor", "--url").stdout.strip()
    page, _, fragment = supervisor.partition("#token=")
    assert page == "http://127.0.0.1:8080/monitor"
    assert jwt.decode(fragment, options={"verify_signature": False})["role"] == "supervisor"
    assert "?" not in supervisor, "a token in a query string reaches access logs"

    agent = token_link("--sub", "a-1", "--role", "agent", "--url", env={"PRESENCE_PORT": "9000"})
    assert agent.stdout.startswith("http://127.0.0.1:9000/console#token=")
    proxied = token_link("--sub", "a-1", "--role", "agent", "--url", "https://p.example.com/")
    assert proxied.stdout.startswith("https://p.example.com/console#token=")


def test_token_url_refuses_a_role_without_a_page() -> None:
    acd = token_link("--sub", "router", "--role", "acd", "--url")
    assert acd.returncode == 2 and "no page is for the acd role" in acd.stderr
    assert acd.stdout == ""
